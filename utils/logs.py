"""The original's log formats: `train.log` lines through the root logger, `train.csv` rows."""
import csv
import logging
import sys
from pathlib import Path

from utils.records import atomic_file

LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


def setup_logging(log_path=None, verbose=False):
    """Log INFO lines appended to `log_path` (parents created). The console (stdout) gets the lines
    marked for it (`console_info`: a finished or skipped stage, a decision) and warnings, or, with
    `verbose`, every line in the log's format as the original printed it."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter(LOG_FORMAT if verbose else "%(message)s"))
    if not verbose:
        console.addFilter(_meant_for_console)
    root.addHandler(console)
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        log_file = logging.FileHandler(log_path, mode="a", encoding="utf-8")
        log_file.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(log_file)
    return root


def _meant_for_console(record):
    return record.levelno >= logging.WARNING or getattr(record, "console", False)


def console_info(message):
    """An INFO line for the log that a quiet console shows too (the per-epoch lines stay in the log)."""
    logging.info(message, extra={"console": True})


def stage_line(task, stage, val_acc, test_acc, seconds, outcome=""):
    """The one console line of a finished training stage."""
    line = f"{task} {stage}: val accuracy {val_acc:.4f}, test accuracy {test_acc:.4f} ({seconds:.0f}s)"
    return f"{line}; {outcome}" if outcome else line


def train_line(epoch, loss, accuracy, lr, sparsity, mpl):
    return (f"In train()-> Train Ep. #{epoch} loss: {loss:.3f}, accuracy: {accuracy * 100:.2f}, "
            f"lr: {lr}, sparsity: {sparsity:.3f}, network_width_mpl: {mpl}")


def validate_line(epoch, loss, accuracy, stats):
    """`stats` is CPGModel.stats(): sparsity, task ratio of the active task, zero ratio, mpl, shared ratio."""
    line = (f"In validate()-> Val Ep. #{epoch} loss: {loss:.3f}, accuracy: {accuracy * 100:.2f}, "
            f"sparsity: {stats['sparsity']:.3f}, task{stats['task_index']} ratio: {stats['task_ratio']:.3f}, "
            f"zero ratio: {stats['zero_ratio']:.3f}, mpl: {stats['mpl']}")
    if stats["task_index"] > 1:  # task 1 shares nothing: the original printed no shared_ratio for it
        line += f", shared_ratio: {stats['shared_ratio']:.3f}"
    return line


def read_train_csv(path):
    """The rows of a `train.csv` ([] when it does not exist yet)."""
    if not Path(path).exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [row for row in csv.reader(f) if row]


class TrainCsv:
    """`train.csv` rows `epoch_idx,val_acc,train_acc,stage,seconds` (the original's four columns, then the epoch's
    wall time, training and validation: what the continual-learning table sums as a method's training time).

    The original appended every run's rows, so a re-run duplicated them; here a running stage writes its rows
    to `train.csv.partial`, and `commit_train_csv` puts them in place of the stage's earlier rows once its
    checkpoint is written: a run killed before that leaves the finished history as it was. A resumed stage starts
    from `rows`, the rows of its finished epochs that its state saved: the folder's one `.partial` file may hold
    another run's by then (another EPOCHS, killed too). A state of a version that saved none keeps the file's rows
    of its `done_epochs` epochs.
    """

    def __init__(self, path, stage, done_epochs=0, rows=None):
        self.path, self.stage = Path(path), stage
        self.pending = pending_rows_file(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if rows is None:
            source = self.pending if self.pending.exists() else self.path   # resumed from a version without it
            rows = [row for row in read_train_csv(source) if row[3:4] == [stage] and int(row[0]) < done_epochs]
        self.rows = [list(row) for row in rows]
        _write_rows(self.pending, self.rows)

    def append(self, epoch_idx, val_acc, train_acc, seconds):
        row = [str(epoch_idx), str(val_acc), str(train_acc), self.stage, f"{seconds:.2f}"]    # as csv reads it back
        self.rows.append(row)
        with open(self.pending, "a", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow(row)


def training_seconds(path):
    """The summed epoch times of a train.csv (0 for a missing file; rows of versions without the column count 0)."""
    return sum(float(row[4]) for row in read_train_csv(path) if len(row) > 4)


def pending_rows_file(path):
    return Path(path).with_name(Path(path).name + ".partial")


def commit_train_csv(path, stage):
    """Replace `stage`'s rows of train.csv by those its finished run wrote (called once its checkpoint is saved)."""
    pending = pending_rows_file(path)
    if not pending.exists():
        return
    kept = [row for row in read_train_csv(path) if row[3:4] != [stage]]
    _write_rows(path, kept + read_train_csv(pending))
    pending.unlink()


def remove_train_csv_rows(path, of_stage):
    """Remove the rows of the stages `of_stage(stage name)` is true of (stages whose outputs were removed)."""
    rows = read_train_csv(path)
    kept = [row for row in rows if len(row) < 4 or not of_stage(row[3])]
    if len(kept) < len(rows):
        _write_rows(path, kept)


def _write_rows(path, rows):
    with atomic_file(path, newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
