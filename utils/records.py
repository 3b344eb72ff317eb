"""JSON record files (baseline accuracies, pruning ratio -> accuracy): atomic, lock-protected updates."""
import csv
import errno
import fcntl
import io
import json
import os
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path

from utils.errors import UserError


def read_json_record(path, recover="fix or delete it and re-run the step that writes it"):
    """The record as a dict; {} when the file does not exist yet. A file that is not one JSON object is one
    sentence naming it, ending with `recover` (what to delete, which step to re-run)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path} is not valid JSON (cut short or edited?); {recover}.")
    if not isinstance(record, dict):
        raise UserError(f"{path} should hold one JSON object; {recover}.")
    return record


@contextmanager
def locked(path, busy=None):
    """An exclusive lock on `path`.lock while the body runs (concurrent writers of one file wait in turn; with
    `busy`, a sentence, another holder is that UserError instead of a wait). Where
    the lock cannot be made (a read-only or unwritable folder) this process cannot write either: the body runs
    unlocked, reading what is there, and a write in it fails with its own error (the writers here skip a write
    whose content is already there, so a step with nothing to do succeeds on a read-only output root)."""
    lock_path = Path(f"{path}.lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(lock_path, "a")
    except OSError as err:
        if err.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        lock = None
    if lock is None:
        yield
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (fcntl.LOCK_NB if busy else 0))
        except BlockingIOError:
            raise UserError(busy) from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def atomic_file(path, mode="w", **open_args):
    """A file that appears under `path` only once completely written (a temporary file beside it, then a
    rename), so a crash or a full disk never leaves half a file under the real name, nor the temporary file;
    parent folders are created. It gets the permissions open() would give it (a temporary file is readable by
    its owner only). An operating-system failure names `path` (not the temporary file) for run_main's sentence."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, mode, **open_args) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            with suppress(OSError):
                os.remove(tmp)
        if isinstance(err, OSError) and (err.filename is None
                                         or Path(err.filename).name.startswith(f".{path.name}.")):   # the temp file
            err.filename = str(path)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path, obj):
    """Write `obj` as JSON atomically; a file that already holds exactly that is left alone (nothing to write)."""
    _write_text_atomic(path, json.dumps(obj))


def _write_text_atomic(path, text):
    path = Path(path)
    with suppress(OSError):
        if path.read_bytes() == text.encode("utf-8"):
            return
    with atomic_file(path, encoding="utf-8", newline="") as f:
        f.write(text)


# A prepared data folder's last file, naming what made it: a folder without it is incomplete and is redone.
COMPLETE_MARKER = ".complete"


def mark_complete(folder, record: dict):
    write_json_atomic(Path(folder) / COMPLETE_MARKER, record)


def completion_record(folder) -> dict | None:
    """The record `mark_complete` left in a prepared data folder; None when the folder is incomplete (no marker,
    or one that is not a JSON object: the folder is redone)."""
    try:
        record = json.loads((Path(folder) / COMPLETE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_csv_atomic(path, header, rows):
    """Write a CSV (header, then rows) atomically; a file that already holds exactly that is left alone."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    _write_text_atomic(path, text.getvalue())


def update_json_record(path, key, value):
    """Set one key under a file lock, so concurrent writers (two tasks finishing at once) keep each other's keys;
    a record that already holds the value is not touched (no lock file either)."""
    record = read_json_record(path)
    if record.get(str(key), object()) == value:
        return record
    with locked(path):
        record = read_json_record(path)
        record[str(key)] = value
        write_json_atomic(path, record)
    return record


def remove_json_keys(path, remove):
    """Remove the keys `remove(key)` is true of, under the file's lock (a missing file stays missing, and a record
    without such keys is not touched: no lock file either)."""
    record = read_json_record(path)
    if not any(remove(key) for key in record):
        return record
    with locked(path):
        record = read_json_record(path)
        kept = {key: value for key, value in record.items() if not remove(key)}
        if kept != record:
            write_json_atomic(path, kept)
    return kept
