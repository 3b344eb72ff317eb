"""Loader throughput of one image task: DataLoader over image files vs the in-memory tensor path.

    python -m tools.bench.data [--config demo] [--task 1] [--epochs 3] [--batch-size 32]

Training samples per second (shuffled, augmented, normalised batches on the device), the one-off setup (the
in-memory path's decoding) reported apart.
"""
import time

import torch

from tools.bench.harness import emit, timed
from utils.cli import ArgumentParser, positive_int
from utils.data import task_loaders
from utils.dataset_config import get_config
from utils.errors import UserError, run_main


def get_args_parser():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="demo")
    parser.add_argument("--task", default="1", help="id or name of an image task")
    parser.add_argument("--epochs", type=positive_int, default=3)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch intra-op threads (default: torch's)")
    return parser


def samples_per_second(loader, epochs, min_seconds=2.0):
    """At least `epochs` passes and `min_seconds`, so a tiny task still gives a stable figure."""
    count, passes, start = 0, 0, time.perf_counter()
    while passes < epochs or time.perf_counter() - start < min_seconds:
        count += sum(len(y) for _, y in loader)
        passes += 1
    return count / (time.perf_counter() - start)


def main(args):
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cfg = get_config(args.config)
    task = cfg.task(args.task)
    if task.modality != "image":
        raise UserError(f"Task {task.name} is a text task; the benchmark compares image loaders.")
    result = dict(config=cfg.name, task=task.name, epochs=args.epochs, batch_size=args.batch_size,
                  threads=torch.get_num_threads())
    for path, in_memory in (("file", False), ("memory", True)):
        setup, (train, _, _) = timed(task_loaders, cfg, task, batch_size=args.batch_size, device=args.device,
                                     in_memory=in_memory)
        result[f"{path}_setup_s"] = round(setup, 3)
        result[f"{path}_samples_per_s"] = round(samples_per_second(train, args.epochs), 1)
        print(f"{path:>6} path: {result[f'{path}_samples_per_s']:>10.1f} samples/s (setup {result[f'{path}_setup_s']} s)")
    result["speedup"] = round(result["memory_samples_per_s"] / result["file_samples_per_s"], 1)
    return emit(result)


if __name__ == "__main__":
    run_main(main, get_args_parser)
