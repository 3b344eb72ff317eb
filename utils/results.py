"""Readers of the files the steps write and later steps read (JSON records, CSVs, the side files of a run:
record.txt, chosen.json, outcome.json), torch-free, each one reader per file kind: a malformed file ends in one
sentence naming it and how to recover (the file to delete, the step to re-run). The pipeline's steps, the report,
the transfer control and the selection benchmark share them."""
import csv
import math
from pathlib import Path

from utils.errors import ExitStatus, UserError
from utils.records import read_json_record

STEP_1 = "run_pickaback/baseline.sh"
STEP_2_1 = "run_pickaback/wo_backbone.sh"
STEP_2_2 = "run_pickaback/select_pruning_ratio_of_backbone.sh"
STEP_3_1 = "run_pickaback/find_backbone.sh"
RESULTS_TABLE = "python -m tools.results_table"
CHOSEN_FILE = "chosen.json"      # step 2-2's choice: which checkpoint of gradual_prune/ is the backbone
OUTCOME_FILE = "outcome.json"    # a training stage's result beside its checkpoint (CPG_MM_main_normal.py)


def as_float(value, path, recover="fix or delete it and re-run the step that writes it"):
    """`value` as a number (a number or a numeric string, not true/false); else one sentence naming `path`."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{path} holds {value!r} where a number belongs; {recover}.")


def same_to_the_record(a, b) -> bool:
    """Whether two figures agree to the 4 decimals the records keep (outcome.json, the result CSVs)."""
    return round(float(a), 4) == round(float(b), 4)


def as_accuracy(value, path, recover):
    """An accuracy (a fraction between 0 and 1) read from `path`."""
    number = as_float(value, path, recover)
    if not 0.0 <= number <= 1.0:     # also refuses nan
        raise UserError(f"{path} holds the accuracy {value!r}, outside 0..1; {recover}.")
    return number


def as_ratio(value, path, recover):
    """A pruning ratio (a share of weights freed: at least 0, under 1) read from `path`."""
    number = as_float(value, path, recover)
    if not 0.0 <= number < 1.0:
        raise UserError(f"{path} holds the pruning ratio {value!r}, outside 0..1; {recover}.")
    return number


def read_csv_rows(path, fields, writer_step):
    """The rows of a result CSV as dicts; [] when the file does not exist yet."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not set(fields) <= set(reader.fieldnames):
            raise UserError(f"{path} should have the columns {', '.join(fields)}; "
                            f"delete it and re-run {writer_step}.")
        return [row for row in reader if any(row.values())]


def read_baselines(path):
    """Step 1's logs_<arch>/baseline_<cfg>_acc.txt (or its _test_ twin): task name -> accuracy (the file holds
    "0.dddd" strings); {} when it does not exist yet."""
    recover = (f"correct that entry, or delete the file (every task's entry) and re-run {STEP_1}, which trains "
               f"again the tasks the file lacks")
    return {name: as_accuracy(acc, path, recover) for name, acc in read_json_record(path, recover).items()}


def read_prune_record(path):
    """Step 2-1's gradual_prune/record.txt: pruning ratio -> validation accuracy, sorted by ratio; {} when not
    written yet."""
    recover = f"delete it and re-run {STEP_2_1} for this task with FORCE=1 (a finished stage does not write it again)"
    record = {}
    for key, acc in read_json_record(path, recover).items():
        record[as_ratio(key, path, recover)] = as_accuracy(acc, path, recover)
    return dict(sorted(record.items()))


def require_entries(record, keys, path, recover):
    """`record` (a side file's JSON object), or one sentence naming the entries it lacks."""
    missing = [key for key in keys if key not in record]
    if missing:
        raise UserError(f"{path} lacks the entr{'ies' if len(missing) > 1 else 'y'} {', '.join(missing)}; "
                        f"{recover}.")
    return record


def read_chosen(path):
    """Step 2-2's gradual_prune/chosen.json: {"ratio", "accuracy" (numbers), "checkpoint" (a file name in the same
    folder), "source"}, or None when no ratio was chosen yet. Whether the checkpoint exists is `chosen_checkpoint`'s
    question."""
    if not Path(path).exists():
        return None
    recover = f"delete it and re-run {STEP_2_2}"
    chosen = require_entries(read_json_record(path, recover), ("ratio", "accuracy", "checkpoint"), path, recover)
    name = chosen["checkpoint"]
    if not isinstance(name, str) or not name.endswith(".pth.tar") or Path(name).name != name:
        raise UserError(f"{path} names {name!r} as its checkpoint, not a checkpoint file of its folder; {recover}.")
    return {"ratio": as_ratio(chosen["ratio"], path, recover), "accuracy": as_accuracy(chosen["accuracy"], path, recover), "checkpoint": name,
            "source": chosen.get("source")}


def chosen_checkpoint(folder):
    """The checkpoint step 2-2's chosen.json in `folder` names, checked to exist; None when there is no choice."""
    path = Path(folder) / CHOSEN_FILE
    chosen = read_chosen(path)
    if chosen is None:
        return None
    checkpoint = Path(folder) / chosen["checkpoint"]
    if not checkpoint.is_file():
        raise UserError(f"{path} names {chosen['checkpoint']}, which is not in {folder}; re-run {STEP_2_2}, "
                        f"which installs the chosen checkpoint again.")
    return checkpoint


def decided_against_another_baseline(outcome, baseline):
    """Whether a stage's outcome (read_outcome's) records another step-1 baseline than `baseline`, the one step 1
    holds now (step 1 re-run since); False when either is unknown (an older outcome, no baseline yet)."""
    return outcome is not None and baseline is not None and outcome.get("baseline", baseline) != baseline


def read_outcome(folder):
    """A training stage's outcome.json in `folder` (beside the stage's checkpoint; a step 3-2 or transfer-control
    run's is in its scratch/): {"width", "val_accuracy", "test_accuracy" (numbers), "status" (ExitStatus; DONE
    when an older file lacks it), "reached_baseline" (bool or None), "start" (None or {"path", "fingerprint"}),
    ...the other entries as written}; None when the stage has not finished."""
    path = Path(folder) / OUTCOME_FILE
    if not path.is_file():
        return None
    recover = f"delete the folder {folder} and train that run again (a finished run does not write it again)"
    outcome = require_entries(read_json_record(path, recover), ("width", "val_accuracy", "test_accuracy"), path,
                              recover)
    width = as_float(outcome["width"], path, recover)
    if not (math.isfinite(width) and width > 0):
        raise UserError(f"{path} holds the width {outcome['width']!r}, not a positive number; {recover}.")
    status = outcome.get("status", ExitStatus.DONE)
    if isinstance(status, bool) or status not in {int(s) for s in ExitStatus}:
        raise UserError(f"{path} holds the status {status!r}, not one of the exit codes "
                        f"{', '.join(str(int(s)) for s in ExitStatus)}; {recover}.")
    reached = outcome.get("reached_baseline")
    if reached is not None and not isinstance(reached, bool):
        raise UserError(f"{path} holds {reached!r} in reached_baseline, where true or false belongs; {recover}.")
    start = outcome.get("start")
    if start is not None and not (isinstance(start, dict) and isinstance(start.get("path"), str)
                                  and isinstance(start.get("fingerprint"), str)):
        raise UserError(f"{path} holds {start!r} as the run's start, not a path and fingerprint; {recover}.")
    return {**outcome, "width": width, "val_accuracy": as_accuracy(outcome["val_accuracy"], path, recover),
            "test_accuracy": as_accuracy(outcome["test_accuracy"], path, recover), "status": ExitStatus(status),
            "reached_baseline": reached, "start": start}


def read_selections(path):
    """Step 3-1: target id -> selected backbone task id (1-based ids)."""
    rows = read_csv_rows(path, ["target_id", "task_id"], STEP_3_1)
    return {int(as_float(row["target_id"], path)): int(as_float(row["task_id"], path)) for row in rows}


def require_selections(path):
    """read_selections of a step 3-1 result file that must exist: one sentence naming the step when it is missing."""
    if not Path(path).exists():
        raise UserError(f"{path} is missing; run {STEP_3_1} first.")
    return read_selections(path)


def read_table(path, columns=()):
    """Step 3-1's pickaback_<cfg>_table.csv: {(target id, candidate id): its row as a dict of strings}, holding at
    least `columns`; {} when there is none yet. A row that is not a pair of task ids (a repeated header, a cut
    line) or a pair given twice is one sentence."""
    recover = f"delete it (and its .json beside it) and re-run {STEP_3_1}"
    table = {}
    for row in read_csv_rows(path, ["target_id", "task_id", *columns], STEP_3_1):
        ids = (row["target_id"], row["task_id"])
        if not all(str(i).isdigit() for i in ids):
            raise UserError(f"{path} holds the row {list(row.values())!r}, not a pair of task ids; {recover}.")
        pair = tuple(map(int, ids))
        if pair in table:
            raise UserError(f"{path} holds the pair {pair[0]},{pair[1]} twice; {recover}.")
        table[pair] = row
    return table


def read_distances(path, column="ddv_euc"):
    """Step 3-1: (target id, candidate id) -> a column of its table (ddv_euc: smaller = more similar)."""
    return {pair: as_float(row[column], path, f"delete it and re-run {STEP_3_1}")
            for pair, row in read_table(path, [column]).items()}


def read_compared_as(path):
    """Step 3-1: (target id, candidate id) -> how the candidate was compared ("own adapter", "paired probes",
    "target adapter"); empty for a table written before the column existed."""
    table = read_table(path)
    if any("compared_as" not in row for row in table.values()):
        return {}
    return {pair: row["compared_as"] for pair, row in table.items()}


# results_<cfg>.csv (tools/results_table.py writes it): every accuracy twice, on the validation split (what
# the pipeline's decisions used) and on the test split (what results report), the split in the column's name.
RESULT_FIELDS = [
    "seed", "arch", "target_id", "target_name", "target_modality", "backbone_id", "backbone_name",
    "backbone_modality", "picked_related",
    "scratch_val_acc", "scratch_test_acc", "on_backbone_val_acc", "on_backbone_test_acc",
    "forward_transfer_val", "forward_transfer_test", "on_untrained_val_acc", "on_untrained_test_acc",
    "knowledge_transfer_val", "knowledge_transfer_test",
    "backbone_before_val_acc", "backbone_before_test_acc", "backbone_after_val_acc", "backbone_after_test_acc",
    "backward_transfer_val", "backward_transfer_test", "backbone_outputs_identical",
    "final_width", "shared_ratio", "regret_val", "regret_test",
]
RESULT_INTS = ("seed", "target_id", "backbone_id")
RESULT_FLAGS = ("picked_related", "backbone_outputs_identical")      # True / False; empty = not applicable
RESULT_TEXTS = ("arch", "target_name", "target_modality", "backbone_name", "backbone_modality")


def read_results(path, arch):
    """results_<cfg>.csv: target id -> its row with numbers as numbers (None where empty), flags as bools; only
    the rows of `arch` ({} when the file does not exist yet)."""
    def value(key, text):
        if key in RESULT_TEXTS:
            return text
        if text == "":
            return None
        if key in RESULT_FLAGS:
            if text not in ("True", "False"):
                raise UserError(f"{path} holds {text!r} in {key}, where True, False or nothing belongs; delete it "
                                f"and re-run {RESULTS_TABLE}.")
            return text == "True"
        number = as_float(text, path)
        return int(number) if key in RESULT_INTS else number
    rows = read_csv_rows(path, RESULT_FIELDS, RESULTS_TABLE)
    return {int(as_float(row["target_id"], path)): {key: value(key, row[key]) for key in RESULT_FIELDS}
            for row in rows if row["arch"] == arch}


CL_FIELDS = ["method", "seeds", "tasks", "acc", "acc_ci95", "bwt", "bwt_ci95", "fwt", "fwt_ci95",
             "learned_vs_scratch", "models", "width", "parameters", "train_seconds"]


def read_cl_table(path):
    """cl_<cfg>.csv (python -m tools.continual table): one row per method, as text; [] when not written yet."""
    return read_csv_rows(path, CL_FIELDS, "python -m tools.continual table")
