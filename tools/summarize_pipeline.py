"""The quickstart's closing table: per target what it picked and reached; per backbone, proof it was kept.

    python tools/summarize_pipeline.py [cfg] [--arch perceiver_io]

Per target: modality, scratch baseline (test accuracy), selected backbone and whether it is the task
the config designed as related, accuracy on the backbone (test), final width multiplier, shared ratio.
Per backbone: its test accuracy before any target trained on it (its chosen checkpoint) and after
(inside each target's final checkpoint, evaluated at its own width); CPG promises they are equal, and
the outputs are compared bit for bit. Exits 1 if a backbone changed.
"""
import csv
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils import paths  # noqa: E402
from utils.checkpoint import load_model  # noqa: E402
from utils.cli import ArgumentParser, seed_int  # noqa: E402
from utils.data import task_loaders  # noqa: E402
from utils.dataset_config import get_config  # noqa: E402
from utils.errors import UserError, run_main  # noqa: E402
from utils.records import read_json_record  # noqa: E402


def get_args_parser():
    p = ArgumentParser(description="Summarise a finished pipeline run.")
    p.add_argument("config", nargs="?", default="demo")
    p.add_argument("--arch", default="perceiver_io", choices=["perceiver_io", "lenet5"])
    p.add_argument("--seed", type=seed_int, default=paths.DEFAULT_SEED,
                   help="the pipeline's seed (which run's outputs, and the validation split)")
    return p


def read_selections(cfg, seed):
    path = paths.pickaback_result_csv(cfg.name, seed)
    if not path.exists():
        raise UserError(f"{path} is missing; run the pipeline (run_pickaback/quickstart.sh) first.")
    with open(path, newline="") as f:
        return [(cfg.task(int(r[0])), cfg.task(int(r[1]))) for r in list(csv.reader(f))[1:] if r]


@torch.no_grad()
def test_outputs(model, task, cfg, seed):
    """(accuracy, logits) of `task`'s view of `model` on its test split."""
    view = model.task_view(task.name)
    _, _, test = task_loaders(cfg, task, seed=seed)
    logits, labels = zip(*[(view(x), y) for x, y in test])
    logits, labels = torch.cat(logits), torch.cat(labels)
    return (logits.argmax(1) == labels).float().mean().item(), logits


def target_row(cfg, arch, target, backbone, baselines, seed):
    folder = paths.target_dir(arch, cfg.name, backbone.name, target.name, seed) / "scratch"
    model, payload = load_model(paths.folder_checkpoint(folder), expect_arch=arch, expect_config=cfg.name)
    model.set_active_task(target.name)
    related = cfg.related.get(target.name)
    return model, {
        "target": f"{target.task_id} {target.name}", "modality": target.modality,
        "baseline": baselines.get(target.name, "-"),
        "backbone": f"{backbone.task_id} {backbone.name} ({backbone.modality})",
        "related": "n/a" if related is None else ("yes" if related == backbone.name else "no"),
        "on backbone": f"{payload['test_accuracy']:.4f}", "width": f"{model.width_mult:g}",
        "shared": f"{model.stats()['shared_ratio']:.3f}",
    }


def print_table(rows):
    if not rows:
        return
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in rows[0]}
    print("  ".join(k.ljust(w) for k, w in widths.items()))
    for row in rows:
        print("  ".join(str(row[k]).ljust(w) for k, w in widths.items()))


def main():
    args = get_args_parser().parse_args()
    cfg = get_config(args.config)
    baselines = read_json_record(paths.baseline_test_acc_file(args.arch, cfg.name, args.seed))
    targets, finals = [], {}
    for target, backbone in read_selections(cfg, args.seed):
        model, row = target_row(cfg, args.arch, target, backbone, baselines, args.seed)
        targets.append(row)
        finals.setdefault(backbone.name, (backbone, []))[1].append((target, model))
    backbones, changed = [], False
    for backbone, trained in finals.values():
        chosen = paths.folder_checkpoint(paths.backbone_dir(args.arch, cfg.name, backbone.name, args.seed)
                                         / "gradual_prune")
        before_acc, before = test_outputs(load_model(chosen)[0], backbone, cfg, args.seed)
        after = [test_outputs(model, backbone, cfg, args.seed) for _, model in trained]
        same = all(torch.equal(before, logits) for _, logits in after)
        changed |= not same
        backbones.append({"backbone": f"{backbone.task_id} {backbone.name}", "before": f"{before_acc:.4f}",
                          "after": " ".join(f"{acc:.4f}" for acc, _ in after),
                          "targets": " ".join(str(t.task_id) for t, _ in trained),
                          "outputs": "bit-identical" if same else "CHANGED"})
    print("\nTargets (test accuracy; baseline = the target trained alone from scratch)")
    print_table(targets)
    related = [r for r in targets if r["related"] != "n/a"]
    if related:
        hits = sum(r["related"] == "yes" for r in related)
        print(f"Selected the designed related task for {hits} of {len(related)} targets.")
    print("\nBackbones before and after their targets trained on them (test accuracy)")
    print_table(backbones)
    if changed:
        print("A backbone's outputs changed after a target trained on it: CPG's guarantee is broken.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
