"""JSON record files (baseline accuracies, pruning ratio -> accuracy): atomic, lock-protected updates."""
import csv
import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from utils.errors import UserError


def read_json_record(path):
    """The record as a dict; {} when the file does not exist yet."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path} is not valid JSON; fix or delete it and re-run the step that writes it.")
    if not isinstance(record, dict):
        raise UserError(f"{path} should hold one JSON object; fix or delete it and re-run the step that writes it.")
    return record


@contextmanager
def locked(path):
    """An exclusive lock on `path`.lock while the body runs (concurrent writers of one file wait in turn)."""
    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def atomic_file(path, mode="w", **open_args):
    """A file that appears under `path` only once completely written (a temporary file beside it, then a
    rename), so a crash never leaves half a file under the real name; parent folders are created. It gets
    the permissions open() would give it (a temporary file is readable by its owner only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_args) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path, obj):
    with atomic_file(path, encoding="utf-8") as f:
        json.dump(obj, f)


# A prepared data folder's last file, naming what made it: a folder without it is incomplete and is redone.
COMPLETE_MARKER = ".complete"


def mark_complete(folder, record: dict):
    write_json_atomic(Path(folder) / COMPLETE_MARKER, record)


def write_csv_atomic(path, header, rows):
    """Write a CSV (header, then rows) atomically."""
    with atomic_file(path, newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def update_json_record(path, key, value):
    """Set one key under a file lock, so concurrent writers (two tasks finishing at once) keep each other's keys."""
    with locked(path):
        record = read_json_record(path)
        record[str(key)] = value
        write_json_atomic(path, record)
    return record


def remove_json_keys(path, remove):
    """Remove the keys `remove(key)` is true of, under the file's lock (a missing file stays missing)."""
    with locked(path):
        record = read_json_record(path)
        kept = {key: value for key, value in record.items() if not remove(key)}
        if kept != record:
            write_json_atomic(path, kept)
    return kept
