"""One reader per side file (record.txt, chosen.json, baseline accuracies, outcome.json): a malformed file is one
sentence naming it and how to recover; operating-system failures (full disk, read-only or blocked output root)
are sentences too, and a step with nothing to do writes nothing."""
import builtins
import errno
import io
import json
import os
import sys

import pytest

from utils import paths
from utils.baseline import read_baseline
from utils.errors import ExitStatus, UserError, run_main
from utils.records import locked, remove_json_keys, update_json_record, write_csv_atomic, write_json_atomic
from utils.results import read_baselines, read_chosen, read_outcome, read_prune_record

TOOL = "tools.choose_appropriate_pruning_ratio_for_next_task_notrmfiles"


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def run_entry(module, argv, monkeypatch):
    """Run an entry point in-process as its `__main__` would: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "argv", [module.__name__, *map(str, argv)])
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    with pytest.raises(SystemExit) as ended:
        run_main(module.main, module.get_args_parser)
    return ended.value.code, out.getvalue(), err.getvalue()


def assert_one_sentence(code, stderr, *words):
    assert code == 1, stderr
    assert stderr.startswith("error: ") and stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    for word in words:
        assert str(word) in stderr, stderr


# ------------------------------------------------------------------------------ A. one reader per side file
TRUNCATED, NOT_UTF8 = '{"0.0": 0.74, "0.1"', b'{"0.0": 0.74\xff}'

BAD_RECORDS = {"junk key": {"0.0": 0.7, "abc": 0.5}, "string value": {"0.0": 0.7, "0.1": "abc"},
               "null value": {"0.0": None}, "flag value": {"0.0": True}, "accuracy over 1": {"0.0": 74.2},
               "ratio of 1 or more": {"0.0": 0.7, "1.5": 0.6}, "truncated": TRUNCATED, "not utf-8": NOT_UTF8,
               "a list": [0.7, 0.6]}


@pytest.mark.parametrize("content", BAD_RECORDS.values(), ids=BAD_RECORDS.keys())
def test_malformed_prune_record_names_the_file_and_step_2_1(tmp_path, content):
    path = write(tmp_path / "gradual_prune" / "record.txt", content)
    with pytest.raises(UserError) as err:
        read_prune_record(path)
    assert str(path) in str(err.value) and "run_pickaback/wo_backbone.sh" in str(err.value)


def test_prune_record_reads_ratios_as_numbers_sorted(tmp_path):
    path = write(tmp_path / "record.txt", {"0.9": 0.69, "0.0": "0.7420", "0.1": 0.738})
    assert read_prune_record(path) == {0.0: 0.742, 0.1: 0.738, 0.9: 0.69}
    assert read_prune_record(tmp_path / "absent.txt") == {}


GOOD_CHOSEN = {"ratio": 0.8, "accuracy": 0.732, "checkpoint": "checkpoint-20.pth.tar", "source": "gradual_prune/0.8/x"}
BAD_CHOSEN = {"truncated": '{"ratio": 0.8, "accura', "empty": "", "empty object": {},
              "no checkpoint": {"ratio": 0.8, "accuracy": 0.7},
              "checkpoint outside its folder": {**GOOD_CHOSEN, "checkpoint": "../0.8/checkpoint-20.pth.tar"},
              "checkpoint not a name": {**GOOD_CHOSEN, "checkpoint": 20},
              "ratio junk": {**GOOD_CHOSEN, "ratio": "abc"}, "accuracy junk": {**GOOD_CHOSEN, "accuracy": [1]},
              "a list": ["checkpoint-20.pth.tar"]}


@pytest.mark.parametrize("content", BAD_CHOSEN.values(), ids=BAD_CHOSEN.keys())
def test_malformed_chosen_names_the_file_and_step_2_2(tmp_path, content):
    path = write(tmp_path / "gradual_prune" / paths.CHOSEN_FILE, content)
    (tmp_path / "gradual_prune" / "checkpoint-20.pth.tar").write_bytes(b"x")
    for read in (lambda: read_chosen(path), lambda: paths.folder_checkpoint(path.parent)):
        with pytest.raises(UserError) as err:
            read()
        assert str(path) in str(err.value) and "select_pruning_ratio_of_backbone.sh" in str(err.value)


def test_chosen_naming_a_missing_checkpoint_is_one_sentence(tmp_path):
    path = write(tmp_path / "gradual_prune" / paths.CHOSEN_FILE, GOOD_CHOSEN)
    with pytest.raises(UserError) as err:
        paths.folder_checkpoint(path.parent)
    assert "checkpoint-20.pth.tar" in str(err.value) and str(path) in str(err.value)
    assert "select_pruning_ratio_of_backbone.sh" in str(err.value)
    (path.parent / "checkpoint-20.pth.tar").write_bytes(b"x")
    assert paths.folder_checkpoint(path.parent) == path.parent / "checkpoint-20.pth.tar"


BAD_BASELINES = {"string accuracy": {"food": "abc"}, "null accuracy": {"food": None},
                 "percent": {"food": "71.80"}, "truncated": '{"food": "0.71', "a list": ["0.7180"]}


@pytest.mark.parametrize("content", BAD_BASELINES.values(), ids=BAD_BASELINES.keys())
def test_malformed_baselines_name_the_file_and_step_1_and_exit_1(tmp_path, content):
    path = write(tmp_path / "logs_perceiver_io" / "baseline_demo_acc.txt", content)
    for read in (lambda: read_baselines(path), lambda: read_baseline(path, "food")):
        with pytest.raises(UserError) as err:
            read()
        assert str(path) in str(err.value) and "run_pickaback/baseline.sh" in str(err.value)
        assert err.value.exit_code == 1     # not the protocol's 3 (missing baseline): the file needs fixing


GOOD_OUTCOME = {"task": "food", "mode": "finetune", "width": 1.0, "val_accuracy": 0.7, "test_accuracy": 0.68,
                "baseline": 0.7, "reached_baseline": True, "status": 0, "start": {"path": "a", "fingerprint": "b"}}
BAD_OUTCOMES = {"empty object": {}, "no accuracies": {"width": 1.0},
                "width junk": {**GOOD_OUTCOME, "width": "wide"}, "width zero": {**GOOD_OUTCOME, "width": 0},
                "accuracy junk": {**GOOD_OUTCOME, "val_accuracy": "abc"},
                "unknown status": {**GOOD_OUTCOME, "status": 7}, "status text": {**GOOD_OUTCOME, "status": "done"},
                "reached junk": {**GOOD_OUTCOME, "reached_baseline": "no"},
                "start junk": {**GOOD_OUTCOME, "start": "checkpoint.pth.tar"}, "truncated": '{"width": 1.0, "va'}


@pytest.mark.parametrize("content", BAD_OUTCOMES.values(), ids=BAD_OUTCOMES.keys())
def test_malformed_outcome_names_the_file_and_the_folder_to_delete(tmp_path, content):
    path = write(tmp_path / "run" / "scratch" / "outcome.json", content)
    with pytest.raises(UserError) as err:
        read_outcome(path.parent)
    assert str(path) in str(err.value) and f"delete the folder {path.parent}" in str(err.value)


def test_outcome_reads_old_files_without_status_or_start(tmp_path):
    old = {key: GOOD_OUTCOME[key] for key in ("width", "val_accuracy", "test_accuracy")}
    write(tmp_path / "outcome.json", old)
    outcome = read_outcome(tmp_path)
    assert outcome["status"] == ExitStatus.DONE and outcome["start"] is None and outcome["width"] == 1.0
    assert read_outcome(tmp_path / "absent") is None


def make_task_dir(tmp_path, record):
    """Step 2-1's outputs of one task (stage checkpoints as stand-in bytes) and step 1's baseline file."""
    task_dir = tmp_path / "food"
    write(task_dir / "scratch" / "checkpoint-100.pth.tar", b"scratch")
    for ratio in record if isinstance(record, dict) else ():
        if ratio != "0.0":
            write(task_dir / "gradual_prune" / ratio / "checkpoint-20.pth.tar", ratio.encode())
    write(task_dir / "gradual_prune" / "record.txt", record)
    baseline = write(tmp_path / "baseline.txt", {"food": "0.7180"})
    return task_dir, baseline


def choose_args(task_dir, baseline):
    return ["--pruning_ratio_to_acc_record_file", task_dir / "gradual_prune" / "record.txt", "--baseline_acc_file",
            baseline, "--dataset", "food", "--log_path", task_dir / "train.log"]


@pytest.mark.parametrize("content", [BAD_RECORDS["junk key"], BAD_RECORDS["string value"], TRUNCATED])
def test_step_2_2_on_a_malformed_record_is_one_sentence(tmp_path, monkeypatch, content):
    import importlib
    tool = importlib.import_module(TOOL)
    task_dir, baseline = make_task_dir(tmp_path, content)
    code, _, stderr = run_entry(tool, choose_args(task_dir, baseline), monkeypatch)
    assert_one_sentence(code, stderr, task_dir / "gradual_prune" / "record.txt", "wo_backbone.sh")


def test_step_2_2_on_a_malformed_baseline_is_one_sentence(tmp_path, monkeypatch):
    import importlib
    tool = importlib.import_module(TOOL)
    task_dir, baseline = make_task_dir(tmp_path, {"0.0": 0.74, "0.1": 0.73})
    write(baseline, {"food": "abc"})
    code, _, stderr = run_entry(tool, choose_args(task_dir, baseline), monkeypatch)
    assert_one_sentence(code, stderr, baseline, "baseline.sh")


def test_step_2_2_over_a_truncated_chosen_json_is_one_sentence(tmp_path, monkeypatch):
    import importlib
    tool = importlib.import_module(TOOL)
    task_dir, baseline = make_task_dir(tmp_path, {"0.0": 0.74, "0.1": 0.73})
    chosen = write(task_dir / "gradual_prune" / paths.CHOSEN_FILE, '{"ratio": 0.1, "che')
    code, _, stderr = run_entry(tool, choose_args(task_dir, baseline), monkeypatch)
    assert_one_sentence(code, stderr, chosen, "select_pruning_ratio_of_backbone.sh")


def test_task_info_over_a_chosen_json_naming_a_missing_checkpoint_is_one_sentence(tmp_path, monkeypatch):
    from tools import task_info
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
    prune_dir = paths.backbone_dir("perceiver_io", "demo", "shapes_notes") / "gradual_prune"
    chosen = write(prune_dir / paths.CHOSEN_FILE, GOOD_CHOSEN)
    from utils.dataset_config import get_config
    backbone = next(task for task in get_config("demo").tasks if task.name == "shapes_notes")
    code, _, stderr = run_entry(task_info, ["demo", "1", "--transfer_on", backbone.task_id], monkeypatch)
    assert_one_sentence(code, stderr, chosen, "checkpoint-20.pth.tar")


# ------------------------------------------------------------------- B. operating-system failures as sentences
OS_FAILURES = {errno.ENOSPC: "no space left on device at {path}: free some space",
               errno.EROFS: "{path} is on a read-only file system", errno.EACCES: "permission denied at {path}"}


@pytest.mark.parametrize("code", OS_FAILURES, ids=[errno.errorcode[c] for c in OS_FAILURES])
def test_os_failures_are_one_sentence_and_exit_1(tmp_path, code):
    path = tmp_path / "logs" / "record.txt"

    def main():
        raise OSError(code, os.strerror(code), str(path))
    stderr = io.StringIO()
    real = sys.stderr
    sys.stderr = stderr
    try:
        with pytest.raises(SystemExit) as ended:
            run_main(main)
    finally:
        sys.stderr = real
    assert_one_sentence(ended.value.code, stderr.getvalue(), OS_FAILURES[code].format(path=path))
    assert "untouched" in stderr.getvalue()


@pytest.mark.parametrize("below", ["", "logs_perceiver_io"], ids=["root itself", "a folder under it"])
def test_a_file_where_the_output_root_belongs_is_one_sentence(tmp_path, monkeypatch, below):
    import importlib
    tool = importlib.import_module(TOOL)
    blocker = write(tmp_path / "outputs" / below, "not a folder")
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path / "outputs"))
    task_dir, baseline = make_task_dir(tmp_path, {"0.0": 0.74, "0.1": 0.73})
    args = choose_args(task_dir, baseline)
    args[-1] = paths.logs_dir("perceiver_io") / "food" / "train.log"
    code, _, stderr = run_entry(tool, args, monkeypatch)
    assert_one_sentence(code, stderr, f"{blocker} is a file where a folder belongs")
    assert not (task_dir / "gradual_prune" / paths.CHOSEN_FILE).exists()


class FullDisk(io.RawIOBase):
    """A file whose device fills up after `room` bytes (what an ENOSPC write looks like to torch.save)."""

    def __init__(self, raw, room):
        self.raw, self.room = raw, room

    def writable(self):
        return True

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.raw.write(data)

    def flush(self):
        self.raw.flush()

    def fileno(self):
        return self.raw.fileno()

    def close(self):
        if not self.closed:
            super().close()
            self.raw.close()


def test_a_full_disk_while_saving_a_checkpoint_says_so_and_leaves_no_file(tmp_path, monkeypatch):
    import torch
    import utils.records
    from utils.checkpoint import save_checkpoint
    path = tmp_path / "run" / "checkpoint-3.pth.tar"
    save_checkpoint(path, {"arch": "lenet5", "profile": "demo", "model": {}})
    finished = path.read_bytes()
    real_fdopen = os.fdopen
    monkeypatch.setattr(utils.records.os, "fdopen", lambda fd, *a, **k: FullDisk(real_fdopen(fd, *a, **k), 4096))
    with pytest.raises(OSError) as err:
        save_checkpoint(path, {"arch": "lenet5", "profile": "demo", "model": {"w": torch.zeros(100_000)}})
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert path.read_bytes() == finished and os.listdir(path.parent) == [path.name]   # no half file, no temp file


def test_torchs_file_write_failed_is_no_space_left(tmp_path, monkeypatch):
    import torch
    from utils.checkpoint import save_checkpoint

    def failing_save(obj, f):
        f.write(b"half a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")
    monkeypatch.setattr(torch, "save", failing_save)
    path = tmp_path / "checkpoint-3.pth.tar"
    with pytest.raises(OSError) as err:
        save_checkpoint(path, {"arch": "lenet5", "profile": "demo", "model": {}})
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert os.listdir(tmp_path) == []


@pytest.fixture
def read_only_fs(monkeypatch):
    """Every write, folder creation, rename and removal fails with EROFS, as on a read-only mount (chmod cannot
    make one for root, who runs CI)."""
    def refuse(name):
        return OSError(errno.EROFS, os.strerror(errno.EROFS), name)
    real_open = builtins.open

    def open_(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            raise refuse(file)
        return real_open(file, mode, *args, **kwargs)
    real_os_open = os.open

    def os_open(file, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise refuse(file)
        return real_os_open(file, flags, *args, **kwargs)

    def failing(name):
        def call(path, *args, **kwargs):
            raise refuse(path)
        return call
    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr(os, "open", os_open)
    for name in ("mkdir", "replace", "rename", "remove", "unlink", "rmdir", "chmod"):
        monkeypatch.setattr(os, name, failing(name))


def tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def test_step_2_2_with_nothing_to_do_writes_nothing_and_exits_0_on_a_read_only_root(tmp_path, monkeypatch,
                                                                                     request):
    import importlib
    tool = importlib.import_module(TOOL)
    task_dir, baseline = make_task_dir(tmp_path, {"0.0": 0.742, "0.4": 0.746, "0.8": 0.732, "0.9": 0.694})
    code, stdout, stderr = run_entry(tool, choose_args(task_dir, baseline), monkeypatch)
    assert code == 0, stderr
    before = tree(tmp_path)
    request.getfixturevalue("read_only_fs")
    code, stdout, stderr = run_entry(tool, choose_args(task_dir, baseline), monkeypatch)
    assert code == 0, stderr
    assert "We choose pruning ratio 0.8" in stdout
    monkeypatch.undo()
    assert tree(tmp_path) == before


def test_step_2_2_with_work_to_do_on_a_read_only_root_is_one_sentence(tmp_path, monkeypatch, request):
    import importlib
    tool = importlib.import_module(TOOL)
    task_dir, baseline = make_task_dir(tmp_path, {"0.0": 0.742, "0.8": 0.732})
    request.getfixturevalue("read_only_fs")
    code, _, stderr = run_entry(tool, choose_args(task_dir, baseline), monkeypatch)
    assert_one_sentence(code, stderr, "is on a read-only file system")


def test_record_updates_with_nothing_to_change_write_nothing(tmp_path, monkeypatch, request):
    record = write(tmp_path / "gradual_prune" / "record.txt", {"0.0": 0.74, "0.1": 0.73})
    table = tmp_path / "table.csv"
    write_csv_atomic(table, ["a", "b"], [[1, 2]])
    write_json_atomic(tmp_path / "same.json", {"x": 1})
    before = tree(tmp_path)
    request.getfixturevalue("read_only_fs")
    assert update_json_record(record, "0.1", 0.73)["0.1"] == 0.73
    assert remove_json_keys(record, lambda ratio: float(ratio) > 0.5) == {"0.0": 0.74, "0.1": 0.73}
    assert remove_json_keys(tmp_path / "absent.txt", lambda ratio: True) == {}
    write_csv_atomic(table, ["a", "b"], [[1, 2]])
    write_json_atomic(tmp_path / "same.json", {"x": 1})
    with locked(table):
        pass
    monkeypatch.undo()
    assert tree(tmp_path) == before     # no lock file, no folder, no rewrite


def test_step_2_2_reinstalls_a_chosen_checkpoint_that_went_missing(tmp_path, monkeypatch):
    import importlib
    tool = importlib.import_module(TOOL)
    task_dir, baseline = make_task_dir(tmp_path, {"0.0": 0.742, "0.8": 0.732})
    assert run_entry(tool, choose_args(task_dir, baseline), monkeypatch)[0] == 0
    installed = task_dir / "gradual_prune" / "checkpoint-20.pth.tar"
    installed.unlink()
    code, stdout, stderr = run_entry(tool, choose_args(task_dir, baseline), monkeypatch)
    assert code == 0, stderr
    assert installed.read_bytes() == b"0.8"


def test_a_backbone_without_step_2_2s_choice_names_step_2_2(tmp_path, monkeypatch):
    """Step 2-1 re-run with another plan removed the choice: the step that needs the backbone says what to run."""
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
    folder = paths.prune_dir("perceiver_io", "demo", "shapes_clean")
    folder.mkdir(parents=True)
    (folder / "checkpoint-1.pth.tar").write_bytes(b"a stage's checkpoint, not chosen")
    with pytest.raises(UserError, match=r"Task shapes_clean has no backbone checkpoint chosen \(.*chosen.json is "
                                        r"missing\); run run_pickaback/select_pruning_ratio_of_backbone.sh for it first"):
        paths.chosen_backbone("perceiver_io", "demo", "shapes_clean")
