"""How step 3-1's wall time grows with the number of tasks N, without and with the mutation search.

    OMP_NUM_THREADS=1 python -m tools.bench.scaling [--n 12 50 100] [--targets K] [--search_n 12 50 100]
        [--iterations 100] [--search_targets 2] [--work DIR]

For each N, writes under --work (default: a temporary folder) a config file of N tasks, half image and half
text, whose data folders link to a small demo data set made once, and an untrained demo-profile baseline per
task: selection cost does not depend on accuracy. Then runs step 3-1 in this process (`--compare baseline
--force`, each target against the other N - 1 tasks) and counts the models' forward calls. Without the search
every target is timed unless --targets says how many; with it (--max_iterations --iterations), --search_targets
are, spread over both modalities. When fewer than N are timed, the time is extrapolated (marked *): loading the
N models, timed on its own, plus N times the measured time per target. The ratio is to the smallest N.
"""
import io
import os
import tempfile
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import torch

import pickaback_perceiverIO
from models.cpg import TaskView
from packnet_models.baseline import build_baseline
from packnet_models_pickaback.compare import load_task_model
from tools.bench.harness import emit, timed
from tools.make_demo_data import generate_demo_data
from utils import paths
from utils.checkpoint import save_model
from utils.cli import ArgumentParser, non_negative_int, positive_int
from utils.dataset_config import DEMO_TASKS, get_config
from utils.errors import run_main

ARCH, PROFILE = "perceiver_io", "demo"
# 25 per class: 100 train samples per task after the demo's 20% validation share, all of them real probes
TRAIN_PER_CLASS, TEST_PER_CLASS = 25, 2
DEMO_TASKS_OF = {m: [name for name, modality, *_ in DEMO_TASKS if modality == m] for m in ("image", "text")}


def get_args_parser():
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=positive_int, nargs="+", default=[12, 50, 100], help="task counts without the search")
    p.add_argument("--targets", type=positive_int, help="targets timed without the search (default: all N)")
    p.add_argument("--search_n", type=positive_int, nargs="*", default=[12, 50, 100],
                   help="task counts with the search (none: skip it)")
    p.add_argument("--iterations", type=non_negative_int, default=100, help="--max_iterations of the search")
    p.add_argument("--search_targets", type=positive_int, default=2, help="targets timed with the search")
    p.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed afterwards)")
    return p


def task_sources(n):
    """[(task name, modality, the demo task whose data it reads)] of n tasks, the first half image."""
    images = n - n // 2
    return [(f"task{i:03d}", modality, DEMO_TASKS_OF[modality][i % len(DEMO_TASKS_OF[modality])])
            for i, modality in ((i, "image" if i < images else "text") for i in range(n))]


def write_config(work, demo, n):
    """The config file of n tasks under work/n<n>/ (the demo's data settings), its task folders linked to the demo's."""
    folder = work / f"n{n}"
    lines = [f'name = "scaling{n}"', 'image_root = "images"', 'text_root = "text"', "image_size = 32",
             'train_augment = "crop_flip"', "vocab_size = 4096", "max_text_length = 32", "val_fraction = 0.2",
             "mean = [0.5, 0.5, 0.5]", "std = [0.25, 0.25, 0.25]"]
    for task, modality, source in task_sources(n):
        lines += ["", "[[tasks]]", f'name = "{task}"', f'modality = "{modality}"', "num_classes = 5"]
        kind = "images" if modality == "image" else "text"
        for split in ("train", "test"):
            link = folder / kind / split / task
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(demo / kind / split / source, target_is_directory=True)
    path = folder / "dataset.toml"
    path.write_text("\n".join(lines) + "\n")
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


def run_selection(config, targets, iterations):
    """(seconds, forward calls) of step 3-1 on `config` for `targets` (ids) against every other task."""
    args = pickaback_perceiverIO.get_args_parser().parse_args([
        "--dataset_config", str(config), "--target_id", *map(str, targets), "--compare", "baseline", "--device",
        "cpu", "--force", "--max_iterations", str(iterations)])
    # step 3-1's lines and bars would bury the table
    with counting_forwards() as count, redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        seconds, _ = timed(pickaback_perceiverIO.main, args)
    return seconds, count["calls"]


def measure(work, demo, n, iterations, k):
    """One row of the table: step 3-1 on n tasks at --max_iterations `iterations`, k of its targets timed."""
    os.environ["MMPAB_OUTPUT_ROOT"] = str(work / f"n{n}" / "out")
    config = write_config(work, demo, n)
    cfg = get_config(str(config))
    save_untrained_baselines(cfg)
    # k target ids spread evenly over 1..n (image tasks first, text last), or all n
    targets = list(range(1, n + 1)) if k is None or k >= n else sorted(
        {round(1 + i * (n - 1) / max(k - 1, 1)) for i in range(k)})
    seconds, calls = run_selection(config, targets, iterations)
    row = {"n": n, "iterations": iterations, "targets_timed": len(targets), "forwards_per_target": calls / len(targets),
           "seconds_measured": seconds, "extrapolated": len(targets) < n, "seconds": seconds}
    if row["extrapolated"]:
        loading, _ = timed(lambda: [load_task_model(cfg, task, ARCH) for task in cfg.tasks])
        row.update(loading_seconds=loading, seconds=loading + (seconds - loading) / len(targets) * n)
    return row


def with_ratios(rows):
    return [{**row, "ratio": row["seconds"] / rows[0]["seconds"]} for row in rows]


def main(args):
    with tempfile.TemporaryDirectory() as scratch:
        work = (args.work or Path(scratch)).resolve()
        demo = work / "demo"
        generate_demo_data(demo, seed=0, train_per_class=TRAIN_PER_CLASS, test_per_class=TEST_PER_CLASS)
        plain = with_ratios([measure(work, demo, n, 0, args.targets) for n in sorted(args.n)])
        searched = with_ratios([measure(work, demo, n, args.iterations, args.search_targets)
                                for n in sorted(args.search_n)])
    print("\nStep 3-1 wall time against N (every task a target of the other N - 1; untrained demo-profile models, "
          "step 3-1's default settings; ratio to the smallest N of the same search)")
    print(f"{'N':>4} {'search it.':>10} {'forwards/target':>16} {'seconds':>10} {'ratio':>6}")
    for row in plain + searched:
        mark = "*" if row["extrapolated"] else ""
        print(f"{row['n']:>4} {row['iterations']:>10} {row['forwards_per_target']:>16.0f} {row['seconds']:>9.1f}{mark:1} "
              f"{row['ratio']:>6.2f}")
    if any(row["extrapolated"] for row in plain + searched):
        print("* extrapolated from the targets timed: loading the N models + N x the time per target")
    return emit({"arch": ARCH, "profile": PROFILE, "threads": torch.get_num_threads(), "no_search": plain,
                 "search": {"iterations": args.iterations, "rows": searched}})


if __name__ == "__main__":
    run_main(main, get_args_parser)
