"""The quickstart's closing table: per target what it picked and reached; per backbone, proof it was kept.

    python -m tools.summarize_pipeline [cfg] [--arch perceiver_io] [--seed 2]

Reads results_<cfg>.csv (tools/results_table.py writes it) and prints its test accuracies, the split no
decision of the pipeline used. Per target: modality, scratch accuracy (trained alone), selected backbone and
whether it is the task the config designed as related, accuracy on the backbone, forward transfer (on the
backbone - scratch), final width multiplier, shared ratio. Per backbone: its accuracy before any target
trained on it (its chosen checkpoint) and after (inside each target's final checkpoint, evaluated at its own
width); CPG promises they are equal, and the results file says whether the outputs are bit-identical.
Exits 1 if a backbone changed.
"""
import sys

from utils import paths
from utils.cli import ArgumentParser, seed_int
from utils.dataset_config import get_config
from utils.errors import UserError, run_main
from utils.results import read_results


def get_args_parser():
    p = ArgumentParser(description="Summarise a finished pipeline run.")
    p.add_argument("config", nargs="?", default="demo")
    p.add_argument("--arch", default="perceiver_io", choices=["perceiver_io", "lenet5"])
    p.add_argument("--seed", type=seed_int, default=paths.DEFAULT_SEED,
                   help="the pipeline's seed (which run's outputs)")
    return p


def read_run_results(cfg, arch, seed):
    path = paths.results_csv(cfg.name, seed)
    results = read_results(path, arch)
    if not results:
        raise UserError(f"{path} has no results of arch {arch}; run .venv/bin/python -m tools.results_table "
                        f"{cfg.name} --arch {arch} --seed {seed} first (run_pickaback/quickstart.sh runs it).")
    return results


def number(value, spec=".4f"):
    return "-" if value is None else format(value, spec)


def target_row(r):
    return {"target": f"{r['target_id']} {r['target_name']}", "modality": r["target_modality"],
            "scratch": number(r["scratch_test_acc"]),
            "backbone": f"{r['backbone_id']} {r['backbone_name']} ({r['backbone_modality']})",
            "related": {None: "n/a", True: "yes", False: "no"}[r["picked_related"]],
            "on backbone": number(r["on_backbone_test_acc"]),
            "forward transfer": number(r["forward_transfer_test"], "+.4f"),
            "width": f"{r['final_width']:g}", "shared": number(r["shared_ratio"], ".3f")}


def backbone_rows(results):
    by_backbone = {}
    for r in results.values():
        by_backbone.setdefault(r["backbone_id"], []).append(r)
    return [{"backbone": f"{backbone_id} {trained[0]['backbone_name']}",
             "before": number(trained[0]["backbone_before_test_acc"]),
             "after": " ".join(number(r["backbone_after_test_acc"]) for r in trained),
             "backward transfer": " ".join(number(r["backward_transfer_test"], "+.4f") for r in trained),
             "targets": " ".join(str(r["target_id"]) for r in trained),
             "outputs": "bit-identical" if all(r["backbone_outputs_identical"] for r in trained) else "CHANGED"}
            for backbone_id, trained in sorted(by_backbone.items())]


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
    results = read_run_results(cfg, args.arch, args.seed)
    print("\nTargets (test accuracy; scratch = the target trained alone from scratch, "
          "forward transfer = on backbone - scratch)")
    print_table([target_row(r) for _, r in sorted(results.items())])
    judged = [r["picked_related"] for r in results.values() if r["picked_related"] is not None]
    if judged:
        print(f"Selected the designed related task for {sum(judged)} of {len(judged)} targets.")
    backbones = backbone_rows(results)
    print("\nBackbones before and after their targets trained on them (test accuracy; backward transfer = "
          "after - before)")
    print_table(backbones)
    if any(row["outputs"] == "CHANGED" for row in backbones):
        print("A backbone's outputs changed after a target trained on it: CPG's guarantee is broken.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
