"""Readers of the result files the steps write (JSON records and CSVs), torch-free, each a clear error
when a file is malformed: the report, the transfer control and the selection benchmark share them."""
import csv
from pathlib import Path

from utils.errors import UserError
from utils.records import read_json_record


def as_float(value, path):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{path} holds {value!r} where a number belongs; fix or delete it and re-run "
                        f"the step that writes it.")


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
    """Step 1: task name -> accuracy (the file holds "0.dddd" strings)."""
    return {name: as_float(acc, path) for name, acc in read_json_record(path).items()}


def read_selections(path):
    """Step 3-1: target id -> selected backbone task id (1-based ids)."""
    rows = read_csv_rows(path, ["target_id", "task_id"], "run_pickaback/find_backbone.sh")
    return {int(as_float(row["target_id"], path)): int(as_float(row["task_id"], path)) for row in rows}


def require_selections(path):
    """read_selections of a step 3-1 result file that must exist: one sentence naming the step when it is missing."""
    if not Path(path).exists():
        raise UserError(f"{path} is missing; run run_pickaback/find_backbone.sh first.")
    return read_selections(path)


def read_distances(path, column="ddv_euc"):
    """Step 3-1: (target id, candidate id) -> a column of its table (ddv_euc: smaller = more similar)."""
    rows = read_csv_rows(path, ["target_id", "task_id", column], "run_pickaback/find_backbone.sh")
    return {(int(as_float(row["target_id"], path)), int(as_float(row["task_id"], path))):
            as_float(row[column], path) for row in rows}


def read_compared_as(path):
    """Step 3-1: (target id, candidate id) -> how the candidate was compared ("own adapter", "paired probes",
    "target adapter"); empty for a table written before the column existed."""
    try:
        rows = read_csv_rows(path, ["target_id", "task_id", "compared_as"], "run_pickaback/find_backbone.sh")
    except UserError:
        return {}
    return {(int(as_float(row["target_id"], path)), int(as_float(row["task_id"], path))): row["compared_as"]
            for row in rows}


# results_<cfg>.csv (utils/transfer_results.py writes it): every accuracy twice, on the validation split (what
# the pipeline's decisions used) and on the test split (what results report), the split in the column's name.
RESULT_FIELDS = [
    "seed", "arch", "target_id", "target_name", "target_modality", "backbone_id", "backbone_name",
    "backbone_modality", "picked_related",
    "scratch_val_acc", "scratch_test_acc", "on_backbone_val_acc", "on_backbone_test_acc",
    "forward_transfer_val", "forward_transfer_test",
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
                                f"and re-run python -m tools.results_table.")
            return text == "True"
        number = as_float(text, path)
        return int(number) if key in RESULT_INTS else number
    rows = read_csv_rows(path, RESULT_FIELDS, "python -m tools.results_table")
    return {int(as_float(row["target_id"], path)): {key: value(key, row[key]) for key in RESULT_FIELDS}
            for row in rows if row["arch"] == arch}
