"""Does the Perceiver learn real images? Each image task alone, against a small CNN given the same wall time.

    python -m tools.bench.images <cfg> [--profile demo] [--patches 1 4] [--tasks ...] [--seed 2]

For every image task of the config, the Perceiver IO at the profile trains as step 1 trains it (the
profile's epochs, optimiser and lr from run_pickaback/common.sh, the config's validation split), once per
image patch size in `--patches` (default: the one the pipeline uses, `PerceiverProfile.patch_for`). A three-layer
CNN then trains on the same samples, with the same augmentation, for as long as the slowest of those runs
took (Adam, its lr on a cosine over that time). The gap is the CNN's test accuracy minus the Perceiver's:
how much the profile leaves on the table for a model of the images' own kind. Run with OMP_NUM_THREADS=1
on an idle machine (the steps train one thread per process).
"""
import dataclasses
import math
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models import perceiver_io
from packnet_models.baseline import build_baseline
from tools.bench.harness import emit, timed
from utils import paths
from utils.cli import ArgumentParser, add_common_args, positive_int, seed_int
from utils.data import task_loaders
from utils.dataset_config import CONFIG_HELP, get_config
from utils.errors import UserError, run_main
from utils.step_settings import resolved_settings
from utils.text_tables import figure
from utils.train import Recipe, evaluate, fit, seed_everything

DEVICE = torch.device("cpu")


def get_args_parser():
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help=f"dataset config: {CONFIG_HELP}")
    p.add_argument("--profile", default="demo", choices=sorted(perceiver_io.PROFILES))
    p.add_argument("--patches", nargs="+", type=positive_int,
                   help="image patch sizes (default: the one the pipeline uses)")
    p.add_argument("--tasks", nargs="+", help="image task names (default: every image task)")
    p.add_argument("--seed", type=seed_int, default=paths.DEFAULT_SEED)
    return p


def small_cnn(num_classes):
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*block(3, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2), *block(64, 128),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes))


def perceiver_accuracy(cfg, task, loaders, profile, recipe, seed):
    """(test accuracy, context tokens per image) of the Perceiver trained on `task` alone, as step 1 trains it."""
    seed_everything(seed)
    model = build_baseline("perceiver_io", profile, cfg, task)
    with tempfile.TemporaryDirectory() as folder:
        model, _, _ = fit(model, loaders, DEVICE, recipe, stage="bench", csv_path=Path(folder) / "train.csv")
    images, _ = next(iter(loaders[2]))
    return evaluate(model, loaders[2], DEVICE)[1], model.body.adapters[task.name](images)[0].shape[1]


def cnn_accuracy(task, loaders, seconds, lr, seed):
    """(test accuracy, epochs) of the small CNN trained with Adam for `seconds` of wall time, its lr falling
    from `lr` to 0 on a cosine over that time (so the run ends settled, however many epochs fit)."""
    seed_everything(seed)
    model, epochs = small_cnn(task.num_classes), 0
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.train()
        for x, y in loaders[0]:
            share = min((time.perf_counter() - started) / seconds, 1.0)
            optimizer.param_groups[0]["lr"] = lr * 0.5 * (1 + math.cos(math.pi * share))
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        epochs += 1
    return evaluate(model, loaders[2], DEVICE)[1], epochs


def step_one_recipe(config, profile):
    """Step 1's training recipe at `profile`, as common.sh resolves it and step 1's parser reads it."""
    epochs, lr, train_args = resolved_settings(config, "$EPOCHS", "$LR", "${TRAIN_ARGS[*]}",
                                               env={**os.environ, "PROFILE": profile})
    step = add_common_args(ArgumentParser()).parse_args(["--epochs", epochs, "--lr", lr, *train_args.split()])
    return Recipe(epochs=step.epochs, lr=step.lr, optimizer=step.optimizer, weight_decay=step.weight_decay)


def main(args):
    cfg = get_config(args.config)
    tasks = [t for t in cfg.tasks if t.modality == "image" and (not args.tasks or t.name in args.tasks)]
    if not tasks:
        raise UserError(f"Config {cfg.name} has no image task{' of those named' if args.tasks else ''}.")
    recipe = step_one_recipe(args.config, args.profile)
    patches = args.patches or [perceiver_io.PROFILES[args.profile].patch_for(cfg.image_patch, cfg.image_size)]
    if max(patches) > cfg.image_size:
        raise UserError(f"--patches {max(patches)} is larger than the config's image_size ({cfg.image_size}).")
    rows = []
    for task in tasks:
        # loaders count their passes to draw each epoch's order: every model starts from fresh ones
        loaders = partial(task_loaders, cfg, task, seed=args.seed, device=DEVICE)
        row = {"task": task.name, "samples": loaders()[0].num_samples}
        for patch in patches:
            seconds, (accuracy, tokens) = timed(perceiver_accuracy, dataclasses.replace(cfg, image_patch=patch), task,
                                                loaders(), args.profile, recipe, args.seed)
            row.update({f"patch{patch}": accuracy, f"patch{patch}_tokens": tokens,
                        f"patch{patch}_seconds": round(seconds, 1)})
        budget = max(row[f"patch{patch}_seconds"] for patch in patches)
        row["cnn"], row["cnn_epochs"] = cnn_accuracy(task, loaders(), budget, recipe.lr, args.seed)
        rows.append(row)
        print(f"{task.name:>14} " + "  ".join(f"patch {p} ({row[f'patch{p}_tokens']} tokens): "
                                              f"{figure(row[f'patch{p}'])} in {row[f'patch{p}_seconds']} s"
                                              for p in patches)
              + f"  CNN: {figure(row['cnn'])} ({row['cnn_epochs']} epochs)", flush=True)
    means = {key: sum(row[key] for row in rows) / len(rows) for key in [f"patch{p}" for p in patches] + ["cnn"]}
    print("mean test accuracy: " + ", ".join(f"{key} {figure(value)}" for key, value in means.items()))
    return emit({"config": cfg.name, "profile": args.profile, "epochs": recipe.epochs, "tasks": rows, "means": means})


if __name__ == "__main__":
    run_main(main, get_args_parser)
