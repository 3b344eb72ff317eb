"""Are the config's designed relations in the trained models? Each related task's model on the target's data.

    python -m tools.bench.relations [cfg] [--arch perceiver_io] [--seed 2] [--split test]

A designed relation (the config's `related`) says that two tasks share their classes and differ in domain, and
the transfer control's related-pick rate counts how often step 3-1 found it. For every target whose related
task has the same class names, this has the related task's step-1 model classify the target's samples through
its own input adapter and head, untrained on them (zero-shot). Near the target's own model, the relation is in
the models for a selector to see; near chance (1 / classes), a selector comparing models has nothing to find.
Needs step 1's models (targets without one, or whose related task has none, are left out).
"""
import torch

from packnet_models_pickaback.compare import load_task_model
from tools.bench.harness import add_run_arguments, emit
from utils import paths
from utils.cli import ArgumentParser
from utils.data import TaskLoader, load_split, scan_samples
from utils.dataset_config import get_config
from utils.errors import UserError, run_main
from utils.results import read_baselines
from utils.train import evaluate, resolve_device

BATCH = 200


def get_args_parser():
    p = add_run_arguments(ArgumentParser(description=__doc__.splitlines()[0]), splits=("test", "train"))
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    return p


@torch.no_grad()
def accuracy_on(cfg, model_task, data_task, args, device):
    """Accuracy of `model_task`'s step-1 model on `data_task`'s split, read as `model_task` reads its own data."""
    model = load_task_model(cfg, model_task, args.arch, args.seed).to(device).task_view(model_task.name)
    loader = TaskLoader(load_split(cfg, data_task, args.split), model_task, cfg, BATCH, shuffle=False,
                        augment=False, device=device, seed=args.seed)
    return evaluate(model, loader, device)[1]


def related_pairs(cfg, arch, seed):
    """(target, related task) for every target whose designed related task has the same class names and modality,
    both with a step-1 model (in step 1's record)."""
    trained = read_baselines(paths.baseline_acc_file(arch, cfg.name, seed))
    pairs = []
    for target in cfg.tasks:
        related = cfg.task(cfg.related[target.name]) if target.name in cfg.related else None
        if related is None or related.modality != target.modality or not {target.name, related.name} <= trained.keys():
            continue
        if scan_samples(cfg, target, "test")[1] == scan_samples(cfg, related, "test")[1]:
            pairs.append((target, related))
    return pairs


def main(args):
    cfg = get_config(args.config)
    pairs = related_pairs(cfg, args.arch, args.seed)
    if not pairs:
        raise UserError(f"Config '{cfg.name}' has no target whose designed related task shares its classes and "
                        f"modality and has, like the target, a step-1 {args.arch} model (run_pickaback/baseline.sh).")
    device = resolve_device(args.device)
    print(f"Designed relations of '{cfg.name}' as the step-1 models see them ({args.split} split): each target's "
          f"own model, and its related task's model untrained on it")
    print(f"{'target':<26} {'own':>6} {'related task':<26} {'its acc':>7} {'chance':>6}")
    rows = []
    for target, related in pairs:
        chance = 1 / len(scan_samples(cfg, target, "test")[1])
        own, zero_shot = accuracy_on(cfg, target, target, args, device), accuracy_on(cfg, related, target, args, device)
        rows.append({"target_id": target.task_id, "related_id": related.task_id, "own": own,
                     "related_zero_shot": zero_shot, "chance": chance})
        print(f"{f'{target.task_id} {target.name}'[:26]:<26} {own:>6.3f} {f'{related.task_id} {related.name}'[:26]:<26} "
              f"{zero_shot:>7.3f} {chance:>6.3f}")
    return emit({"config": cfg.name, "arch": args.arch, "seed": args.seed, "split": args.split, "targets": rows})


if __name__ == "__main__":
    run_main(main, get_args_parser)
