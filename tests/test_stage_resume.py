"""A training stage killed mid-way (SIGKILL) and run again resumes after its last finished epoch and ends
with the very checkpoint an uninterrupted run writes: step 1, a step 2-1/3-2 finetune with a piggymask
(two optimisers, two lr schedules) and a pruning stage (the pruning schedule)."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import BASELINE_EPOCHS, ok, python, script_env
from utils import paths
from utils.checkpoint import load_checkpoint
from utils.dataset_config import REPO_ROOT
from utils.logs import read_train_csv

EPOCHS = 12
KILL_AFTER = 3    # finished epochs saved before the kill
COMMON = ("--device", "cpu", "--profile", "demo", "--dataset_config", "demo", "--optimizer", "adam",
          "--lr", "2e-3", "--epochs", str(EPOCHS))


def single_threaded(env):
    return dict(env, OMP_NUM_THREADS="1")    # thread count changes float reduction order


def command(stage, folder, baseline_folder):
    """The entry point and arguments of one stage writing into `folder`; returns (argv, final checkpoint)."""
    if stage == "baseline":
        return ([sys.executable, "packnet_cifar100_main_normal.py", *COMMON, "--dataset", "shapes_clean",
                 "--save_folder", folder, "--logfile", folder / "acc.txt"],
                folder / f"checkpoint-{EPOCHS}.pth.tar")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.json").write_text(json.dumps({"shapes_clean": "0.0", "shapes_noisy": "0.0"}))
    cpg = [sys.executable, "CPG_MM_main_normal.py", *COMMON, "--jsonfile", folder / "base.json",
           "--log_path", folder / "train.log", "--pruning_ratio_to_acc_record_file", folder / "record.txt",
           "--load_folder", baseline_folder]
    if stage == "finetune":     # a second task on task 1's weights: grown, with a piggymask over them
        return ([*cpg, "--dataset", "shapes_noisy", "--mode", "finetune", "--save_folder", folder / "scratch",
                 "--network_width_multiplier", "1.5", "--max_allowed_network_width_multiplier", "1.5"],
                folder / "scratch" / f"checkpoint-{EPOCHS}.pth.tar")
    return ([*cpg, "--dataset", "shapes_clean", "--mode", "prune", "--save_folder", folder / "gradual_prune",
             "--lr", "5e-4", "--initial_sparsity", "0.0", "--target_sparsity", "0.5", "--pruning_interval", "4",
             "--pruning_frequency", "1"],
            folder / "gradual_prune" / "0.5" / f"checkpoint-{EPOCHS}.pth.tar")


def saved_epoch(state_file):
    try:
        return load_checkpoint(state_file)["epoch"]
    except Exception:    # not written yet (the write is atomic, so never half a file)
        return 0


def kill_after_saved_epochs(argv, env, state_file, epochs):
    """Start the stage and SIGKILL it as soon as its state file holds `epochs` finished epochs."""
    proc = subprocess.Popen([str(a) for a in argv], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while saved_epoch(state_file) < epochs:
        assert proc.poll() is None, f"the stage ended before it was killed:\n{proc.stderr.read()[-2000:]}"
        assert time.time() < deadline, "the stage saved no state in 300 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc


def model_tensors(checkpoint):
    state = load_checkpoint(checkpoint)["model"]
    flat = {}

    def walk(prefix, value):
        if torch.is_tensor(value):
            flat[prefix] = value
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}/{key}", item)
    walk("", state)
    return flat


@pytest.mark.parametrize("stage", ["baseline", "finetune", "prune"])
def test_a_stage_killed_mid_way_resumes_to_the_uninterrupted_checkpoint(stage, tmp_path, baseline_outputs,
                                                                        small_demo_root):
    env = single_threaded(script_env(tmp_path / "out", small_demo_root))
    baseline_folder = baseline_outputs / paths.baseline_dir("perceiver_io", "demo", "shapes_clean").relative_to(
        paths.output_root())
    assert (baseline_folder / f"checkpoint-{BASELINE_EPOCHS}.pth.tar").is_file()

    argv, whole = command(stage, tmp_path / "whole", baseline_folder)
    ok(python(*argv[1:], env=env, timeout=600))

    argv, resumed = command(stage, tmp_path / "killed", baseline_folder)
    state_file = paths.stage_state_file(resumed)
    killed = kill_after_saved_epochs(argv, env, state_file, KILL_AFTER)
    assert killed.returncode == -signal.SIGKILL and not resumed.exists()
    rerun = ok(python(*argv[1:], env=env, timeout=600))
    assert "Resuming" in rerun.stdout and not state_file.exists()

    a, b = model_tensors(whole), model_tensors(resumed)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert load_checkpoint(whole)["accuracy"] == load_checkpoint(resumed)["accuracy"]
    # the same rows but for the last column, each epoch's wall time
    rows = [[row[:4] for row in read_train_csv(tmp_path / run / "train.csv")] for run in ("whole", "killed")]
    assert rows[0] == rows[1] and len(rows[0]) == EPOCHS


def test_a_stage_resumed_after_a_killed_run_of_other_epochs_keeps_its_own_train_csv_rows(tmp_path, small_demo_root):
    """12 epochs killed after 3, then 6 epochs killed after 2 in the same folder, then 12 again: the resumed run
    kept the 6-epoch run's rows of the one train.csv.partial as its own first epochs."""
    env = single_threaded(script_env(tmp_path / "out", small_demo_root))
    argv, whole = command("baseline", tmp_path / "whole", None)
    ok(python(*argv[1:], env=env, timeout=600))
    argv, resumed = command("baseline", tmp_path / "killed", None)
    kill_after_saved_epochs(argv, env, paths.stage_state_file(resumed), KILL_AFTER)
    shorter = [str(a) for a in argv]
    shorter[shorter.index("--epochs") + 1] = "6"
    kill_after_saved_epochs(shorter, env, paths.stage_state_file(resumed.with_name("checkpoint-6.pth.tar")), 2)
    console = ok(python(*argv[1:], env=env, timeout=600)).stdout
    resumed_at = re.search(r"Resuming baseline after epoch (\d+) of 12", console)
    assert resumed_at and KILL_AFTER <= int(resumed_at[1]) < 12     # the kill may land an epoch after the state it saw
    rows = [[row[:4] for row in read_train_csv(tmp_path / run / "train.csv")] for run in ("whole", "killed")]
    assert rows[0] == rows[1] and len(rows[0]) == EPOCHS


def test_a_long_stage_gives_its_estimate_after_the_first_epoch(monkeypatch, caplog):
    from models.cpg import CPGModel
    from utils import train
    model = CPGModel.create("perceiver_io", "paper")
    with caplog.at_level("INFO"):
        train.announce_long_stage("finetune@1.0", model, first_epoch_seconds=30.0, epochs_left=99)
        train.announce_long_stage("finetune@1.0", model, first_epoch_seconds=1.0, epochs_left=99)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "about 50 min" in lines[0] and "PROFILE=demo" in lines[0]


@pytest.mark.parametrize("stage", ["baseline", "finetune"])
def test_a_forced_rerun_killed_mid_way_leaves_the_finished_outputs_whole(stage, tmp_path, baseline_outputs,
                                                                         small_demo_root):
    env = single_threaded(script_env(tmp_path / "out", small_demo_root))
    baseline_folder = baseline_outputs / paths.baseline_dir("perceiver_io", "demo", "shapes_clean").relative_to(
        paths.output_root())
    argv, checkpoint = command(stage, tmp_path / "run", baseline_folder)
    ok(python(*argv[1:], env=env, timeout=600))
    finished = {path: path.read_bytes() for path in (checkpoint, tmp_path / "run" / "train.csv")}
    killed = kill_after_saved_epochs([*argv, "--force"], env, paths.stage_state_file(checkpoint), 1)
    assert killed.returncode == -signal.SIGKILL
    assert {path: path.read_bytes() for path in finished} == finished
    rerun = ok(python(*argv[1:], env=env, timeout=600))
    assert "already done" in rerun.stdout


def test_a_corrupt_state_file_is_discarded_not_a_blocker(tmp_path, caplog):
    from utils.train import StageState
    state_file = tmp_path / "checkpoint-3.pth.tar.partial"
    state_file.write_bytes(b"PK\x03\x04 half a zip")
    with caplog.at_level("INFO"):
        assert StageState(state_file, "demo", {"settings": {}, "inputs": {}}).load() is None
    assert "cannot be read" in caplog.text
