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
