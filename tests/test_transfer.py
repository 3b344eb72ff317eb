"""Step 4 (transfer_kv_perceiver_io.py) between step 2-2's chosen checkpoint and step 3-2."""
import hashlib
import json
import re
import shutil

import pytest
import torch

from conftest import ok, python, script_env
from utils import paths
from utils.checkpoint import load_checkpoint, load_model, model_state, save_model
from utils.provenance import fingerprint

BACKBONE, IMAGE_TARGET, TEXT_TARGET = "shapes_clean", "shapes_noisy", "shapes_captions"   # ids 1, 2, 7
ARCH = "perceiver_io"


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


COMMON = ("--device", "cpu", "--profile", "demo", "--dataset_config", "demo", "--seed", "2")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, baseline_outputs, small_demo_root):
    root = tmp_path_factory.mktemp("transfer")
    out = root / "out"
    shutil.copytree(baseline_outputs, out)
    env = script_env(out, small_demo_root)
    base0 = root / "base0.json"
    base0.write_text(json.dumps({BACKBONE: "0.0000", IMAGE_TARGET: "0.0000", TEXT_TARGET: "0.0000"}))
    bdir = paths.checkpoints_dir(ARCH).relative_to(paths.output_root())  # layout relative to the output root
    bdir = out / bdir / "CPG_single_scratch_woexp" / ARCH / "demo" / BACKBONE
    record = bdir / "gradual_prune" / "record.txt"
    cpg = ("CPG_MM_main_normal.py", *COMMON, "--dataset", BACKBONE, "--jsonfile", base0, "--epochs", 1,
           "--pruning_ratio_to_acc_record_file", record, "--log_path", bdir / "train.log")
    ok(python(*cpg, "--mode", "finetune", "--save_folder", bdir / "scratch", env=env))
    ok(python(*cpg, "--mode", "prune", "--load_folder", bdir / "scratch", "--save_folder", bdir / "gradual_prune",
              "--lr", "1e-3", "--initial_sparsity", "0.0", "--target_sparsity", "0.5", "--pruning_interval", 1,
              "--pruning_frequency", 1, env=env))
    ok(python("-m", "tools.choose_appropriate_pruning_ratio_for_next_task_notrmfiles",
              "--pruning_ratio_to_acc_record_file", record, "--baseline_acc_file", base0, "--dataset", BACKBONE,
              env=env))
    chosen = bdir / "gradual_prune" / json.loads((bdir / "gradual_prune" / "chosen.json").read_text())["checkpoint"]
    hashes = {"before": sha(chosen)}
    (out / "pickaback_demo_result.csv").write_text("target_id,task_id\n2,1\n7,1\n")
    transfer_proc = ok(python("transfer_kv_perceiver_io.py", "--dataset_config", "demo", env=env))
    hashes["after_transfer"] = sha(chosen)
    # step 3-2: the text target trains on the image backbone from its transfer checkpoint
    tdir = out / paths.target_dir(ARCH, "demo", BACKBONE, TEXT_TARGET).relative_to(paths.output_root())
    kv7 = chosen.with_name(chosen.name.replace(".pth.tar", "_kv_transfer_7.pth.tar"))
    finetune_proc = python("CPG_MM_main_normal.py", *COMMON, "--dataset", TEXT_TARGET, "--mode", "finetune",
                           "--load_checkpoint", kv7, "--save_folder", tdir / "scratch", "--epochs", 1,
                           "--jsonfile", base0, "--network_width_multiplier", "1.0",
                           "--max_allowed_network_width_multiplier", "2.0",
                           "--pruning_ratio_to_acc_record_file", tdir / "gradual_prune" / "record.txt",
                           "--log_path", tdir / "train.log", env=env)
    hashes["after_step_3_2"] = sha(chosen)
    return dict(out=out, env=env, chosen=chosen, hashes=hashes, transfer_proc=transfer_proc,
                finetune_proc=finetune_proc, tdir=tdir)


def kv_path(pipeline, target_id):
    chosen = pipeline["chosen"]
    return chosen.with_name(chosen.name.replace(".pth.tar", f"_kv_transfer_{target_id}.pth.tar"))


def baseline_model(pipeline, task):
    folder = pipeline["out"] / "checkpoints_perceiver_io" / "baseline_scratch" / ARCH / "demo" / task
    (ckpt,) = folder.glob("checkpoint-*.pth.tar")
    return load_model(ckpt)[0]


def test_output_checkpoint_lies_beside_the_chosen_one(pipeline):
    chosen = pipeline["chosen"]
    assert re.fullmatch(r"checkpoint-\d+\.pth\.tar", chosen.name)
    for target_id in (2, 7):
        out = kv_path(pipeline, target_id)
        assert out.is_file()
        assert out.parent == chosen.parent
        assert str(out) in pipeline["transfer_proc"].stdout


@pytest.mark.parametrize("target_id,target", [(2, IMAGE_TARGET), (7, TEXT_TARGET)])
def test_backbone_task_unchanged(pipeline, target_id, target):
    backbone, _ = load_model(pipeline["chosen"])
    moved, _ = load_model(kv_path(pipeline, target_id))
    assert moved.task_names == [BACKBONE, target]
    old, new = model_state(backbone), model_state(moved)
    for layer, weight in old["weights"].items():
        assert torch.equal(weight, new["weights"][layer]), layer
        assert torch.equal(old["owners"][layer] == 1, new["owners"][layer] == 1), layer
    for key, value in old["task_modules"][BACKBONE].items():
        assert torch.equal(value, new["task_modules"][BACKBONE][key]), key
    for key, value in old["private"][BACKBONE].items():
        assert torch.equal(value, new["private"][BACKBONE][key]), key
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(backbone.task_view(BACKBONE)(x), moved.task_view(BACKBONE)(x))


@pytest.mark.parametrize("target_id,target", [(2, IMAGE_TARGET), (7, TEXT_TARGET)])
def test_target_gets_its_baseline_adapter_and_nothing_else(pipeline, target_id, target):
    moved, _ = load_model(kv_path(pipeline, target_id))
    base = baseline_model(pipeline, target)
    mine = moved.body.task_modules(target)["adapters"].state_dict()
    theirs = base.body.adapters[target].state_dict()
    assert mine.keys() == theirs.keys() and mine
    for key in theirs:
        assert torch.equal(mine[key], theirs[key]), key
    head, base_head = moved.body.heads[target].state_dict(), base.body.heads[target].state_dict()
    assert head.keys() == base_head.keys()
    assert not all(torch.equal(head[k], base_head[k]) for k in head), "the target's head was copied from its baseline"


def test_backbone_checkpoint_bytes_never_change(pipeline):
    hashes = pipeline["hashes"]
    assert hashes["before"] == hashes["after_transfer"] == hashes["after_step_3_2"]


def test_text_target_on_image_backbone_trains_and_infers(pipeline):
    ok(pipeline["finetune_proc"])
    ckpt = pipeline["tdir"] / "scratch" / "checkpoint-1.pth.tar"
    model, _ = load_model(ckpt)
    assert model.task_names == [BACKBONE, TEXT_TARGET]
    proc = ok(python("CPG_MM_main_normal.py", *COMMON, "--dataset", TEXT_TARGET, "--mode", "inference",
                     "--load_folder", pipeline["tdir"] / "scratch", "--save_folder", pipeline["tdir"] / "scratch",
                     "--log_path", pipeline["tdir"] / "inference.log", env=pipeline["env"]))
    assert re.search(r"In validate\(\)-> Val Ep\. #\d+ loss: [\d.]+, accuracy: [\d.]+, .*task2 ratio: ", proc.stdout)
    assert f"Test accuracy of {TEXT_TARGET}" in proc.stdout


def test_missing_result_csv_is_a_clear_error(tmp_path, small_demo_root):
    proc = python("transfer_kv_perceiver_io.py", "--dataset_config", "demo", env=script_env(tmp_path, small_demo_root))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "pickaback_demo_result.csv" in lines[0]
    assert "find_backbone.sh" in lines[0]


def test_a_target_without_a_backbone_is_named_not_passed_over(pipeline):
    proc = python("transfer_kv_perceiver_io.py", "--dataset_config", "demo", "--target_id", "7", "5",
                  env=pipeline["env"])
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("error: No backbone for target 5 in ") and "find_backbone.sh for it first" in \
        proc.stderr


def test_transfer_is_reproducible(pipeline):
    """The target's fresh head is seeded: re-running step 4 writes the same checkpoint, tensor for tensor."""
    before = model_state(load_model(kv_path(pipeline, 2))[0])
    ok(python("transfer_kv_perceiver_io.py", "--dataset_config", "demo", "--target_id", "2", "--force",
              env=pipeline["env"]))
    after = model_state(load_model(kv_path(pipeline, 2))[0])
    flat_before, flat_after = flatten(before), flatten(after)
    assert flat_before.keys() == flat_after.keys()
    assert all(torch.equal(flat_before[k], flat_after[k]) for k in flat_before if torch.is_tensor(flat_before[k]))


def flatten(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in flatten(sub, f"{prefix}/{key}").items()}
    return {prefix: tree}


def test_rerun_keeps_an_unchanged_transfer(pipeline):
    before = kv_path(pipeline, 7).stat().st_mtime_ns
    proc = ok(python("transfer_kv_perceiver_io.py", "--dataset_config", "demo", "--target_id", "7",
                     env=pipeline["env"]))
    assert "unchanged, kept" in proc.stdout
    assert kv_path(pipeline, 7).stat().st_mtime_ns == before


def test_a_changed_backbone_redoes_its_transfer(pipeline, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    chosen = out / pipeline["chosen"].relative_to(pipeline["out"])
    model, payload = load_model(chosen)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_model(chosen, model, "demo", **{k: v for k, v in payload.items() if k not in ("model", "arch", "profile",
                                                                                  "config", "format")})
    proc = ok(python("transfer_kv_perceiver_io.py", "--dataset_config", "demo", "--target_id", "7",
                     env=script_env(out, pipeline["env"]["MMPAB_DATA_ROOT"])))
    assert "written (its input 'backbone' changed)" in proc.stdout


def test_step_4_names_step_2_2_when_the_chosen_checkpoint_is_another_tasks(pipeline, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    chosen = out / pipeline["chosen"].relative_to(pipeline["out"])
    (other,) = (out / "checkpoints_perceiver_io" / "baseline_scratch" / ARCH / "demo" / TEXT_TARGET).glob("*.pth.tar")
    shutil.copyfile(other, chosen)
    proc = python("transfer_kv_perceiver_io.py", "--dataset_config", "demo", "--target_id", "7",
                  env=script_env(out, pipeline["env"]["MMPAB_DATA_ROOT"]))
    assert proc.returncode == 1 and f"is not a backbone checkpoint of {BACKBONE} (it was replaced); re-run step 2-2 " \
        "(run_pickaback/select_pruning_ratio_of_backbone.sh demo)" in proc.stderr, proc.stderr


def test_step_3_2_starts_from_the_transfer_step_4_named(pipeline, tmp_path):
    """A stale transfer of an earlier choice (checkpoint-30_... sorts before checkpoint-1_...) is never taken."""
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    prune_dir = out / pipeline["chosen"].parent.relative_to(pipeline["out"])
    named = prune_dir / kv_path(pipeline, 7).name
    stale = prune_dir / "checkpoint-0_kv_transfer_7.pth.tar"
    shutil.copyfile(named, stale)
    assert sorted(prune_dir.glob("checkpoint-*_kv_transfer_7.pth.tar"))[0] == stale
    proc = ok(python("-m", "tools.task_info", "demo", "7",
                     "--transfer_on", "1", env=script_env(out, pipeline["env"]["MMPAB_DATA_ROOT"])))
    assert proc.stdout.strip() == str(named)


def test_step_3_2_refuses_a_transfer_made_from_an_earlier_step_1_model_of_its_target(pipeline, tmp_path):
    """Step 1 re-run for the target (another EPOCHS), step 4 not: the transfer holds the old model's adapter (before,
    step 3-2 trained on it with exit 0 and the results paired the new scratch accuracy with it)."""
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    folder = out / "checkpoints_perceiver_io" / "baseline_scratch" / ARCH / "demo" / TEXT_TARGET
    (baseline,) = folder.glob("checkpoint-*.pth.tar")
    model, payload = load_model(baseline)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_model(baseline, model, "demo", **{k: v for k, v in payload.items() if k not in ("model", "arch", "profile",
                                                                                     "config", "format")})
    tdir = tmp_path / "target"
    (tmp_path / "base0.json").write_text(json.dumps({TEXT_TARGET: "0.0000"}))
    proc = python("CPG_MM_main_normal.py", *COMMON, "--dataset", TEXT_TARGET, "--mode", "finetune",
                  "--load_checkpoint", out / kv_path(pipeline, 7).relative_to(pipeline["out"]),
                  "--save_folder", tdir / "scratch", "--epochs", 1, "--jsonfile", tmp_path / "base0.json",
                  "--log_path", tdir / "train.log", env=script_env(out, pipeline["env"]["MMPAB_DATA_ROOT"]))
    assert proc.returncode == 1
    assert ("is out of date (its input 'target baseline' changed); re-run step 4 (bash run_pickaback/transfer_kv.sh "
            "demo) before training target shapes_captions on it." in proc.stderr)


def test_step_3_2_refuses_a_transfer_step_4_made_for_another_target(pipeline, tmp_path):
    """Target 7's transfer copied to target 1's name: before, target 1 trained through target 7's adapter, exit 0."""
    tdir = tmp_path / "target"
    (tmp_path / "base0.json").write_text(json.dumps({"shapes_clean": "0.0000"}))
    proc = python("CPG_MM_main_normal.py", *COMMON, "--dataset", "shapes_clean", "--mode", "finetune",
                  "--load_checkpoint", kv_path(pipeline, 7), "--save_folder", tdir / "scratch", "--epochs", 1,
                  "--jsonfile", tmp_path / "base0.json", "--log_path", tdir / "train.log",
                  env=script_env(pipeline["out"], pipeline["env"]["MMPAB_DATA_ROOT"]))
    assert proc.returncode == 1 and not (tdir / "scratch").exists()
    assert (f"is step 4's transfer for target {TEXT_TARGET}, not shapes_clean; re-run step 4 (bash "
            f"run_pickaback/transfer_kv.sh demo) for target shapes_clean." in proc.stderr), proc.stderr


def test_step_3_2_refuses_a_target_whose_data_changed_after_its_step_1_baseline(pipeline, small_demo_root, tmp_path):
    """A caption edited after step 1: the run would be judged against (and its results paired with) a baseline of
    other data (before, step 3-2 trained on the new data with exit 0)."""
    data = tmp_path / "data"
    shutil.copytree(small_demo_root, data)
    caption = sorted((data / "demo" / "text" / "train" / TEXT_TARGET).glob("*/*.txt"))[0]
    caption.write_text(caption.read_text() + " again")
    tdir = tmp_path / "target"
    proc = python("CPG_MM_main_normal.py", *COMMON, "--dataset", TEXT_TARGET, "--mode", "finetune",
                  "--load_checkpoint", kv_path(pipeline, 7), "--save_folder", tdir / "scratch", "--epochs", 1,
                  "--jsonfile", pipeline["out"].parent / "base0.json", "--log_path", tdir / "train.log",
                  env=script_env(pipeline["out"], data))
    assert proc.returncode == 1 and not (tdir / "scratch").exists()
    assert (f"The data of task {TEXT_TARGET} changed after its step-1 baseline" in proc.stderr
            and "re-run step 1 (run_pickaback/baseline.sh demo) and the steps after it" in proc.stderr), proc.stderr


def test_step_4_refuses_a_pick_step_3_1_made_from_a_model_changed_since(pipeline, tmp_path):
    """Step 3-1's record of pair (7, 1) holds the fingerprint of another step-1 model of target 7 than the one there."""
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    (target,) = (out / "checkpoints_perceiver_io" / "baseline_scratch" / ARCH / "demo" / TEXT_TARGET).glob("*.pth.tar")
    chosen = out / pipeline["chosen"].relative_to(pipeline["out"])
    now = {"target 7": fingerprint(target), "candidate 1": fingerprint(chosen)}
    step_4 = ("transfer_kv_perceiver_io.py", "--dataset_config", "demo", "--target_id", "7", "--force")
    for inputs, refused in ((now, False), ({**now, "target 7": "0" * 16}, True)):
        (out / "pickaback_demo_table.json").write_text(json.dumps({"7,1": {"settings": {"compare": "received"},
                                                                           "inputs": inputs}}))
        proc = python(*step_4, env=script_env(out, pipeline["env"]["MMPAB_DATA_ROOT"]))
        assert proc.returncode == (1 if refused else 0), proc.stderr
    assert ("Step 3-1 picked backbone 1 for target 7 by comparing an earlier model of target 7, changed since; run "
            "step 3-1 (run_pickaback/find_backbone.sh) for target 7 again first." in proc.stderr)


def test_step_3_2_records_the_file_it_started_from(pipeline):
    ok(pipeline["finetune_proc"])
    payload = load_checkpoint(pipeline["tdir"] / "scratch" / "checkpoint-1.pth.tar")
    assert payload["started_from"] == str(kv_path(pipeline, 7))
    assert payload["provenance"]["inputs"]["start"] == fingerprint(kv_path(pipeline, 7))


def test_target_grown_in_step_3_2_evaluates_the_same_after_reload(pipeline, tmp_path):
    """Step 4 registers the target at width 1.0; under an unreachable baseline step 3-2 grows it to 2.0.
    Reloaded, `--mode inference` must give exactly the validation accuracy training logged."""
    base1 = tmp_path / "base1.json"
    base1.write_text(json.dumps({IMAGE_TARGET: "1.0000"}))
    tdir = tmp_path / "target"
    args = ("CPG_MM_main_normal.py", *COMMON, "--dataset", IMAGE_TARGET, "--mode", "finetune",
            "--load_checkpoint", kv_path(pipeline, 2), "--save_folder", tdir / "scratch", "--epochs", 2,
            "--jsonfile", base1, "--max_allowed_network_width_multiplier", "2.0",
            "--pruning_ratio_to_acc_record_file", tdir / "gradual_prune" / "record.txt", "--log_path", tdir / "train.log")
    for width, status in (("1.0", 2), ("1.5", 2), ("2.0", 0)):
        proc = python(*args, "--network_width_multiplier", width, env=pipeline["env"])
        assert proc.returncode == status, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "stayed under its baseline" in proc.stdout
    trained = re.findall(r"Val Ep\. #\d+ loss: [\d.]+, accuracy: ([\d.]+)", (tdir / "train.log").read_text())[-1]
    model, _ = load_model(tdir / "scratch" / "checkpoint-2.pth.tar")
    assert model.tasks[IMAGE_TARGET].width_mult == 2.0
    proc = ok(python("CPG_MM_main_normal.py", *COMMON, "--dataset", IMAGE_TARGET, "--mode", "inference",
                     "--load_folder", tdir / "scratch", "--save_folder", tdir / "scratch",
                     "--log_path", tdir / "inference.log", env=pipeline["env"]))
    inferred = re.findall(r"Val Ep\. #\d+ loss: [\d.]+, accuracy: ([\d.]+)", proc.stdout)[-1]
    assert inferred == trained
