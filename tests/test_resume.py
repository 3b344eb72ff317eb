"""Resume redoes an output only when what produced it changed; step 2-1 takes step 1's run instead of repeating it."""
import json
import shutil

import pytest
import torch

from conftest import BASELINE_EPOCHS, ok, python, script_env
from utils import paths
from utils.checkpoint import load_checkpoint, load_model, save_checkpoint
from utils.provenance import why_stale

TASK = "shapes_clean"     # demo task 1, trained by the baseline_outputs fixture
COMMON = ("--device", "cpu", "--profile", "demo", "--dataset_config", "demo")


@pytest.fixture
def out(tmp_path, baseline_outputs):
    copy = tmp_path / "out"
    shutil.copytree(baseline_outputs, copy)
    return copy


def baseline_checkpoint(out, seed=paths.DEFAULT_SEED):
    rel = paths.baseline_dir("perceiver_io", "demo", TASK, seed).relative_to(paths.output_root())
    return out / rel / f"checkpoint-{BASELINE_EPOCHS}.pth.tar"


def step1(env, *extra):
    return ok(python("packnet_cifar100_main_normal.py", *COMMON, "--dataset", TASK, "--epochs", BASELINE_EPOCHS,
                     *extra, env=env))


def finetune(env, folder, *extra, check=True):
    folder.mkdir(parents=True, exist_ok=True)
    baselines = folder / "base0.json"
    baselines.write_text(json.dumps({TASK: "0.0000"}))
    proc = python("CPG_MM_main_normal.py", *COMMON, "--dataset", TASK, "--mode", "finetune",
                  "--save_folder", folder / "scratch", "--epochs", BASELINE_EPOCHS, "--jsonfile", baselines,
                  "--pruning_ratio_to_acc_record_file", folder / "gradual_prune" / "record.txt",
                  "--log_path", folder / "train.log", *extra, env=env)
    return ok(proc) if check else proc


def epochs_trained(folder):
    """How many training epochs the stages logging to `folder`/train.log have run (the log is appended)."""
    log = folder / "train.log"
    return log.read_text().count("Train Ep.") if log.exists() else 0


# ---------------------------------------------------------------- step 1

def test_step_1_skips_a_baseline_made_with_the_same_settings(out, small_demo_root):
    before = baseline_checkpoint(out).read_bytes()
    proc = step1(script_env(out, small_demo_root))
    assert "already done" in proc.stdout
    assert baseline_checkpoint(out).read_bytes() == before


def test_step_1_retrains_when_the_lr_changed(out, small_demo_root):
    proc = step1(script_env(out, small_demo_root), "--lr", "0.05")
    assert "Retraining the baseline of shapes_clean: lr changed (0.01 -> 0.05)." in proc.stdout
    assert load_checkpoint(baseline_checkpoint(out))["provenance"]["settings"]["lr"] == 0.05


def edited_copy(data_root, tmp_path):
    """A copy of the data root in which one training image of TASK is replaced by another of the same class."""
    copy = tmp_path / "data"
    shutil.copytree(data_root, copy)
    folder = copy / "demo" / "images" / "train" / TASK / "circle"
    first, second = sorted(folder.iterdir())[:2]
    shutil.copyfile(second, first)
    return copy


def test_step_1_retrains_when_its_data_changed(out, small_demo_root, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(small_demo_root, moved)
    assert "already done" in step1(script_env(out, moved)).stdout    # the same files in another place
    proc = step1(script_env(out, edited_copy(small_demo_root, tmp_path)))
    assert "Retraining the baseline of shapes_clean: its input 'data' changed." in proc.stdout


def test_an_output_made_before_an_input_was_recorded_says_so():
    recorded = {"settings": {"lr": 0.1}, "inputs": {"data": "abc"}}
    assert why_stale({"settings": {"lr": 0.1}, "inputs": {}}, recorded) == \
        "it records no input 'data'"
    assert why_stale(recorded, {"settings": {"lr": 0.1}, "inputs": {"data": "abd"}}) == "its input 'data' changed"
    assert why_stale(recorded, recorded) is None


def test_another_seed_writes_beside_the_default_seed(out, small_demo_root):
    before = baseline_checkpoint(out).read_bytes()
    proc = step1(script_env(out, small_demo_root), "--seed", "3")
    assert "already done" not in proc.stdout
    assert baseline_checkpoint(out, seed=3).is_file() and baseline_checkpoint(out, seed=3).parts[-7] == "seed3"
    assert baseline_checkpoint(out).read_bytes() == before
    acc = json.loads((out / "seed3" / "logs_perceiver_io" / "baseline_demo_acc.txt").read_text())
    assert set(acc) == {TASK}


# ---------------------------------------------------------------- step 2-1 reuses step 1

def test_step_2_1_takes_step_1s_run_and_it_is_the_same_model(out, small_demo_root, tmp_path):
    reused = finetune(script_env(out, small_demo_root), tmp_path / "reused")
    assert "the same run as step 1" in reused.stdout and epochs_trained(tmp_path / "reused") == 0
    finetune(script_env(tmp_path / "no_baseline", small_demo_root), tmp_path / "trained")
    assert epochs_trained(tmp_path / "trained") == BASELINE_EPOCHS
    a = load_model(tmp_path / "reused" / "scratch" / f"checkpoint-{BASELINE_EPOCHS}.pth.tar")[0].task_view(TASK)
    b = load_model(tmp_path / "trained" / "scratch" / f"checkpoint-{BASELINE_EPOCHS}.pth.tar")[0].task_view(TASK)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    record = lambda name: json.loads((tmp_path / name / "gradual_prune" / "record.txt").read_text())  # noqa: E731
    assert record("reused") == record("trained")


def test_a_finetune_that_took_step_1s_run_stays_done_when_step_1s_checkpoint_goes_or_is_made_again(
        out, small_demo_root, tmp_path):
    """Step 1's checkpoint is this finetune's own result, not an input: deleting it (or step 1 making it again)
    redid the finetune and every pruning stage after it, twice, for bit-identical results."""
    env = script_env(out, small_demo_root)
    assert "the same run as step 1" in finetune(env, tmp_path / "t").stdout
    baseline_checkpoint(out).unlink()
    assert "is already done" in finetune(env, tmp_path / "t").stdout
    step1(env)
    assert "is already done" in finetune(env, tmp_path / "t").stdout and epochs_trained(tmp_path / "t") == 0


def test_step_2_1_trains_when_its_settings_differ_from_step_1(out, small_demo_root, tmp_path):
    proc = finetune(script_env(out, small_demo_root), tmp_path / "t", "--lr", "0.05")
    assert "the same run as step 1" not in proc.stdout and epochs_trained(tmp_path / "t") == BASELINE_EPOCHS


def test_step_2_1_trains_when_step_1s_model_is_of_other_profile_sizes(out, small_demo_root, tmp_path):
    """A step 1 checkpoint of an older profile (here: before the image grid existed) is another model."""
    path = baseline_checkpoint(out)
    payload = load_checkpoint(path)
    del payload["provenance"]["settings"]["profile_sizes"]["image_grid"]
    save_checkpoint(path, payload)
    proc = finetune(script_env(out, small_demo_root), tmp_path / "t")
    assert "the same run as step 1" not in proc.stdout and epochs_trained(tmp_path / "t") == BASELINE_EPOCHS


def test_step_2_1_refuses_a_task_whose_step_1_model_is_of_other_data(out, small_demo_root, tmp_path):
    """Data regenerated after step 1, step 2-1 run first: step 1's checkpoint and baseline are of the old data (step
    2-1 once trained against that baseline; now it names step 1)."""
    proc = finetune(script_env(out, edited_copy(small_demo_root, tmp_path)), tmp_path / "t", check=False)
    assert proc.returncode == 1 and "changed after its step-1 baseline" in proc.stderr and "re-run step 1" in proc.stderr
    assert not (tmp_path / "t" / "scratch").exists()


def test_step_2_1_refuses_a_baseline_file_its_step_1_model_did_not_reach(out, small_demo_root, tmp_path):
    """An edited (or stale) baseline_<cfg>_acc.txt would set the stage's goal; re-running step 1 writes it again."""
    env = script_env(out, small_demo_root)
    own = out / paths.baseline_acc_file("perceiver_io", "demo").relative_to(paths.output_root())
    reached = json.loads(own.read_text())
    own.write_text(json.dumps({**reached, TASK: "0.1234"}))
    proc = finetune(env, tmp_path / "t", "--jsonfile", own, check=False)
    assert proc.returncode == 1 and not (tmp_path / "t" / "scratch").exists()
    assert f"gives task {TASK} the baseline 0.1234, but its step-1 model" in proc.stderr
    assert "re-run step 1" in proc.stderr
    step1(env)
    assert json.loads(own.read_text()) == reached
    assert "the same run as step 1" in finetune(env, tmp_path / "t", "--jsonfile", own).stdout


# ---------------------------------------------------------------- steps 2-1 / 3-2 resume

def test_finetune_is_decided_again_not_trained_when_only_a_decision_setting_changed(small_demo_root, tmp_path):
    """ALLOW_ACC_LOSS (like the baseline or MAX_WIDTH) decides what follows a finetune, not its training."""
    env = script_env(tmp_path / "empty", small_demo_root)
    finetune(env, tmp_path / "t", "--epochs", 1)
    checkpoint = tmp_path / "t" / "scratch" / "checkpoint-1.pth.tar"
    before, rows = load_model(checkpoint)[0].state_dict(), (tmp_path / "t" / "train.csv").read_text()
    tolerance = load_checkpoint(checkpoint)["outcome"]["tolerance"]
    proc = finetune(env, tmp_path / "t", "--epochs", 1, "--allow_acc_loss", "0.05")
    assert "again: allow_acc_loss changed" in proc.stdout and "so its weights are kept" in proc.stdout
    after, outcome = load_model(checkpoint)[0].state_dict(), load_checkpoint(checkpoint)["outcome"]
    assert epochs_trained(tmp_path / "t") == 1 and (tmp_path / "t" / "train.csv").read_text() == rows
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert tolerance != 0.05 and outcome["tolerance"] == 0.05
    assert json.loads((tmp_path / "t" / "scratch" / "outcome.json").read_text()) == outcome
    assert "is already done" in finetune(env, tmp_path / "t", "--epochs", 1, "--allow_acc_loss", "0.05").stdout


def test_keep_finished_refuses_to_train_a_finished_run_again_under_other_settings(small_demo_root, tmp_path):
    """The transfer control's run of a selected pair is step 3-2's own: another EPOCHS or LR replaced it (exit 0)."""
    env = script_env(tmp_path / "empty", small_demo_root)
    finetune(env, tmp_path / "t", "--epochs", 1)
    for extra, reason in ((("--epochs", 1, "--lr", "0.05"), "(lr changed (0.01 -> 0.05))"),
                          (("--epochs", 2), "(a checkpoint of another number of epochs is there)")):
        proc = finetune(env, tmp_path / "t", *extra, "--keep_finished", check=False)
        assert proc.returncode == 1 and "which the control would train again in its place " + reason in proc.stderr
    forced = finetune(env, tmp_path / "t", "--epochs", 1, "--lr", "0.05", "--keep_finished", "--force", check=False)
    assert forced.returncode == 1 and "(lr changed (0.01 -> 0.05))" in forced.stderr     # FORCE: as it was only
    assert epochs_trained(tmp_path / "t") == 1
    assert "is already done" in finetune(env, tmp_path / "t", "--epochs", 1, "--keep_finished").stdout
    finetune(env, tmp_path / "t", "--epochs", 1, "--keep_finished", "--force")
    assert epochs_trained(tmp_path / "t") == 2
    assert "so its weights are kept" in finetune(env, tmp_path / "t", "--epochs", 1, "--allow_acc_loss", "0.05",
                                                 "--keep_finished").stdout


def test_finetune_rerun_skips_only_with_the_same_settings(small_demo_root, tmp_path):
    env = script_env(tmp_path / "empty", small_demo_root)
    finetune(env, tmp_path / "t", "--epochs", 1)
    assert "is already done" in finetune(env, tmp_path / "t", "--epochs", 1).stdout
    assert epochs_trained(tmp_path / "t") == 1
    proc = finetune(env, tmp_path / "t", "--epochs", 1, "--lr", "0.05")
    assert "lr changed (0.01 -> 0.05)" in proc.stdout and epochs_trained(tmp_path / "t") == 2
    proc = finetune(env, tmp_path / "t", "--epochs", 1, "--lr", "0.05", "--seed", "3")
    assert "seed changed (2 -> 3)" in proc.stdout and epochs_trained(tmp_path / "t") == 3


def test_finetune_reruns_when_its_data_changed(small_demo_root, tmp_path):
    finetune(script_env(tmp_path / "empty", small_demo_root), tmp_path / "t", "--epochs", 1)
    proc = finetune(script_env(tmp_path / "empty", edited_copy(small_demo_root, tmp_path)), tmp_path / "t",
                    "--epochs", 1)
    assert "its input 'data' changed" in proc.stdout and epochs_trained(tmp_path / "t") == 2


# ---------------------------------------------------------------- one rule against the baseline

def prune(env, folder, baselines, *extra):
    return python("CPG_MM_main_normal.py", *COMMON, "--dataset", TASK, "--mode", "prune", "--epochs", 1,
                  "--load_folder", folder / "scratch", "--save_folder", folder / "gradual_prune", "--lr", "1e-3",
                  "--jsonfile", baselines, "--initial_sparsity", "0.0", "--target_sparsity", "0.5",
                  "--pruning_interval", 1, "--pruning_frequency", 1, "--log_path", folder / "train.log",
                  "--pruning_ratio_to_acc_record_file", folder / "gradual_prune" / "record.txt", "--force", *extra,
                  env=env)


def pruned_once(data_root, tmp_path):
    """(env, task folder, the accuracy of its stage pruned to 0.5) of a 1-epoch finetune and one pruning stage."""
    env = script_env(tmp_path / "empty", data_root)
    folder = tmp_path / "t"
    finetune(env, folder, "--epochs", 1)
    ok(prune(env, folder, folder / "base0.json"))
    return env, folder, json.loads((folder / "gradual_prune" / "record.txt").read_text())["0.5"]


def test_a_pruning_stage_and_step_2_2_share_one_tolerance(small_demo_root, tmp_path):
    """Under the original's rule (0.001): a stage 0.0005 under its baseline passes (and step 2-2 chooses it); 0.002
    under stops the loop (exit 6)."""
    env, folder, accuracy = pruned_once(small_demo_root, tmp_path)
    close = tmp_path / "close.json"
    close.write_text(json.dumps({TASK: f"{accuracy + 0.0005:.4f}"}))
    original = ("--allow_acc_loss", "0.001")
    ok(prune(env, folder, close, *original))
    ok(python("-m", "tools.choose_appropriate_pruning_ratio_for_next_task_notrmfiles", "--dataset", TASK,
              "--pruning_ratio_to_acc_record_file", folder / "gradual_prune" / "record.txt",
              "--baseline_acc_file", close,
              *original, env=env))
    assert json.loads((folder / "gradual_prune" / "chosen.json").read_text())["ratio"] == 0.5
    far = tmp_path / "far.json"
    far.write_text(json.dumps({TASK: f"{accuracy + 0.002:.4f}"}))
    assert prune(env, folder, far, *original).returncode == 6


def test_by_default_a_stage_reaches_its_baseline_within_one_standard_error(small_demo_root, tmp_path):
    """0.002 under the baseline on the small demo's 10 validation samples (one sample is 0.1) is no miss."""
    env, folder, accuracy = pruned_once(small_demo_root, tmp_path)
    far = tmp_path / "far.json"
    far.write_text(json.dumps({TASK: f"{accuracy + 0.002:.4f}"}))
    ok(prune(env, folder, far))
    outcome = json.loads((folder / "gradual_prune" / "0.5" / "outcome.json").read_text())
    baseline = accuracy + 0.002
    assert outcome["val_samples"] == 10 and outcome["reached_baseline"] is True
    assert outcome["tolerance"] == pytest.approx((baseline * (1 - baseline) / 10) ** 0.5, abs=1e-4)


def choose(env, folder):
    return python("-m", "tools.choose_appropriate_pruning_ratio_for_next_task_notrmfiles", "--dataset", TASK,
                  "--pruning_ratio_to_acc_record_file", folder / "gradual_prune" / "record.txt",
                  "--baseline_acc_file", folder / "base0.json", env=env)


def test_a_finetune_redone_with_other_epochs_replaces_what_came_of_the_old_one(small_demo_root, tmp_path):
    """Step 2-1 re-run with another EPOCHS: one checkpoint in scratch/, the old pruning stages and step 2-2's
    choice of them gone, and step 2-2 can choose again (before: two checkpoints and a stale chosen.json, and
    step 2-2 stopped asking for itself)."""
    env, folder = script_env(tmp_path / "empty", small_demo_root), tmp_path / "t"
    finetune(env, folder, "--epochs", 1)
    ok(prune(env, folder, folder / "base0.json"))
    ok(choose(env, folder))
    assert json.loads((folder / "gradual_prune" / "chosen.json").read_text())["ratio"] == 0.5
    finetune(env, folder, "--epochs", 2)
    assert sorted(p.name for p in (folder / "scratch").glob("checkpoint-*")) == ["checkpoint-2.pth.tar"]
    assert [p.name for p in (folder / "gradual_prune").iterdir() if not p.name.startswith("record.txt")] == []
    assert list(json.loads((folder / "gradual_prune" / "record.txt").read_text())) == ["0.0"]
    ok(choose(env, folder))
    assert json.loads((folder / "gradual_prune" / "chosen.json").read_text())["ratio"] == 0.0


def test_step_1_retrains_when_the_sizes_its_profile_stands_for_changed(out, small_demo_root):
    """A baseline of the same profile name made when the profile had other sizes (another image patch)."""
    path = baseline_checkpoint(out)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    now = payload["provenance"]["settings"]["profile_sizes"]["image_patch"]
    payload["provenance"]["settings"]["profile_sizes"]["image_patch"] = now + 1
    torch.save(payload, path)
    proc = step1(script_env(out, small_demo_root))
    assert (f"Retraining the baseline of shapes_clean: profile_sizes.image_patch changed ({now + 1} -> {now})."
            in proc.stdout)
    sizes = load_checkpoint(path)["provenance"]["settings"]["profile_sizes"]
    assert sizes["image_patch"] == now and sizes["num_latents"] == 32


def cpg_loop(env, folder, *stages, lr="1e-3"):
    """Step 2-1's --mode cpg with pruning `stages` at `lr` (one epoch each; the baseline 0 every stage reaches)."""
    return ok(python("CPG_MM_main_normal.py", *COMMON, "--dataset", TASK, "--mode", "cpg", "--epochs", 1,
                     "--save_folder", folder / "scratch", "--jsonfile", folder / "base0.json",
                     "--pruning_ratio_to_acc_record_file", folder / "gradual_prune" / "record.txt",
                     "--log_path", folder / "train.log", "--prune_stages", *stages, "--prune_lr", lr,
                     "--pruning_interval", 1, "--pruning_frequency", 1, env=env))


def stages_left(folder):
    """(record.txt's ratios, stage folders, train.csv's pruning stages) of a task folder."""
    prune_dir = folder / "gradual_prune"
    return (sorted(json.loads((prune_dir / "record.txt").read_text())),
            sorted(p.name for p in prune_dir.iterdir() if p.is_dir()),
            sorted({row.split(",")[3] for row in (folder / "train.csv").read_text().split() if ",prune" in row}))


def test_another_plan_of_pruning_stages_leaves_none_of_the_earlier_plans_stages(small_demo_root, tmp_path):
    """Step 2-1 re-run with other PRUNE_STAGES: step 2-2 can choose only among the stages of the plan that ran, and
    train.csv (the continual-learning table's training time) holds only theirs (before: the 0.3 stage made at
    another lr stayed, and step 2-2 chose it)."""
    env, folder = script_env(tmp_path / "empty", small_demo_root), tmp_path / "t"
    finetune(env, folder, "--epochs", 1)
    cpg_loop(env, folder, "0.3", "0.6")
    ok(choose(env, folder))
    assert json.loads((folder / "gradual_prune" / "chosen.json").read_text())["ratio"] == 0.6
    cpg_loop(env, folder, "0.5", lr="5e-3")       # made anew: starts from 0.0, not from the 0.3 stage
    assert stages_left(folder) == (["0.0", "0.5"], ["0.5"], ["prune0.5"])
    assert not (folder / "gradual_prune" / "chosen.json").exists()
    cpg_loop(env, folder, "0.5", "0.7", lr="5e-3")
    ok(choose(env, folder))
    cpg_loop(env, folder, "0.5", lr="5e-3")       # every stage found done: the longer plan's 0.7 goes all the same
    assert stages_left(folder) == (["0.0", "0.5"], ["0.5"], ["prune0.5"])
    assert not (folder / "gradual_prune" / "chosen.json").exists()
    ok(choose(env, folder))
    assert json.loads((folder / "gradual_prune" / "chosen.json").read_text())["ratio"] == 0.5
