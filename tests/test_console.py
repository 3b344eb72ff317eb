"""What a training stage prints: one console line per finished stage (every epoch's lines in train.log,
on the console too with --verbose), and TensorBoard scalars with --tensorboard."""
import csv

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import ok, python, script_env

EPOCHS = 2
STEP_1 = ("packnet_cifar100_main_normal.py", "--device", "cpu", "--profile", "demo", "--dataset_config", "demo",
          "--dataset", "shapes_clean", "--epochs", EPOCHS)


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "baseline"


def step_1(tmp_path, small_demo_root, folder, *extra):
    return ok(python(*STEP_1, "--save_folder", folder,
                     "--logfile", tmp_path / "acc.txt", *extra, env=script_env(tmp_path / "out", small_demo_root)))


def test_the_console_gets_one_line_per_stage_and_train_log_every_epoch(tmp_path, small_demo_root, folder):
    proc = step_1(tmp_path, small_demo_root, folder)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("shapes_clean baseline: val accuracy "), proc.stdout
    log = (folder / "train.log").read_text()
    assert log.count("In train()-> Train Ep.") == EPOCHS and log.count("In validate()-> Val Ep.") == EPOCHS


def test_verbose_echoes_every_epoch_line_on_the_console(tmp_path, small_demo_root, folder):
    proc = step_1(tmp_path, small_demo_root, folder, "--verbose")
    assert proc.stdout.count("In train()-> Train Ep.") == EPOCHS
    assert proc.stdout.count("In validate()-> Val Ep.") == EPOCHS


def test_tensorboard_gets_loss_and_accuracy_per_epoch(tmp_path, small_demo_root, folder):
    step_1(tmp_path, small_demo_root, folder, "--tensorboard")
    events = EventAccumulator(str(folder / "tensorboard" / "baseline"))     # one folder per stage, step 1's one
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"loss/train", "loss/val", "accuracy/train", "accuracy/val"}
    with open(folder / "train.csv", newline="") as f:
        rows = list(csv.reader(f))       # epoch_idx, val_acc, train_acc, stage
    val = [(e.step, e.value) for e in events.Scalars("accuracy/val")]
    assert val == [(int(r[0]) + 1, pytest.approx(float(r[1]))) for r in rows]
