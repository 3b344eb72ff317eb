"""Steps 2-1 / 3-2 (CPG_MM_main_normal.py --mode finetune|prune|inference|cpg) run as processes of their own.

The exit codes are the bash loop's protocol (utils.errors.ExitStatus): 0 done, 2 grow, 3 baseline
missing, 5 no capacity, 6 pruning stage failed. Baselines are written by hand ("0.0000" always
passes, "1.0000" always fails) so every decision is forced.
"""
import csv
import json
import re

import pytest
import torch

from conftest import python, script_env
from utils.checkpoint import load_checkpoint, load_model
from utils.data import task_loaders
from utils.errors import ExitStatus
from utils.train import evaluate

SCRIPT = "CPG_MM_main_normal.py"
TASK1, TASK2 = "shapes_clean", "shapes_noisy"
EPOCHS = 2


def cpg(env, *args):
    return python(SCRIPT, "--device", "cpu", "--profile", "demo", "--dataset_config", "demo", "--seed", "2", *args,
                  env=env)


def write_baseline(path, value):
    path.write_text(json.dumps({TASK1: value, TASK2: value, "shapes_captions": value}))
    return path


def csv_rows(path):
    with open(path, newline="") as f:
        return [row for row in csv.reader(f) if row]


class Work:
    """Paths of the module's shared runs."""

    def __init__(self, root, data_root):
        self.root = root
        self.env = script_env(root / "out", data_root)
        self.base0 = write_baseline(root / "base0.json", "0.0000")
        self.base1 = write_baseline(root / "base1.json", "1.0000")
        self.t1 = root / "t1"                       # task 1 alone: scratch/, gradual_prune/
        self.record1 = self.t1 / "gradual_prune" / "record.txt"
        self.log1 = self.t1 / "train.log"

    def finetune_t1(self, *extra):
        return cpg(self.env, "--dataset", TASK1, "--mode", "finetune", "--save_folder", self.t1 / "scratch",
                   "--epochs", EPOCHS, "--lr", "1e-2", "--lr_mask", "1e-4", "--jsonfile", self.base0,
                   "--network_width_multiplier", "1.0", "--max_allowed_network_width_multiplier", "1.0",
                   "--pruning_ratio_to_acc_record_file", self.record1, "--log_path", self.log1, *extra)

    def prune_t1(self, save_folder, record, jsonfile, log):
        return cpg(self.env, "--dataset", TASK1, "--mode", "prune", "--load_folder", self.t1 / "scratch",
                   "--save_folder", save_folder, "--epochs", EPOCHS, "--lr", "1e-3", "--lr_mask", "0.0",
                   "--jsonfile", jsonfile, "--network_width_multiplier", "1.0",
                   "--max_allowed_network_width_multiplier", "1.0", "--initial_sparsity", "0.0",
                   "--target_sparsity", "0.5", "--pruning_interval", "1", "--pruning_frequency", "1",
                   "--pruning_ratio_to_acc_record_file", record, "--log_path", log)


@pytest.fixture(scope="module")
def work(tmp_path_factory, small_demo_root):
    """Task 1 finetuned (baseline 0.0 -> exit 0) and pruned 0 -> 0.5 (exit 0)."""
    w = Work(tmp_path_factory.mktemp("cpg"), small_demo_root)
    w.finetune_proc = w.finetune_t1()
    assert w.finetune_proc.returncode == 0, w.finetune_proc.stdout[-2000:] + w.finetune_proc.stderr[-2000:]
    w.prune_proc = w.prune_t1(w.t1 / "gradual_prune", w.record1, w.base0, w.log1)
    assert w.prune_proc.returncode == 0, w.prune_proc.stdout[-2000:] + w.prune_proc.stderr[-2000:]
    return w


@pytest.fixture(scope="module")
def grow_run(work):
    """Task 1 at width 1.0 (max 1.5) under a baseline of 1.0000: must ask to grow."""
    folder = work.root / "grow"
    args = ("--dataset", TASK1, "--mode", "finetune", "--save_folder", folder / "scratch", "--epochs", 1,
            "--jsonfile", work.base1, "--network_width_multiplier", "1.0",
            "--max_allowed_network_width_multiplier", "1.5",
            "--pruning_ratio_to_acc_record_file", folder / "gradual_prune" / "record.txt",
            "--log_path", folder / "train.log")
    return folder, args, cpg(work.env, *args)


@pytest.fixture(scope="module")
def second_task(work):
    """Task 2 finetuned on task 1's pruned checkpoint at width 1.5."""
    folder = work.root / "t2"
    proc = cpg(work.env, "--dataset", TASK2, "--mode", "finetune", "--load_folder", work.t1 / "gradual_prune" / "0.5",
               "--save_folder", folder / "scratch", "--epochs", 1, "--jsonfile", work.base0,
               "--network_width_multiplier", "1.5", "--max_allowed_network_width_multiplier", "2.0",
               "--pruning_ratio_to_acc_record_file", folder / "gradual_prune" / "record.txt",
               "--log_path", folder / "train.log")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return folder


# ---------------------------------------------------------------- exit 3: baseline missing

def test_exit_3_without_jsonfile(work, tmp_path):
    proc = cpg(work.env, "--dataset", TASK1, "--mode", "finetune", "--save_folder", tmp_path / "scratch",
               "--epochs", 1, "--log_path", tmp_path / "train.log")
    assert proc.returncode == ExitStatus.NO_BASELINE == 3
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: ") and "baseline" in proc.stderr
    assert not (tmp_path / "scratch").exists() or not list((tmp_path / "scratch").glob("*.pth.tar"))


def test_exit_3_when_task_has_no_entry(work, tmp_path):
    jsonfile = tmp_path / "base.json"
    jsonfile.write_text(json.dumps({"colours_clean": "0.5000"}))
    proc = cpg(work.env, "--dataset", TASK1, "--mode", "finetune", "--save_folder", tmp_path / "scratch",
               "--epochs", 1, "--jsonfile", jsonfile, "--log_path", tmp_path / "train.log")
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    assert "error: " in proc.stderr and TASK1 in proc.stderr


# ---------------------------------------------------------------- finetune decisions

def test_exit_2_grow_under_baseline_below_max_width(grow_run):
    folder, _, proc = grow_run
    assert proc.returncode == ExitStatus.GROW == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Exit 2" in proc.stdout
    assert (folder / "scratch" / "checkpoint-1.pth.tar").is_file()


def test_exit_0_at_max_width_gives_up_and_keeps_model(work, tmp_path):
    proc = cpg(work.env, "--dataset", TASK1, "--mode", "finetune", "--save_folder", tmp_path / "scratch",
               "--epochs", 1, "--jsonfile", work.base1, "--network_width_multiplier", "1.0",
               "--max_allowed_network_width_multiplier", "1.0", "--log_path", tmp_path / "train.log")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "scratch" / "checkpoint-1.pth.tar").is_file()


def test_exit_0_with_zero_baseline_records_unpruned_accuracy_once(work):
    assert work.finetune_proc.returncode == 0
    text = work.record1.read_text()
    assert text.count('"0.0"') == 1
    record = json.loads(text)
    assert isinstance(record["0.0"], float)
    assert 0.0 <= record["0.0"] <= 1.0


# ---------------------------------------------------------------- prune stage

def test_prune_frees_half_of_own_weights_per_layer_and_zeroes_them(work):
    payload = load_checkpoint(work.t1 / "gradual_prune" / "0.5" / f"checkpoint-{EPOCHS}.pth.tar")
    state = payload["model"]
    assert state["tasks"][-1]["name"] == TASK1
    for layer, owner in state["owners"].items():
        own, free = int((owner == 1).sum()), int((owner == 0).sum())
        assert own + free == owner.numel()
        assert abs(free - 0.5 * (own + free)) <= 1, (layer, own, free)
        pruned = state["weights"][layer][owner == 0]
        assert torch.all(pruned == 0), f"{layer}: {int((pruned != 0).sum())} of {pruned.numel()} pruned weights != 0"
    assert "0.5" in json.loads(work.record1.read_text())


def test_prune_under_baseline_exits_6_and_still_records(work):
    folder = work.root / "prune_fail"
    record = folder / "record.txt"
    proc = work.prune_t1(folder, record, work.base1, folder / "train.log")
    assert proc.returncode == ExitStatus.PRUNE_FAILED == 6, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Exit 6" in proc.stdout
    assert "0.5" in json.loads(record.read_text())


# ---------------------------------------------------------------- exit 5: no capacity

def test_exit_5_when_new_task_owns_no_weights(work, tmp_path):
    proc = cpg(work.env, "--dataset", TASK2, "--mode", "finetune", "--load_folder", work.t1 / "scratch",
               "--save_folder", tmp_path / "scratch", "--epochs", 1, "--jsonfile", work.base0,
               "--network_width_multiplier", "1.0", "--max_allowed_network_width_multiplier", "1.0",
               "--log_path", tmp_path / "train.log")
    assert proc.returncode == ExitStatus.NO_CAPACITY == 5, proc.stdout[-2000:] + proc.stderr[-2000:]
    sentence = [line for line in proc.stdout.splitlines() if line.startswith("Exit 5")]
    assert len(sentence) == 1 and TASK2 in sentence[0] and sentence[0].endswith(".")


# ---------------------------------------------------------------- resume

def test_rerun_of_finished_finetune_resumes(work):
    ckpt = work.t1 / "scratch" / f"checkpoint-{EPOCHS}.pth.tar"
    mtime = ckpt.stat().st_mtime_ns
    rows = csv_rows(work.t1 / "train.csv")
    record_text = work.record1.read_text()
    proc = work.finetune_t1()
    assert proc.returncode == work.finetune_proc.returncode == 0
    assert csv_rows(work.t1 / "train.csv") == rows
    assert work.record1.read_text() == record_text
    assert ckpt.stat().st_mtime_ns == mtime


def test_rerun_and_force_of_grow_run(work, grow_run):
    folder, args, first = grow_run
    csv_path = folder / "train.csv"
    record = folder / "gradual_prune" / "record.txt"
    rows = csv_rows(csv_path)
    assert len(rows) == 1
    again = cpg(work.env, *args)
    assert again.returncode == first.returncode == 2
    assert csv_rows(csv_path) == rows
    assert record.read_text().count('"0.0"') == 1
    forced = cpg(work.env, *args, "--force")
    assert forced.returncode == 2, forced.stdout[-2000:] + forced.stderr[-2000:]
    rows_after = csv_rows(csv_path)
    assert len(rows_after) == 1 and rows_after[0][3] == "finetune@1.0"
    assert record.read_text().count('"0.0"') == 1


def test_a_stage_made_anew_removes_the_stages_pruned_further_from_its_earlier_version(work, tmp_path):
    """Stages pruned from an earlier version of a stage (other data or settings) must not outlive it: when
    the new pruning loop stops earlier than the old one, step 2-2 would choose a stage of the old run."""
    record, prune_dir = tmp_path / "gradual_prune" / "record.txt", tmp_path / "gradual_prune"

    def finetune(lr):
        return cpg(work.env, "--dataset", TASK1, "--mode", "finetune", "--save_folder", tmp_path / "scratch",
                   "--epochs", 1, "--lr", lr, "--jsonfile", work.base0, "--pruning_ratio_to_acc_record_file",
                   record, "--log_path", tmp_path / "train.log")

    def prune(initial, target, lr="1e-3"):
        load = tmp_path / "scratch" if initial == "0.0" else prune_dir
        return cpg(work.env, "--dataset", TASK1, "--mode", "prune", "--load_folder", load, "--save_folder", prune_dir,
                   "--epochs", 1, "--lr", lr, "--jsonfile", work.base0, "--initial_sparsity", initial,
                   "--target_sparsity", target, "--pruning_ratio_to_acc_record_file", record,
                   "--log_path", tmp_path / "train.log")

    for proc in (finetune("1e-2"), prune("0.0", "0.5"), prune("0.5", "0.8")):
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert set(json.loads(record.read_text())) == {"0.0", "0.5", "0.8"}

    assert prune("0.0", "0.5", lr="2e-3").returncode == 0          # stage 0.5 anew: 0.8 came from the old one
    assert set(json.loads(record.read_text())) == {"0.0", "0.5"}
    assert (prune_dir / "0.5").is_dir() and not (prune_dir / "0.8").exists()

    assert finetune("2e-2").returncode == 0                          # the unpruned model anew: every stage goes
    assert set(json.loads(record.read_text())) == {"0.0"}
    assert not (prune_dir / "0.5").exists()


# ---------------------------------------------------------------- earlier tasks never change

def test_first_task_bit_identical_after_second_task(work, second_task):
    before, _ = load_model(work.t1 / "gradual_prune" / "0.5" / f"checkpoint-{EPOCHS}.pth.tar")
    after, _ = load_model(second_task / "scratch" / "checkpoint-1.pth.tar")
    assert after.task_names == [TASK1, TASK2]
    assert after.width_mult == 1.5
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 32, 32, generator=g)
    with torch.no_grad():
        y_before = before.task_view(TASK1)(x)
        y_after = after.task_view(TASK1)(x)
    assert torch.equal(y_before, y_after)


def test_inference_prints_validate_line_for_a_task_of_a_checkpoint(work, second_task, demo_cfg):
    proc = cpg(work.env, "--dataset", TASK1, "--mode", "inference", "--load_folder", second_task / "scratch",
               "--save_folder", second_task / "scratch", "--log_path", work.root / "inference.log")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    match = re.search(r"In validate\(\)-> Val Ep\. #\d+ loss: [\d.]+, accuracy: ([\d.]+), sparsity: [\d.]+, "
                      r"task1 ratio: [\d.]+, zero ratio: [\d.]+, mpl: [\d.]+", proc.stdout)
    assert match, proc.stdout[-2000:]
    model, _ = load_model(second_task / "scratch" / "checkpoint-1.pth.tar")
    _, val_loader, _ = task_loaders(demo_cfg, demo_cfg.task(TASK1), batch_size=32, val_batch_size=100,
                                    val_fraction=demo_cfg.val_fraction, seed=2, device=torch.device("cpu"))
    _, acc = evaluate(model.task_view(TASK1), val_loader, torch.device("cpu"))
    assert match.group(1) == f"{acc * 100:.2f}"


def test_an_earlier_task_of_the_checkpoint_cannot_train(work, second_task, tmp_path):
    """Training task 1 again on a checkpoint where task 2 came after it would change task 2: refused."""
    proc = cpg(work.env, "--dataset", TASK1, "--mode", "finetune", "--load_folder", second_task / "scratch",
               "--save_folder", tmp_path / "scratch", "--epochs", 1, "--jsonfile", work.base0,
               "--log_path", tmp_path / "train.log")
    assert proc.returncode == 1
    assert "only the newest task can train" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "scratch").exists()


# ---------------------------------------------------------------- --mode cpg: the bash loop's stages in one process

def cpg_mode(work, folder, jsonfile, *extra):
    return cpg(work.env, "--dataset", TASK1, "--mode", "cpg", "--save_folder", folder / "scratch", "--epochs", EPOCHS,
               "--lr", "1e-2", "--lr_mask", "1e-4", "--jsonfile", jsonfile,
               "--pruning_ratio_to_acc_record_file", folder / "gradual_prune" / "record.txt",
               "--log_path", folder / "train.log", "--prune_epochs", EPOCHS, "--prune_lr", "1e-3",
               "--pruning_interval", "1", "--pruning_frequency", "1", *extra)


def test_mode_cpg_runs_the_same_stages_as_the_loop_of_single_stages(work, tmp_path):
    """Finetune then prune 0 -> 0.5 in one process: the very stages `work` ran one process each (so a single-stage
    run of either finds it done), bit-identical."""
    proc = cpg_mode(work, tmp_path, work.base0, "--max_allowed_network_width_multiplier", "1.0", "--prune_stages", "0.5")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for stage in ("scratch", "gradual_prune/0.5"):
        ours = load_checkpoint(tmp_path / stage / f"checkpoint-{EPOCHS}.pth.tar")["model"]["weights"]
        theirs = load_checkpoint(work.t1 / stage / f"checkpoint-{EPOCHS}.pth.tar")["model"]["weights"]
        assert all(torch.equal(ours[layer], theirs[layer]) for layer in theirs), stage
    assert [row[:4] for row in csv_rows(tmp_path / "train.csv")] == [row[:4] for row in csv_rows(work.t1 / "train.csv")]
    alone = work.prune_t1(tmp_path / "gradual_prune", tmp_path / "gradual_prune" / "record.txt", work.base0,
                          tmp_path / "train.log")
    assert alone.returncode == 0 and "is already done" in alone.stdout, alone.stdout[-2000:] + alone.stderr[-2000:]


def test_mode_cpg_grows_while_under_the_baseline_and_stops_pruning_at_the_first_miss(work, tmp_path):
    proc = cpg_mode(work, tmp_path, work.base1, "--max_allowed_network_width_multiplier", "1.5",
                    "--prune_stages", "0.3", "0.6")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "New network_width_multiplier: 1.5" in proc.stdout and "Exit 6" in proc.stdout
    assert [row[3] for row in csv_rows(tmp_path / "train.csv")] == ["finetune@1.0"] * EPOCHS + ["finetune@1.5"] * EPOCHS \
        + ["prune0.3"] * EPOCHS
    outcome = json.loads((tmp_path / "scratch" / "outcome.json").read_text())
    assert outcome["width"] == 1.5
    # the settings the run was trained with, as its checkpoint records them (the report over seeds compares them)
    payload = load_checkpoint(tmp_path / "scratch" / f"checkpoint-{EPOCHS}.pth.tar")
    assert outcome["settings"] == payload["provenance"]["settings"] and outcome["settings"]["epochs"] == EPOCHS
    assert not (tmp_path / "gradual_prune" / "0.6").exists()


def test_mode_cpg_refuses_prune_stages_out_of_order(work, tmp_path):
    proc = cpg_mode(work, tmp_path, work.base0, "--prune_stages", "0.6", "0.3")
    assert proc.returncode == 1 and "--prune_stages" in proc.stderr and "Traceback" not in proc.stderr
