"""Checkpoint files: one plain dict, written atomically, read as untrusted input (a backbone may come from
another device, so loading one must not run its code).

Payload keys: "format" (FORMAT), "arch", "profile", "config" (dataset config name), "model"
(= CPGModel.checkpoint_state()), "epoch", "accuracy" (val), "test_accuracy", "args" (plain values).
Only tensors, str, int, float, bool, None, list and dict go inside, so `torch.load(weights_only=True)`
can read it: a peer's checkpoint that carries a pickled object is refused before any of its code runs.
Writes go through `utils.records.atomic_file` (a temporary file, then a rename), so a crash never leaves a
half-written checkpoint under the real name.
"""
import pickle
import zipfile
from pathlib import Path

import torch

from utils.errors import UserError
from utils.provenance import why_stale
from utils.records import atomic_file

FORMAT = "mmpab-checkpoint-1"


def save_checkpoint(path, payload: dict) -> None:
    """Write `payload` to `path` atomically (parent folders created)."""
    with atomic_file(path, "wb") as f:
        torch.save({"format": FORMAT, **payload}, f)


def load_checkpoint(path, *, expect_arch=None, expect_config=None) -> dict:
    """Read a checkpoint on CPU; UserError (naming the file) if missing, corrupt, unsafe or mismatched."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Checkpoint {path} does not exist.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UserError(f"Checkpoint {path} holds objects other than tensors and plain values, "
                        f"so it was not loaded ({_first_line(err)}).") from err
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise UserError(f"Checkpoint {path} is corrupt or not a checkpoint ({_first_line(err)}).") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"Checkpoint {path} is not an MM-Pick-a-back checkpoint (format {FORMAT} expected).")
    for key in ("arch", "profile", "model"):
        if key not in payload:
            raise UserError(f"Checkpoint {path} lacks the entry '{key}'.")
    if expect_arch is not None and payload["arch"] != expect_arch:
        raise UserError(f"Checkpoint {path} holds a {payload['arch']} model, not the expected {expect_arch}.")
    if expect_config is not None and payload.get("config") != expect_config:
        raise UserError(f"Checkpoint {path} was trained on dataset config '{payload.get('config')}', "
                        f"not '{expect_config}'.")
    return payload


NOT_MADE = "not made yet"


def why_redo(path, wanted):
    """None when the checkpoint at `path` was made with the provenance `wanted` (utils/provenance.py), else
    the reason to make it again, in words."""
    if not Path(path).is_file():
        return NOT_MADE
    return why_stale(load_checkpoint(path).get("provenance"), wanted)


def _first_line(err):
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def save_model(path, model, config_name, **extra) -> None:
    """Save a CPGModel with its dataset config name and plain-valued extras (epoch, accuracy, args...)."""
    save_checkpoint(path, {"arch": model.arch, "profile": model.profile, "config": config_name,
                           "model": model.checkpoint_state(), **extra})


def load_model(path, *, expect_arch=None, expect_config=None):
    """(CPGModel, payload) from a checkpoint file, validated; every failure is one sentence naming the file."""
    from models.cpg import CPGModel  # models import utils; import here to keep utils importable alone

    payload = load_checkpoint(path, expect_arch=expect_arch, expect_config=expect_config)
    try:
        return CPGModel.from_checkpoint_state(payload["model"]), payload
    except UserError as err:
        raise UserError(f"Checkpoint {path}: {err}") from err
