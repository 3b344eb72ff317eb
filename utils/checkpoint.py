"""Checkpoint files: one plain dict, written atomically, read as untrusted input (a backbone may come from
another device, so loading one must not run its code).

Payload keys: "format" (FORMAT), "arch", "profile", "config" (dataset config name), "model"
(= model_state(CPGModel)), "epoch", "accuracy" (val), "test_accuracy", "args" (plain values).
Only tensors, str, int, float, bool, None, list and dict go inside, so `torch.load(weights_only=True)`
can read it: a peer's checkpoint that carries a pickled object is refused before any of its code runs.
Writes go through `utils.records.atomic_file` (a temporary file, then a rename), so a crash never leaves a
half-written checkpoint under the real name.
"""
import errno
import os
import pickle
import zipfile
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from models.cpg import CPGModel, TaskInfo
from models.masking import OWNER_DTYPE, raw_weight
from utils.errors import UserError
from utils.paths import stage_state_file
from utils.provenance import why_stale
from utils.records import atomic_file

FORMAT = "mmpab-checkpoint-1"
MODEL_FORMAT = "cpg-model-1"


def save_checkpoint(path, payload: dict) -> None:
    """Write `payload` to `path` atomically (parent folders created). A failed write (a full disk) leaves neither
    a half file nor the temporary one, and raises the operating system's error naming `path`: torch reports it
    as a RuntimeError of its stream writer that never mentions the cause."""
    with atomic_file(path, "wb") as f:     # an OSError without a file name gets `path`
        try:
            torch.save({"format": FORMAT, **payload}, f)
        except RuntimeError as err:
            failure = _write_failure(err, path)
            if failure is None:
                raise
            raise failure from err


def _write_failure(err, path):
    """The OSError (naming `path`) behind torch.save's RuntimeError, whose message ("unexpected pos ...",
    "PytorchStreamWriter failed writing file ...: file write failed") never names the cause; None when the
    RuntimeError is not a failed write."""
    cause = err.__cause__ or err.__context__
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if cause is not None:
        return OSError(cause.errno, cause.strerror, str(path))
    if "file write failed" in str(err):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))   # what a failed write is in practice
    return None


def load_checkpoint(path, *, expect_arch=None, expect_config=None) -> dict:
    """Read a checkpoint on CPU; UserError (naming the file) if missing, corrupt, unsafe or mismatched: another
    arch than `expect_arch`, another dataset config than `expect_config` (a DatasetConfig), or another version of
    it (its file edited since the checkpoint was made: a model of other normalisation, patches or split)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Checkpoint {path} does not exist.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UserError(f"Checkpoint {path} holds objects other than tensors and plain values, "
                        f"so it was not loaded ({_first_line(err)}).") from err
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise UserError(f"Checkpoint {path} is corrupt or not a checkpoint ({_first_line(err)}); delete it and re-run "
                        f"the step that writes it (FORCE=1 redoes it over the file).") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"Checkpoint {path} is not an MM-Pick-a-back checkpoint (format {FORMAT} expected).")
    for key in ("arch", "profile", "model"):
        if key not in payload:
            raise UserError(f"Checkpoint {path} lacks the entry '{key}'.")
    if expect_arch is not None and payload["arch"] != expect_arch:
        raise UserError(f"Checkpoint {path} holds a {payload['arch']} model, not the expected {expect_arch}.")
    if expect_config is not None:
        _check_made_with(path, payload, expect_config)
    return payload


def _check_made_with(path, payload, cfg):
    if payload.get("config") != cfg.name:
        raise UserError(f"Checkpoint {path} was trained on dataset config '{payload.get('config')}', not '{cfg.name}'.")
    made_with = (payload.get("provenance") or {}).get("settings", {}).get("dataset_config")
    if made_with is not None and made_with != cfg.provenance_id:
        raise UserError(f"Checkpoint {path} was made with another version of dataset config '{cfg.name}' ({made_with}, "
                        f"now {cfg.provenance_id}); re-run the step that made it, and the steps after it, for this "
                        f"version.")


def remove_other_checkpoints(keep):
    """Delete the other checkpoint-*.pth.tar of `keep`'s folder, and the per-epoch states of their unfinished runs
    (`.partial`): a stage's folder holds one checkpoint, so no later step has to guess which one is current, and
    no later run resumes a state older than it (its train.csv rows would mix two runs)."""
    folder, own = Path(keep).parent, (Path(keep), stage_state_file(keep))
    for old in [*folder.glob("checkpoint-*.pth.tar"), *folder.glob("checkpoint-*.pth.tar.partial")]:
        if old not in own:
            old.unlink()


def why_redo(path, wanted):
    """None when the checkpoint at `path` was made with the provenance `wanted` (utils/provenance.py), else
    the reason to make it again, in words."""
    if not Path(path).is_file():
        return "not made yet"
    return why_stale(load_checkpoint(path).get("provenance"), wanted)


def _first_line(err):
    text = str(err).strip()
    if not text:
        return type(err).__name__
    line = text.splitlines()[0]
    return line if len(line) <= 200 else line[:200].rsplit(" ", 1)[0] + " ..."


def save_model(path, model, config_name, **extra) -> None:
    """Save a CPGModel with its dataset config name and plain-valued extras (epoch, accuracy, args...)."""
    save_checkpoint(path, {"arch": model.arch, "profile": model.profile, "config": config_name,
                           "model": model_state(model), **extra})


def load_model(path, *, expect_arch=None, expect_config=None):
    """(CPGModel, payload) from a checkpoint file, validated; every failure is one sentence naming the file."""
    payload = load_checkpoint(path, expect_arch=expect_arch, expect_config=expect_config)
    try:
        return model_from_state(payload["model"]), payload
    except UserError as err:
        raise UserError(f"Checkpoint {path}: {err}") from err


# ------------------------------------------------------------------------------------ the model's state
def model_state(model) -> dict:
    """A CPGModel as a plain dict (tensors/str/int/float/list/dict only), from which `model_from_state` rebuilds
    it exactly: every task's registry entry, the raw weights, owner maps and piggymasks, every task's private
    state (the active one's also at the model's width) and every task's head and adapter."""
    def cpu(t):
        return t.detach().cpu().clone()
    return {
        "format": MODEL_FORMAT, "arch": model.arch, "profile": model.profile, "width_mult": model.width_mult,
        "widths": dict(model.body.widths),
        "tasks": [asdict(model.tasks[name]) for name in model.task_names],
        "active_task": model.active_task,
        "weights": {layer: cpu(raw_weight(m)) for layer, m in model.maskable.items()},
        "owners": {layer: cpu(mask.owner) for layer, mask in model.masks.items()},
        "piggymasks": {name: {layer: cpu(mask.piggymasks[str(t)]) for layer, mask in model.masks.items()}
                       for t, name in enumerate(model.task_names, 1) if t >= 2},
        "private": {name: {k: cpu(v) for k, v in model.private_state(name).items()} for name in model.task_names},
        "live_private": {k: cpu(v) for k, v in model.live_private().items()},
        "task_modules": {name: {f"{prefix}.{k}": cpu(v) for prefix, module in model.body.task_modules(name).items()
                                for k, v in module.state_dict().items()} for name in model.task_names},
    }


def model_from_state(state: dict) -> CPGModel:
    """Rebuild a model exactly; UserError when the state is incomplete or does not fit the architecture."""
    try:
        return _rebuild(state)
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"The saved model state does not fit the architecture it names ({reason}).") from err


@torch.no_grad()
def _rebuild(state):
    if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
        raise UserError(f"The saved model state is not in format '{MODEL_FORMAT}'.")
    model = CPGModel(state["arch"], state["profile"], state["width_mult"])
    if dict(model.body.widths) != dict(state["widths"]):
        raise UserError(f"The saved layer widths {state['widths']} do not match {model.body.widths}.")
    for entry in state["tasks"]:
        info = TaskInfo(**entry)
        model.register_task(info)
        for prefix, module in model.body.task_modules(info.name).items():
            sub = {k[len(prefix) + 1:]: v for k, v in state["task_modules"][info.name].items()
                   if k.startswith(prefix + ".")}
            module.load_state_dict(sub, strict=True)
    for layer, module in model.maskable.items():
        mask = model.masks[layer]
        _copy_exact(raw_weight(module), state["weights"][layer], layer)
        _copy_exact(mask.owner, state["owners"][layer].to(OWNER_DTYPE), layer)
    for t, name in enumerate(model.task_names, 1):
        if t >= 2:
            for layer, mask in model.masks.items():
                piggy = state["piggymasks"][name][layer]
                if piggy.shape != mask.owner.shape:
                    raise UserError(f"The saved piggymask of layer {layer} has the wrong shape.")
                mask.piggymasks[str(t)] = nn.Parameter(piggy.clone().float())
    model.load_private({name: state["private"][name] for name in model.task_names})
    if state["active_task"] is not None:
        model.set_active_task(state["active_task"])
        live = model.live_private()
        if set(live) != set(state["live_private"]):
            raise UserError("The saved per-task state names do not match the architecture.")
        for k, v in live.items():
            _copy_exact(v, state["live_private"][k], k)
    return model


def _copy_exact(dest, src, name):
    if not torch.is_tensor(src) or tuple(src.shape) != tuple(dest.shape):
        raise UserError(f"The saved tensor '{name}' does not have the model's shape {tuple(dest.shape)}.")
    dest.data.copy_(src)
