"""The one rule by which every decision compares a task's accuracy with its baseline (step 1's accuracy).

Growing (steps 2-1 and 3-2), ending the pruning loop (step 2-1) and choosing the pruning ratio
(step 2-2) all ask `reaches_baseline`, with one tolerance: the original's 0.001 allowance of step
2-2, which also absorbs the rounding of the records (accuracies are stored with four decimals).
"""
from pathlib import Path

from utils.errors import ExitStatus, UserError
from utils.results import read_baselines

ACC_TOLERANCE = 0.001


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
