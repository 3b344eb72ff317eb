"""Command-line pieces shared by the entry points: the parser class, typed arguments, common flags.

Every entry point builds its parser with `ArgumentParser` from here, so a usage error exits 1
(never 2, which the bash grow loop reads as "grow the network and retry"; see utils/errors.py).
The `type=` functions below check a number's range while parsing: a bad value is one sentence
naming the flag and exit 1, before anything is trained or recorded. Imports no torch.
"""
import argparse
import math
import sys

from utils.dataset_config import CONFIG_HELP
from utils.errors import UserError
from utils.paths import DEFAULT_SEED


class ArgumentParser(argparse.ArgumentParser):
    """argparse with exit status 1 on a usage error (2 is the grow loop's "grow"), reported as one line,
    `error: <message> (see --help).`, like every other error a user can cause."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help).", file=sys.stderr)
        sys.exit(1)


# ---------------------------------------------------------------- typed arguments (argparse `type=`)
# argparse reports an ArgumentTypeError as "argument --flag: <message>" through parser.error (exit 1).

def _whole_number(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def _number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _checked(parse, accepts, requirement):
    """An argparse `type=`: `parse` the text, then refuse a value `accepts` rejects, naming the requirement."""
    def check(text):
        value = parse(text)
        if not accepts(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value
    return check


positive_int = _checked(_whole_number, lambda v: v >= 1, "a whole number of at least 1")  # epochs, sizes, counts
non_negative_int = _checked(_whole_number, lambda v: v >= 0, "a whole number of at least 0")  # iteration budgets
seed_int = _checked(_whole_number, lambda v: 0 <= v < 2 ** 32, f"a whole number from 0 to {2 ** 32 - 1}")  # numpy's
positive_even_int = _checked(_whole_number, lambda v: v >= 2 and v % 2 == 0,   # ModelDiff pairs input k, k + n/2
                             "an even whole number of at least 2 (inputs are paired k, k + n/2)")
positive_float = _checked(_number, lambda v: v > 0, "a number greater than 0")  # lr, width, epsilon
non_negative_float = _checked(_number, lambda v: v >= 0, "a number of at least 0")  # weight decay, mask lr
fraction = _checked(_number, lambda v: 0 <= v < 1, "a number from 0 up to (not including) 1")  # sparsities, shares


ARCHS = ("perceiver_io", "lenet5")   # models.cpg.ARCHS builds them (a test holds the two lists equal)


def add_arch_arg(parser):
    parser.add_argument("--arch", default=ARCHS[0], choices=ARCHS)


def add_common_args(p):
    add_arch_arg(p)
    p.add_argument("--profile", default="demo", choices=["demo", "paper"], help="model size")
    p.add_argument("--dataset_config", default="demo", help=f"dataset config: {CONFIG_HELP}")
    p.add_argument("--num_classes", type=int, default=-1, help="-1: from the dataset config")
    p.add_argument("--modality", choices=["image", "text"], help="checked against the config")
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"],
                   help="of the weights: sgd (Nesterov, the original's) or adam; the lr schedule is the same")
    p.add_argument("--lr", type=positive_float, default=1e-2)
    p.add_argument("--batch_size", type=positive_int, default=32)
    p.add_argument("--val_batch_size", type=positive_int, default=100)
    p.add_argument("--weight_decay", type=non_negative_float, default=4e-5)
    p.add_argument("--epochs", type=positive_int, default=100)
    p.add_argument("--val_fraction", type=fraction, default=None,
                   help="validation split carved from train for decisions (default: the config's, 0.1 "
                        "for real data); 0 = use test (the original)")
    p.add_argument("--seed", type=seed_int, default=DEFAULT_SEED)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--force", action="store_true", help="redo work whose result exists")
    p.add_argument("--verbose", action="store_true",
                   help="echo every train.log line (each epoch's) on the console, not just one line per stage")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write loss and accuracy per epoch for TensorBoard (tensorboard/ beside train.log)")
    return p


def arch_reads(arch, task) -> bool:
    """Whether `arch` has a model of `task`'s modality (LeNet-5 reads images only)."""
    return arch != "lenet5" or task.modality == "image"


def resolve_task(cfg, key, args):
    """The TaskSpec named by `key` (name or 1-based id), checked against --num_classes/--modality/--arch."""
    task = cfg.task(key)
    if args.num_classes not in (-1, task.num_classes):
        raise UserError(f"--num_classes {args.num_classes} contradicts the config: task {task.name} "
                        f"has {task.num_classes} classes (pass -1 to take it from the config).")
    if args.modality and args.modality != task.modality:
        raise UserError(f"--modality {args.modality} contradicts the config: task {task.name} is a "
                        f"{task.modality} task.")
    if not arch_reads(args.arch, task):
        raise UserError(f"lenet5 reads images only, and task {task.name} is a text task; use --arch perceiver_io.")
    return task
