"""Write results_<cfg>.csv of a finished pipeline run: one row per target, under the field's names.

    python -m tools.results_table [cfg] [--arch perceiver_io] [--seed 2]

Columns (utils/transfer_results.py says how each is measured): seed; target and selected backbone (id,
name, modality); whether it is the task the config designed as related; scratch accuracy (step 1), accuracy
on the backbone (step 3-2) and forward transfer = the difference; the backbone task's accuracy before
(its chosen checkpoint) and after (inside the target's final checkpoint), backward transfer = the difference,
and whether the backbone's outputs stayed bit-identical; the target's final width and shared ratio; regret
where the transfer control ran. Each accuracy twice: `_val_` (validation split, what decisions used) and
`_test_` (test split, what to report). The summary and the report read this file.
"""
from utils import paths
from utils.cli import ArgumentParser, seed_int
from utils.dataset_config import get_config
from utils.errors import run_main
from utils.transfer_results import write_results


def get_args_parser():
    p = ArgumentParser(description="Write results_<cfg>.csv: per target, forward and backward transfer, regret.")
    p.add_argument("config", nargs="?", default="demo", help="dataset config name")
    p.add_argument("--arch", default="perceiver_io", choices=["perceiver_io", "lenet5"])
    p.add_argument("--seed", type=seed_int, default=paths.DEFAULT_SEED,
                   help="the pipeline's seed (which run's outputs, and the validation split)")
    return p


def main(args):
    path, rows, missing = write_results(get_config(args.config), args.arch, args.seed)
    print(f"Wrote {path} ({len(rows)} targets).")
    if missing:
        print(f"Step 3-2 has not trained targets {' '.join(map(str, missing))} yet: they have no row.")
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
