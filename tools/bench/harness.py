"""What the benchmarks share: the pipeline run they read, a stopwatch, the JSON last line."""
import json
import time

from utils import paths
from utils.cli import add_arch_arg, seed_int
from utils.dataset_config import CONFIG_HELP


def add_run_arguments(parser, splits=("test", "val")):
    """The pipeline run a benchmark reads: its config, arch and seed, and the split that judges it."""
    parser.add_argument("config", nargs="?", default="demo", help=f"dataset config: {CONFIG_HELP}")
    add_arch_arg(parser)
    parser.add_argument("--seed", type=seed_int, default=paths.DEFAULT_SEED, help="the pipeline run (its seed)")
    parser.add_argument("--split", default=splits[0], choices=splits)
    return parser


def timed(function, *args, **kwargs):
    """(wall seconds, the result) of one call."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def emit(result):
    """Print the figures as one JSON object, the last line of every benchmark's output; the exit status 0."""
    print(json.dumps(result))
    return 0
