"""What produced an output: the settings of the run and a fingerprint of every file it read.

Each finished output stores its provenance (inside the checkpoint, or beside a CSV row), and a
re-run skips it only when the provenance it would have now is the same: a changed seed, lr,
epoch count or search setting, or a changed input checkpoint, redoes the work, and `why_stale`
gives the one-line reason the step prints.
"""
import hashlib
import json
from pathlib import Path

# Arguments that say where to read or write, or how to run, but not what the result is: paths of
# inputs are replaced by their fingerprints, and an output's own path is where it is stored.
NOT_SETTINGS = frozenset({
    "force", "keep_finished", "device", "verbose", "tensorboard", "save_folder", "load_folder", "load_checkpoint",
    "jsonfile", "logfile", "log_path", "pruning_ratio_to_acc_record_file", "csv_path", "baseline_acc_file",
})


def fingerprint(path) -> str:
    """sha256 of the file's bytes (hex, first 16 digits): a rewritten but identical file keeps it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def values_fingerprint(values) -> str:
    """sha256 of JSON-like values (hex, first 16 digits), keys sorted: the same values written in another order,
    layout or file format, or with other comments, keep it."""
    text = json.dumps(values, sort_keys=True, default=str)     # str: a TOML date or time
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def started_from_what_is_there_now(outcome, output_root) -> bool:
    """False when the checkpoint a run started from (its outcome.json's "start": a path inside `output_root` and the
    file's fingerprint) has changed since or is gone: the run trained on an earlier backbone. Runs from a fresh
    model, and runs of versions that did not record their start, count as current."""
    start = outcome.get("start")
    if not start:
        return True
    path = Path(output_root) / start["path"]      # an absolute path stays as it is
    return path.is_file() and fingerprint(path) == start["fingerprint"]


def plain(value):
    """A value as JSON and torch's weights-only loader both keep it (paths and tuples become str/list)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


# What one run of a target (step 3-2's, its untrained twin's, the transfer control's) has of its own beside the
# recipe they share: the width it starts at and may grow to, fresh backbone weights, its training seed.
RUN_OWN_SETTINGS = frozenset({"network_width_multiplier", "max_allowed_network_width_multiplier",
                              "untrained_backbone", "training_seed"})

# A finetune's settings that decide only what follows it (whether to grow, how far the task's pruning must go), not
# how it trains: step 1's run of a task, which has no baseline yet, is step 2-1's finetune of it when the rest agree.
DECISION_SETTINGS = frozenset({"baseline_accuracy", "max_allowed_network_width_multiplier", "total_num_tasks",
                               "allow_acc_loss"})


def same_recipe(settings_a, settings_b) -> bool:
    """Whether two runs of a target were trained alike but for RUN_OWN_SETTINGS; True when either records no
    settings (a version before they were recorded beside the run)."""
    if not isinstance(settings_a, dict) or not isinstance(settings_b, dict):
        return True
    return _changed_setting(settings_a, settings_b, ignore=RUN_OWN_SETTINGS) is None


def settings_of(args, **overrides) -> dict:
    """The arguments that shape the result (every flag but NOT_SETTINGS) and the sizes the model profile
    stands for, with `overrides` applied."""
    settings = {k: plain(v) for k, v in vars(args).items() if k not in NOT_SETTINGS}
    if "arch" in settings and "profile" in settings:
        from models.cpg import profile_sizes   # here, not at the top: the torch-free tools read fingerprints
        settings["profile_sizes"] = profile_sizes(settings["arch"], settings["profile"])
    settings.update({k: plain(v) for k, v in overrides.items()})
    return dict(sorted(settings.items()))


def files_fingerprint(files, root) -> str:
    """One fingerprint of several files, in the order given: each one's path inside `root` and its bytes, so a
    renamed, added, removed or changed file changes it, and the same files under another root do not."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{Path(path).relative_to(root).as_posix()}\0{fingerprint(path)}\n".encode())
    return digest.hexdigest()[:16]


def provenance(settings: dict, inputs: dict, data: str | None = None) -> dict:
    """{"settings": ..., "inputs": {name: fingerprint}} for the files in `inputs` (name -> path), and input
    "data" = `data`, the fingerprint of the task data the run trained on (utils.data.data_fingerprint)."""
    fingerprints = {name: fingerprint(path) for name, path in inputs.items()}
    if data is not None:
        fingerprints["data"] = data
    return {"settings": plain(settings), "inputs": dict(sorted(fingerprints.items()))}


def why_stale(saved, wanted, ignore=()) -> str | None:
    """None when `saved` (an output's stored provenance) matches `wanted`, else the reason, in words.

    Settings named in `ignore` are not compared (e.g. the width while a grow loop fast-forwards).
    """
    if not isinstance(saved, dict) or "settings" not in saved:
        return "it records no settings (it was made by an older version)"
    changed = _changed_setting(saved["settings"], wanted["settings"], ignore)
    if changed is not None:
        return changed
    old_inputs, new_inputs = saved.get("inputs", {}), wanted["inputs"]
    for name in sorted(set(old_inputs) | set(new_inputs)):
        if name not in old_inputs:
            return f"it records no input '{name}'"
        if old_inputs.get(name) != new_inputs.get(name):
            return f"its input '{name}' changed"
    return None


def _changed_setting(old, new, ignore=(), prefix=""):
    """'<name> changed (<old> -> <new>)' for the first setting that differs, descending into settings that are
    dicts (the profile's sizes) to name the entry; None when all agree."""
    for key in sorted(set(old) | set(new)):
        if key in ignore or old.get(key) == new.get(key):
            continue
        if key not in old and new[key] in (None, False):
            continue   # an option added since, left off: the output was made without it too
        if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            nested = _changed_setting(old[key], new[key], prefix=f"{prefix}{key}.")
            if nested is None:
                continue
            return nested
        return f"{prefix}{key} changed ({_shown(old, key)} -> {_shown(new, key)})"
    return None


def _shown(settings, key):
    if key not in settings:
        return "unset"
    return "{...}" if isinstance(settings[key], dict) else repr(settings[key])
