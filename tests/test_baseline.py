"""Step 1 (packnet_cifar100_main_normal.py) run as a subprocess on the reduced demo data."""
import json
import multiprocessing
import re
import shutil

import pytest
import torch

from conftest import BASELINE_EPOCHS, python, script_env
from utils import paths
from utils.checkpoint import load_model
from utils.data import task_loaders
from utils.records import locked, read_json_record, update_json_record
from utils.train import evaluate

SCRIPT = "packnet_cifar100_main_normal.py"


def run(out, data_root, *args):
    return python(SCRIPT, *args, env=script_env(out, data_root))


def baseline_ckpt(out, task_name, epochs=BASELINE_EPOCHS):
    return (out / "checkpoints_perceiver_io" / "baseline_scratch" / "perceiver_io" / "demo" / task_name
            / f"checkpoint-{epochs}.pth.tar")


@pytest.mark.parametrize("task_id", [1, 7])   # an image task and a text task
def test_checkpoint_and_accuracy_entry_reproduce(baseline_outputs, demo_cfg, monkeypatch, task_id):
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(baseline_outputs))
    task = demo_cfg.task(task_id)
    ckpt = baseline_ckpt(baseline_outputs, task.name)
    assert ckpt.is_file()
    assert ckpt == paths.checkpoint_file(paths.baseline_dir("perceiver_io", "demo", task.name), BASELINE_EPOCHS)
    acc_file = baseline_outputs / "logs_perceiver_io" / "baseline_demo_acc.txt"
    record = json.loads(acc_file.read_text())
    assert re.fullmatch(r"0\.\d{4}|1\.0000", record[task.name]), record
    model, payload = load_model(ckpt, expect_arch="perceiver_io", expect_config=demo_cfg)
    assert model.task_names == [task.name]
    assert payload["epoch"] == BASELINE_EPOCHS
    _, val_loader, _ = task_loaders(demo_cfg, task, batch_size=32, val_batch_size=100, val_fraction=demo_cfg.val_fraction,
                                    seed=2, device="cpu")
    _, acc = evaluate(model.task_view(task.name), val_loader, torch.device("cpu"))
    assert f"{acc:.4f}" == record[task.name]


def test_second_run_skips_and_force_retrains(baseline_outputs, small_demo_root, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(baseline_outputs, out)
    ckpt = baseline_ckpt(out, "shapes_clean")
    before = ckpt.stat().st_mtime_ns
    proc = run(out, small_demo_root, "--dataset", "1", "--epochs", str(BASELINE_EPOCHS), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "already done" in proc.stdout
    assert ckpt.stat().st_mtime_ns == before
    proc = run(out, small_demo_root, "--dataset", "1", "--epochs", str(BASELINE_EPOCHS), "--device", "cpu",
               "--force")
    assert proc.returncode == 0, proc.stderr
    assert "already done" not in proc.stdout
    assert ckpt.stat().st_mtime_ns != before
    assert "shapes_clean" in read_json_record(out / "logs_perceiver_io" / "baseline_demo_acc.txt")


def _writer(path, prefix, n):
    for i in range(n):
        update_json_record(path, f"{prefix}{i}", f"0.{i:04d}")


def test_concurrent_writers_keep_every_key(tmp_path):
    path = tmp_path / "logs" / "baseline_demo_acc.txt"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, prefix, 60)) for prefix in ("a", "b", "c")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    record = read_json_record(path)
    assert set(record) == {f"{prefix}{i}" for prefix in "abc" for i in range(60)}


def assert_one_error_line(proc):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_missing_data_root_is_one_sentence(tmp_path):
    line = assert_one_error_line(run(tmp_path / "out", tmp_path / "no_data", "--dataset", "1", "--epochs", "1",
                                     "--device", "cpu"))
    assert "{train,test}/<task>/<class>/<file>" in line
    assert "tools.make_demo_data" in line
    assert not (tmp_path / "out" / "logs_perceiver_io" / "baseline_demo_acc.txt").exists()


def test_unknown_task_lists_valid_names(tmp_path, small_demo_root):
    line = assert_one_error_line(run(tmp_path, small_demo_root, "--dataset", "no_such_task", "--epochs", "1",
                                     "--device", "cpu"))
    assert "no_such_task" in line
    for name in ("shapes_clean", "colours_notes"):
        assert name in line


def test_modality_contradicting_config(tmp_path, small_demo_root):
    line = assert_one_error_line(run(tmp_path, small_demo_root, "--dataset", "7", "--modality", "image",
                                     "--epochs", "1", "--device", "cpu"))
    assert "--modality image" in line and "shapes_captions" in line and "text" in line


def test_lenet5_on_text_task(tmp_path, small_demo_root):
    line = assert_one_error_line(run(tmp_path, small_demo_root, "--arch", "lenet5", "--dataset", "shapes_captions",
                                     "--epochs", "1", "--device", "cpu"))
    assert "lenet5" in line and "text" in line


@pytest.mark.parametrize("logfile", ["acc.txt", "my_acc.txt"])
def test_a_logfile_of_any_name_keeps_the_validation_baseline_apart_from_the_test_accuracy(
        small_demo_root, tmp_path, logfile):
    out = tmp_path / "out"
    proc = run(out, small_demo_root, "--dataset", "7", "--epochs", "1", "--device", "cpu",
               "--logfile", str(tmp_path / logfile))
    assert proc.returncode == 0, proc.stderr
    _, payload = load_model(baseline_ckpt(out, "shapes_captions", epochs=1))
    test_file = paths.test_acc_file_of(tmp_path / logfile)
    assert test_file != tmp_path / logfile
    assert read_json_record(tmp_path / logfile) == {"shapes_captions": f"{payload['accuracy']:.4f}"}
    assert read_json_record(test_file) == {"shapes_captions": f"{payload['test_accuracy']:.4f}"}


def test_a_task_another_process_is_training_is_refused_not_trained_twice_at_once(small_demo_root, tmp_path):
    """After a kill -9 of a pipeline script its jobs run on; a re-run meanwhile would train their stages a second
    time into the same files."""
    out = tmp_path / "out"
    folder = baseline_ckpt(out, "shapes_clean", epochs=1).parent
    with locked(folder / "train.log"):      # held the way a running stage holds it
        line = assert_one_error_line(python(SCRIPT, "--dataset", "1", "--epochs", "1", "--device", "cpu",
                                            env=script_env(out, small_demo_root), timeout=60))    # not a wait
        assert "Another process is training shapes_clean" in line and str(folder) in line
        assert not list(folder.glob("checkpoint-*"))
    proc = run(out, small_demo_root, "--dataset", "1", "--epochs", "1", "--device", "cpu")
    assert proc.returncode == 0 and baseline_ckpt(out, "shapes_clean", epochs=1).is_file(), proc.stderr


@pytest.mark.parametrize("damage", ["deleted", "another task's", "not JSON"])
def test_a_damaged_outcome_beside_a_finished_baseline_is_written_again_from_its_checkpoint(
        baseline_outputs, small_demo_root, tmp_path, damage):
    """Step 1's record is read from outcome.json: a stale one (a run killed between writing the checkpoint and it,
    or a copy) became the baseline with exit 0, and a missing one ended in a traceback."""
    out = tmp_path / "out"
    shutil.copytree(baseline_outputs, out)
    outcome = baseline_ckpt(out, "shapes_clean").parent / "outcome.json"
    kept = outcome.read_text()
    if damage == "deleted":
        outcome.unlink()
    else:
        outcome.write_text((baseline_ckpt(out, "shapes_captions").parent / "outcome.json").read_text()
                           if damage == "another task's" else "{")
    acc_file = out / "logs_perceiver_io" / "baseline_demo_acc.txt"
    update_json_record(acc_file, "shapes_clean", "0.9999")
    proc = run(out, small_demo_root, "--dataset", "1", "--epochs", str(BASELINE_EPOCHS), "--device", "cpu")
    assert proc.returncode == 0 and "already done" in proc.stdout, proc.stderr
    assert json.loads(outcome.read_text()) == json.loads(kept)
    accuracy = load_model(baseline_ckpt(out, "shapes_clean"))[1]["accuracy"]
    assert read_json_record(acc_file)["shapes_clean"] == f"{accuracy:.4f}"


def test_a_finished_stage_leaves_no_state_to_resume_from_beside_it(baseline_outputs, small_demo_root, tmp_path):
    """A run of 30 epochs killed mid-way, then one of 10 finished: a later run of 30 resumed the first one's state
    and its train.csv mixed the two runs' epochs. And a FORCE redo killed mid-way left its state behind a done
    stage."""
    out = tmp_path / "out"
    shutil.copytree(baseline_outputs, out)
    folder = baseline_ckpt(out, "shapes_clean").parent
    own, older = (folder / f"checkpoint-{epochs}.pth.tar.partial" for epochs in (BASELINE_EPOCHS, 30))
    for state in (own, older):
        state.write_bytes(b"a state of an unfinished run")
    proc = run(out, small_demo_root, "--dataset", "1", "--epochs", str(BASELINE_EPOCHS), "--device", "cpu")
    assert proc.returncode == 0 and "already done" in proc.stdout and not own.exists() and older.exists()
    proc = run(out, small_demo_root, "--dataset", "1", "--epochs", "1", "--device", "cpu")
    assert proc.returncode == 0 and not older.exists(), proc.stderr
    assert sorted(p.name for p in folder.glob("checkpoint-*")) == ["checkpoint-1.pth.tar"]
