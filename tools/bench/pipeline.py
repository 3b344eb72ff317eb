"""Where the pipeline's wall time goes, against its training floor.

    python -m tools.bench.pipeline [cfg] [--output-root DIR]

Runs the quickstart's steps (1, 2-1, 2-2, 3-1, 4, 3-2) on `cfg` under a fresh output root (default: a temporary
folder, removed afterwards) with the steps' own settings (PROFILE, JOBS, ... from the environment), every Python
process of theirs through a wrapper that logs it. Per step: wall time, processes and their start-up time (each
entry's `--help`, timed alone), the epochs it trained (its new train.csv rows; rows a finetune copies from step 1
count as reused) and the samples those epochs trained and validated. The floor is those samples at the model's
own per-sample cost, measured here single-threaded (as the parallel jobs run) by the training loop's functions
on batches held in memory: a fresh one-task model for steps 1 and 2-1, a pruned backbone plus a target for
step 3-2. floor = CPU seconds / min(JOBS, cores); ratio = wall / floor.
"""
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from itertools import islice
from pathlib import Path

import torch

from models.cpg import CPGModel
from tools.bench.harness import emit, timed
from utils import paths
from utils.cli import ArgumentParser, positive_int
from utils.data import task_loaders
from utils.dataset_config import CONFIG_HELP, get_config
from utils.errors import UserError, run_main
from utils.logs import read_train_csv
from utils.step_settings import resolved_settings
from utils.text_tables import figure
from utils.train import build_optimizers, evaluate, train_one_epoch

STEPS = ["baseline", "wo_backbone", "select_pruning_ratio_of_backbone", "find_backbone", "transfer_kv",
         "w_backbone"]
CPU = torch.device("cpu")
TRAINING_ENTRIES = ("CPG_MM_main_normal.py", "packnet_cifar100_main_normal.py")
TARGETS_DIR = paths.targets_root("x", "x").relative_to(paths.checkpoints_dir("x")).parts[0]
# logs each process of a step (start, end, entry) and runs it unchanged
WRAPPER = """#!/usr/bin/env bash
started=$(date +%s.%N); status=0
"$MMPAB_BENCH_PYTHON" "$@" || status=$?
printf '%s %s %s\\n' "$started" "$(date +%s.%N)" "$([ "$1" = -m ] && echo "-m $2" || echo "$1")" >> "$MMPAB_BENCH_LOG"
exit $status
"""


def get_args_parser():
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", nargs="?", default="demo", help=f"dataset config: {CONFIG_HELP}")
    p.add_argument("--output-root", type=Path, help="where the run writes (default: a temporary folder, removed)")
    p.add_argument("--cost-batches", type=positive_int, default=10, help="batches per timing of the per-sample cost")
    return p


def run_step(step, config, env, log):
    """(wall seconds, [(entry, seconds)] of its processes) of one step script."""
    log.write_text("")
    seconds, done = timed(subprocess.run, ["bash", f"run_pickaback/{step}.sh", config], env=env, cwd=paths.REPO_ROOT,
                          stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        raise UserError(f"run_pickaback/{step}.sh stopped with exit {done.returncode}; run it alone to see why.")
    processes = [line.split(" ", 2) for line in log.read_text().splitlines()]
    return seconds, [(entry, float(end) - float(start)) for start, end, entry in processes]


def epoch_rows(root):
    """{(train.csv, epoch, stage): (task, on a backbone?, seconds)} of every train.csv under root."""
    rows = {}
    for csv_path in root.rglob("train.csv"):
        on_backbone = TARGETS_DIR in csv_path.parts
        for row in read_train_csv(csv_path):
            rows[(csv_path, row[0], row[3])] = (csv_path.parent.name, on_backbone, float(row[4]) if len(row) > 4 else 0)
    return rows


def fastest_run(command, times=3):
    return min(timed(subprocess.run, command, cwd=paths.REPO_ROOT, capture_output=True)[0] for _ in range(times))


def start_up_seconds(entries, python):
    """{entry: seconds before its work starts}: the fastest `--help` run (interpreter, imports, parser), plus, for an
    entry that trains, what its first optimiser costs (torch.optim imports torch._dynamo on first use)."""
    optimiser = (fastest_run([python, "-c", "import torch; torch.optim.SGD([torch.zeros(1, requires_grad=True)])"])
                 - fastest_run([python, "-c", "import torch"]))
    return {entry: fastest_run([python, *entry.split(" "), "--help"]) + (optimiser if entry in TRAINING_ENTRIES else 0)
            for entry in entries}


def per_sample_costs(arch, profile, seed, cfg, task, backbone_task, count):
    """{(on a backbone?, "train"/"val"): seconds per sample} of `task`, one thread, its batches in memory."""
    train, val, _ = task_loaders(cfg, task, seed=seed)
    train_batches, val_batches = list(islice(train, count)), list(islice(val, count))
    costs = {}
    for on_backbone in (False, True):
        model = CPGModel.create(arch, profile)
        if on_backbone:
            model.add_task(backbone_task, cfg)
            model.prune_active_task(0.5)
        model.add_task(task, cfg)
        optimizer, mask_optimizer = build_optimizers(model, 1e-3, 1e-4, 4e-5, "adam")

        def train_pass():
            train_one_epoch(model, train_batches, optimizer, CPU, 1, weight_decay=4e-5,
                            mask_optimizer=mask_optimizer)
        train_pass()   # warm-up: allocator, optimiser state
        samples = sum(len(y) for _, y in train_batches)
        costs[on_backbone, "train"] = min(timed(train_pass)[0] for _ in range(2)) / samples
        samples = sum(len(y) for _, y in val_batches)
        costs[on_backbone, "val"] = min(timed(evaluate, model, val_batches, CPU)[0] for _ in range(2)) / samples
    return costs


def backbone_of(cfg, task):
    """Another task for `task` to start on, of its own modality where the config has one."""
    others = [t for t in cfg.tasks if t is not task]
    return next((t for t in others if t.modality == task.modality), others[0])


def split_sizes(cfg, seed):
    """{task name: (train samples, validation samples)} as the pipeline splits them."""
    return {t.name: tuple(loader.num_samples for loader in task_loaders(cfg, t, seed=seed)[:2]) for t in cfg.tasks}


def main(args):
    cfg = get_config(args.config)
    arch, profile, jobs, seed = resolved_settings(args.config, "$ARCH", "$PROFILE", "$JOBS", "$SEED")
    jobs, seed = int(jobs), int(seed)
    temporary = args.output_root is None
    root = Path(tempfile.mkdtemp(prefix="bench_pipeline_")) if temporary else args.output_root.resolve()
    work = Path(tempfile.mkdtemp(prefix="bench_pipeline_wrapper_"))
    python = sys.executable   # the steps' Python: this one, through the wrapper
    wrapper, log = work / "python", work / "processes.log"
    wrapper.write_text(WRAPPER)
    wrapper.chmod(0o755)
    env = dict(os.environ, MMPAB_OUTPUT_ROOT=str(root), PYTHON=str(wrapper), MMPAB_BENCH_PYTHON=python,
               MMPAB_BENCH_LOG=str(log))
    steps, seen = [], {}
    try:
        for step in STEPS:
            print(f"running {step} ...", flush=True)
            wall, processes = run_step(step, args.config, env, log)
            rows = epoch_rows(root)
            new = {key: value for key, value in rows.items() if key not in seen}
            seen.update(rows)
            steps.append((step, wall, processes, list(new.values())))
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(work)

    torch.set_num_threads(1)
    parallel = min(jobs, os.cpu_count())
    sizes = split_sizes(cfg, seed)
    first_of = {t.modality: t for t in reversed(cfg.tasks)}
    costs = {m: per_sample_costs(arch, profile, seed, cfg, task, backbone_of(cfg, task), args.cost_batches)
             for m, task in first_of.items()}
    modality = {t.name: t.modality for t in cfg.tasks}
    start_up = start_up_seconds(sorted({e for _, _, processes, _ in steps for e, _ in processes}), python)

    result = {"config": cfg.name, "arch": arch, "profile": profile, "jobs": jobs, "cores": os.cpu_count(), "steps": [],
              "per_sample_seconds": {m: {f"{'on_backbone' if b else 'first_task'}_{kind}": c[b, kind]
                                         for b, kind in c} for m, c in costs.items()},
              "start_up_seconds": start_up}
    print(f"\n{'step':<34}{'wall s':>8}{'procs':>6}{'start-up s':>11}{'epochs':>7}{'reused':>7}"
          f"{'trained':>9}{'validated':>10}{'floor s':>9}{'ratio':>7}")
    for step, wall, processes, rows in steps:
        trained = [(task, on_backbone) for task, on_backbone, seconds in rows if seconds > 0]
        cpu = sum(sizes[task][0] * costs[modality[task]][on_backbone, "train"]
                  + sizes[task][1] * costs[modality[task]][on_backbone, "val"] for task, on_backbone in trained)
        row = {"step": step, "wall_s": round(wall, 1), "processes": len(processes),
               "processes_by_entry": dict(Counter(entry for entry, _ in processes)),
               "start_up_s": round(sum(start_up[entry] for entry, _ in processes), 1),
               "epochs": len(trained), "reused_epochs": len(rows) - len(trained),
               "epoch_s": round(sum(seconds for *_, seconds in rows), 1),
               "samples_trained": sum(sizes[task][0] for task, _ in trained),
               "samples_validated": sum(sizes[task][1] for task, _ in trained),
               "floor_s": round(cpu / parallel, 1)}
        row["ratio"] = round(wall / row["floor_s"], 2) if row["floor_s"] else None
        result["steps"].append(row)
        print(f"{step:<34}{row['wall_s']:>8.1f}{row['processes']:>6}{row['start_up_s']:>11.1f}{row['epochs']:>7}"
              f"{row['reused_epochs']:>7}{row['samples_trained']:>9}{row['samples_validated']:>10}"
              f"{row['floor_s']:>9.1f}{figure(row['ratio'], '.2f'):>7}")
    totals = {key: round(sum(r[key] for r in result["steps"]), 1)
              for key in ("wall_s", "processes", "start_up_s", "epochs", "samples_trained", "samples_validated",
                          "floor_s")}
    totals["ratio"] = round(totals["wall_s"] / totals["floor_s"], 2)
    result["total"] = totals
    print(f"{'pipeline':<34}{totals['wall_s']:>8.1f}{totals['processes']:>6.0f}{totals['start_up_s']:>11.1f}"
          f"{totals['epochs']:>7.0f}{'':>7}{totals['samples_trained']:>9.0f}{totals['samples_validated']:>10.0f}"
          f"{totals['floor_s']:>9.1f}{totals['ratio']:>7.2f}")
    return emit(result)


if __name__ == "__main__":
    run_main(main, get_args_parser)
