"""The one rule by which every decision compares a task's accuracy with its baseline (step 1's accuracy).

Growing (steps 2-1 and 3-2), ending the pruning loop (step 2-1) and choosing the pruning ratio
(step 2-2) all ask `reaches_baseline`, with one tolerance (`tolerance`): by default one standard error of
the baseline's validation accuracy (the one-standard-error rule: a shortfall the validation set cannot
resolve, such as one sample of 200, is no miss); `--allow_acc_loss` / ALLOW_ACC_LOSS fixes it instead,
0.001 being the original's rule. It is never under 0.001, which absorbs the records' four-decimal rounding.
"""
import math
from pathlib import Path

from utils.errors import ExitStatus, UserError
from utils.results import read_baselines

ACC_TOLERANCE = 0.001   # the original's allowance (its step 2-2), and the floor of every tolerance


def tolerance(baseline, val_samples, allow_acc_loss=None):
    """How far under `baseline` an accuracy on `val_samples` validation samples may fall and still reach it:
    `allow_acc_loss` when given, else one (binomial) standard error of the baseline, sqrt(b (1 - b) / n)."""
    if allow_acc_loss is not None:
        return allow_acc_loss
    if not val_samples:
        return ACC_TOLERANCE      # a record of an older version, which did not say how many samples it used
    return max(ACC_TOLERANCE, math.sqrt(baseline * (1.0 - baseline) / val_samples))


def reaches_baseline(accuracy, baseline, tolerance=ACC_TOLERANCE):
    return float(accuracy) + tolerance >= float(baseline)


def read_baseline(jsonfile, task_name):
    """The baseline accuracy of a task from step 1's JSON file; exit 3 (protocol) when it is missing."""
    if not jsonfile or not Path(jsonfile).is_file():
        raise UserError(f"You should provide the baseline accuracy file ({jsonfile or '--jsonfile'}) as the "
                        f"criterion to decide whether the capacity of the network is enough for a new task; "
                        f"run run_pickaback/baseline.sh first.", exit_code=ExitStatus.NO_BASELINE)
    baselines = read_baselines(jsonfile)      # a malformed file: exit 1 with what to do, not the protocol's 3
    if task_name not in baselines:
        raise UserError(f"{jsonfile} has no baseline accuracy for task {task_name}; run run_pickaback/baseline.sh "
                        f"for it first.", exit_code=ExitStatus.NO_BASELINE)
    return baselines[task_name]
