"""How step 3-1's wall time grows with the number of tasks N, without and with the mutation search.

    OMP_NUM_THREADS=1 .venv/bin/python -m tools.bench_selection_scaling [--n 12 50 100] [--targets K]
        [--search_n 12 50 100] [--iterations 100] [--search_targets 2] [--work DIR]

For each N, writes under --work (default: a temporary folder) a dataset config file of N tasks, half image and
half text, whose data folders are links to the demo's (the demo data is made once, small), and an untrained
demo-profile baseline per task: selection cost does not depend on accuracy. Then runs step 3-1's main() in
this process with `--compare baseline --force`, each target against the other N - 1 tasks, and counts the
models' forward calls. Without the search (--max_iterations 0) every target is timed unless --targets says
how many; with the search (--max_iterations --iterations, --search single, step 3-1's defaults) --search_targets
are. Timed targets are spread over both modalities. When fewer than N are timed, the time is extrapolated
(marked *): loading the N models, timed on its own, plus N times the measured time per target (each target
costs N - 1 pairs). The ratio is to the smallest N of the same run. The last line is the table as JSON.
"""
import io
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import torch

import pickaback_perceiverIO
from models.cpg import TaskView
from packnet_models.baseline import build_baseline
from packnet_models_pickaback.compare import load_task_model
from tools.make_demo_data import generate_demo_data
from utils import paths
from utils.checkpoint import save_model
from utils.cli import ArgumentParser, non_negative_int, positive_int
from utils.dataset_config import DEMO_TASKS, get_config
from utils.errors import run_main

ARCH, PROFILE = "perceiver_io", "demo"
# 25 per class: 125 train samples per task, 100 after the demo's 20% validation share, so the default
# 100 profiling inputs are all real samples
TRAIN_PER_CLASS, TEST_PER_CLASS = 25, 2
DEMO_IMAGE_TASKS = [name for name, modality, *_ in DEMO_TASKS if modality == "image"]
DEMO_TEXT_TASKS = [name for name, modality, *_ in DEMO_TASKS if modality == "text"]


def get_args_parser():
    p = ArgumentParser(description="Step 3-1's wall time against the number of tasks, without and with the search.")
    p.add_argument("--n", type=positive_int, nargs="+", default=[12, 50, 100], help="task counts without the search")
    p.add_argument("--targets", type=positive_int, help="targets timed without the search (default: all N)")
    p.add_argument("--search_n", type=positive_int, nargs="*", default=[12, 50, 100],
                   help="task counts with the search (none: skip it)")
    p.add_argument("--iterations", type=non_negative_int, default=100,
                   help="--max_iterations of the search (the original's 100)")
    p.add_argument("--search_targets", type=positive_int, default=2, help="targets timed with the search")
    p.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed afterwards)")
    return p


def config_text(name, n):
    """A config file of n tasks (image first, then text) with the demo's data settings, as data/readme.md."""
    lines = [f'name = "{name}"', 'image_root = "images"', 'text_root = "text"', "image_size = 32",
             'train_augment = "crop_flip"', "vocab_size = 4096", "max_text_length = 32", "val_fraction = 0.2",
             "mean = [0.5, 0.5, 0.5]", "std = [0.25, 0.25, 0.25]"]
    for task, modality, _ in task_sources(n):
        lines += ["", "[[tasks]]", f'name = "{task}"', f'modality = "{modality}"', "num_classes = 5"]
    return "\n".join(lines) + "\n"


def task_sources(n):
    """[(task name, modality, the demo task whose data it reads)] of n tasks, the first half image."""
    images = n - n // 2
    return [(f"task{i:03d}", "image", DEMO_IMAGE_TASKS[i % len(DEMO_IMAGE_TASKS)]) if i < images else
            (f"task{i:03d}", "text", DEMO_TEXT_TASKS[i % len(DEMO_TEXT_TASKS)]) for i in range(n)]


def write_config(work, demo, n):
    """The config file of n tasks under work/n<n>/, its task folders linked to the demo data's."""
    folder = work / f"n{n}"
    for task, modality, source in task_sources(n):
        kind = "images" if modality == "image" else "text"
        for split in ("train", "test"):
            link = folder / kind / split / task
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(demo / kind / split / source, target_is_directory=True)
    path = folder / "dataset.toml"
    path.write_text(config_text(f"scaling{n}", n))
    return path


def save_untrained_baselines(cfg, seed=paths.DEFAULT_SEED):
    """Step 1's checkpoint of every task of `cfg`, untrained (seeded by the task id), under paths.output_root."""
    for task in cfg.tasks:
        folder = paths.baseline_dir(ARCH, cfg.name, task.name, seed)
        if not any(folder.glob("checkpoint-*.pth.tar")):
            torch.manual_seed(task.task_id)
            save_model(folder / "checkpoint-0.pth.tar", build_baseline(ARCH, PROFILE, cfg, task), cfg.name)


@contextmanager
def counting_forwards():
    """A dict whose "calls" counts every forward of a task view (the models step 3-1 compares) inside the block."""
    count, forward = {"calls": 0}, TaskView.forward

    def counted(self, x):
        count["calls"] += 1
        return forward(self, x)
    TaskView.forward = counted
    try:
        yield count
    finally:
        TaskView.forward = forward


def run_selection(config, targets, *options):
    """(seconds, forward calls) of step 3-1 on `config` for `targets` (ids) against every other task."""
    argv = ["pickaback_perceiverIO.py", "--dataset_config", str(config), "--target_id", *map(str, targets),
            "--compare", "baseline", "--device", "cpu", "--force", *options]
    saved_argv, sys.argv = sys.argv, argv
    try:
        # step 3-1's lines and bars would bury the table
        with counting_forwards() as count, redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            started = time.perf_counter()
            pickaback_perceiverIO.main()
            return time.perf_counter() - started, count["calls"]
    finally:
        sys.argv = saved_argv


def timed_targets(n, k):
    """k target ids spread evenly over 1..n (image tasks come first, text last), or all n."""
    if k is None or k >= n:
        return list(range(1, n + 1))
    return sorted({round(1 + i * (n - 1) / max(k - 1, 1)) for i in range(k)})


def seconds_to_load(cfg):
    """Wall time of loading every task's baseline once, as step 3-1 does before comparing."""
    started = time.perf_counter()
    for task in cfg.tasks:
        load_task_model(cfg, task, ARCH)
    return time.perf_counter() - started


def measure(work, demo, n, iterations, k):
    """One row of the table: step 3-1 on n tasks at --max_iterations `iterations`, k of its targets timed."""
    os.environ["MMPAB_OUTPUT_ROOT"] = str(work / f"n{n}" / "out")
    config = write_config(work, demo, n)
    cfg = get_config(str(config))
    save_untrained_baselines(cfg)
    targets = timed_targets(n, k)
    seconds, calls = run_selection(config, targets, "--max_iterations", str(iterations))
    row = {"n": n, "iterations": iterations, "targets_timed": len(targets), "forwards_per_target": calls / len(targets),
           "seconds_measured": seconds, "extrapolated": len(targets) < n, "seconds": seconds}
    if row["extrapolated"]:
        loading = seconds_to_load(cfg)
        row.update(loading_seconds=loading, seconds=loading + (seconds - loading) / len(targets) * n)
    return row


def with_ratios(rows):
    """The rows with each one's seconds as a multiple of the first row's (the smallest N of this run)."""
    return [{**row, "ratio": row["seconds"] / rows[0]["seconds"]} for row in rows]


def print_table(plain, searched, iterations):
    print("\nStep 3-1 wall time against N (every task a target of the other N - 1; untrained demo-profile "
          "models, step 3-1's default settings; ratio to the smallest N)")
    print(f"{'N':>4} {'forwards/target':>16} {'s no search':>18} {'ratio':>6}   "
          f"{'forwards/target':>16} {f's search ({iterations} it.)':>18} {'ratio':>6}")
    by_n = {row["n"]: row for row in searched}
    for row in plain:
        other = by_n.pop(row["n"], None)
        print(f"{row['n']:>4} {time_cells(row)}   {time_cells(other)}")
    for row in by_n.values():
        print(f"{row['n']:>4} {time_cells(None)}   {time_cells(row)}")
    if any(row["extrapolated"] for row in plain + searched):
        print("* extrapolated from the targets timed: loading the N models + N x the time per target")


def time_cells(row):
    """forwards per target, seconds (* when extrapolated) and ratio of one row, or dashes."""
    if row is None:
        return f"{'-':>16} {'-':>18} {'-':>6}"
    mark = "*" if row["extrapolated"] else ""
    return f"{row['forwards_per_target']:>16.0f} {row['seconds']:>17.1f}{mark:1} {row['ratio']:>6.2f}"


def main(args):
    with tempfile.TemporaryDirectory() as scratch:
        work = (args.work or Path(scratch)).resolve()
        demo = work / "demo"
        generate_demo_data(demo, seed=0, train_per_class=TRAIN_PER_CLASS, test_per_class=TEST_PER_CLASS)
        plain = with_ratios([measure(work, demo, n, 0, args.targets) for n in sorted(args.n)])
        searched = with_ratios([measure(work, demo, n, args.iterations, args.search_targets)
                                for n in sorted(args.search_n)])
    print_table(plain, searched, args.iterations)
    print(json.dumps({"arch": ARCH, "profile": PROFILE, "threads": torch.get_num_threads(), "no_search": plain,
                      "search": {"iterations": args.iterations, "search": "single", "rows": searched}}))
    return 0


if __name__ == "__main__":
    run_main(main, get_args_parser)
