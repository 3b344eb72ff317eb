"""Step 3-1 resuming: saved distances are reused only with the same settings and models, and saved per target."""
import csv
import json
import shutil

import pytest
import torch

from conftest import python, script_env
from utils import paths
from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.dataset_config import get_config
from utils.errors import UserError

ARCH = "perceiver_io"
NAMES = {1: "shapes_clean", 2: "shapes_noisy", 7: "shapes_captions"}   # the tasks of `baseline_outputs`
FAST = ["--max_iterations", "2", "--n_inputs", "10", "--device", "cpu", "--compare", "baseline"]  # only step 1 ran
REUSED = "Distances of target {} already computed"
RECOMPUTED = "Distances of target {} recomputed: {}"


def select(out, data_root, *extra, targets=("1", "7"), candidates=("1", "2", "7"), check=True):
    proc = python("pickaback_perceiverIO.py", "--dataset_config", "demo", "--target_id", *targets,
                  "--candidate_ids", *candidates, *FAST, *extra, env=script_env(out, data_root), timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def outputs(out, seed=paths.DEFAULT_SEED):
    """(result CSV text, table CSV text, sidecar dict) under the output root `out`."""
    root = out if seed == paths.DEFAULT_SEED else out / f"seed{seed}"
    result, table = root / "pickaback_demo_result.csv", root / "pickaback_demo_table.csv"
    sidecar = root / "pickaback_demo_table.json"
    return (result.read_text() if result.exists() else None, table.read_text() if table.exists() else None,
            json.loads(sidecar.read_text()) if sidecar.exists() else None)


def rows(text):
    return list(csv.reader(text.splitlines()))[1:]


def baseline_checkpoint(out, task_id, seed=paths.DEFAULT_SEED):
    folder = out / ("" if seed == paths.DEFAULT_SEED else f"seed{seed}") / f"checkpoints_{ARCH}" / \
        "baseline_scratch" / ARCH / "demo" / NAMES[task_id]
    found = sorted(folder.glob("checkpoint-*.pth.tar"))
    assert len(found) == 1
    return found[0]


def perturb_a_weight(path):
    """Rewrite a checkpoint with one weight changed (still a valid checkpoint of the same model)."""
    payload = load_checkpoint(path)

    def bump(node, key=""):
        if isinstance(node, dict):
            return any(bump(value, f"{key}.{name}") for name, value in node.items())
        if isinstance(node, torch.Tensor) and node.is_floating_point() and node.numel() and "weight" in key:
            node.view(-1)[0] += 0.5
            return True
        return False

    assert bump(payload["model"])
    save_checkpoint(path, {k: v for k, v in payload.items() if k != "format"})


@pytest.fixture(scope="module")
def computed(baseline_outputs, small_demo_root, tmp_path_factory):
    """Step 1's outputs plus one step 3-1 run of targets 1 and 7 against all peers; copy before changing."""
    out = tmp_path_factory.mktemp("selected") / "out"
    shutil.copytree(baseline_outputs, out)
    proc = select(out, small_demo_root)
    return out, proc.stdout


@pytest.fixture
def work(computed, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(computed[0], out)
    return out


def test_every_pair_is_saved_with_its_provenance(computed):
    out, stdout = computed
    result, table, sidecar = outputs(out)
    assert "already computed" not in stdout and "recomputed" not in stdout      # nothing saved before
    assert [r[:2] for r in rows(table)] == [["1", "2"], ["1", "7"], ["7", "1"], ["7", "2"]]
    assert [r[0] for r in rows(result)] == ["1", "7"]
    assert list(sidecar) == ["1,2", "1,7", "7,1", "7,2"]
    record = sidecar["1,7"]
    assert set(record["inputs"]) == {"target 1", "candidate 7", "target 1 data", "candidate 7 data"}
    settings = record["settings"]
    assert settings["max_iterations"] == 2 and settings["n_inputs"] == 10 and settings["epsilon"] == 0.1
    assert settings["seed"] == paths.DEFAULT_SEED
    assert settings["val_fraction"] == get_config("demo").val_fraction        # resolved, not None
    assert not {"target_id", "candidate_ids", "candidates", "select", "force", "device"} & set(settings)


def test_unchanged_rerun_reuses_and_select_only_reranks(work, small_demo_root):
    before = outputs(work)
    stdout = select(work, small_demo_root).stdout
    assert REUSED.format(1) in stdout and REUSED.format(7) in stdout and "recomputed" not in stdout
    assert outputs(work) == before

    stdout = select(work, small_demo_root, "--select", "dissimilar").stdout
    assert REUSED.format(1) in stdout and REUSED.format(7) in stdout and "recomputed" not in stdout
    result, table, sidecar = outputs(work)
    assert (table, sidecar) == before[1:]
    euc = {(t, c): float(d) for t, c, _, d, *_ in rows(table)}
    for t, c in rows(result):
        assert euc[(t, c)] == max(d for (tt, _), d in euc.items() if tt == t)
    assert len(rows(result)) == 2                                              # one row per target

    stdout = select(work, small_demo_root, "--force").stdout
    assert "already computed" not in stdout
    assert outputs(work) == before                                             # same settings, same numbers


def test_changed_setting_recomputes_and_says_why(work, small_demo_root):
    stdout = select(work, small_demo_root, "--max_iterations", "1").stdout
    assert RECOMPUTED.format(1, "max_iterations changed (2 -> 1)") in stdout
    assert RECOMPUTED.format(7, "max_iterations changed (2 -> 1)") in stdout
    assert outputs(work)[2]["7,2"]["settings"]["max_iterations"] == 1

    stdout = select(work, small_demo_root, "--max_iterations", "1", "--epsilon", "0.3", targets=["1"]).stdout
    assert RECOMPUTED.format(1, "epsilon changed (0.1 -> 0.3)") in stdout
    sidecar = outputs(work)[2]
    assert sidecar["1,2"]["settings"]["epsilon"] == 0.3 and sidecar["7,2"]["settings"]["epsilon"] == 0.1

    (work / "pickaback_demo_table.json").unlink()                               # a table from before provenance
    stdout = select(work, small_demo_root, "--max_iterations", "1", "--epsilon", "0.3", targets=["1"]).stdout
    assert RECOMPUTED.format(1, "it records no settings") in stdout


def test_changed_checkpoint_recomputes_and_says_why(work, small_demo_root):
    before = outputs(work)[2]
    perturb_a_weight(baseline_checkpoint(work, 1))
    stdout = select(work, small_demo_root).stdout
    assert RECOMPUTED.format(1, "its input 'target 1' changed") in stdout
    assert RECOMPUTED.format(7, "its input 'candidate 1' changed") in stdout
    after = outputs(work)[2]
    assert after["1,2"]["inputs"]["target 1"] != before["1,2"]["inputs"]["target 1"]
    assert after["7,1"]["inputs"]["candidate 1"] == after["1,2"]["inputs"]["target 1"]
    assert after["7,2"]["inputs"] == before["7,2"]["inputs"]                   # task 2 and 7 unchanged


def test_step_3_2_refuses_a_pick_made_from_a_model_trained_again_since(work, small_demo_root):
    """Step 1 re-run for target 7 (or for its picked backbone), step 3-1 not: its pick compared the earlier model
    (before, step 3-2 trained on it with exit 0; step 4 makes the same check, after loading the pair's files)."""
    env = script_env(work, small_demo_root)
    picks = python("-m", "tools.task_info", "demo", "--selections", env=env)
    assert picks.returncode == 0, picks.stderr
    picked = dict(line.split() for line in picks.stdout.splitlines())
    perturb_a_weight(baseline_checkpoint(work, 7))
    proc = python("-m", "tools.task_info", "demo", "--selections", env=env)
    assert proc.returncode == 1
    target, model = (1, "candidate 7") if picked["1"] == "7" else (7, "target 7")     # the first target refused
    assert (f"for target {target} by comparing an earlier model of {model}, changed since; run step 3-1 "
            f"(run_pickaback/find_backbone.sh) for target {target} again first." in proc.stderr), proc.stderr
    select(work, small_demo_root)
    picks = python("-m", "tools.task_info", "demo", "--selections", env=env)
    assert picks.returncode == 0, picks.stderr
    picked = dict(line.split() for line in picks.stdout.splitlines())
    perturb_a_weight(baseline_checkpoint(work, int(picked["1"])))
    proc = python("-m", "tools.task_info", "demo", "--selections", env=env)
    assert proc.returncode == 1 and f"earlier model of candidate {picked['1']}, changed" in proc.stderr, proc.stderr


def test_an_outdated_pick_stops_only_a_run_of_its_own_target(work, small_demo_root):
    """Step 3-2 with TASKS=1 reads the picks of target 1 alone: target 7's pick, made from a backbone trained again
    since, stops a run of target 7 and not one of target 1 (before, it stopped both)."""
    env = script_env(work, small_demo_root)
    picks = python("-m", "tools.task_info", "demo", "--selections", env=env)
    assert picks.stdout == "1 7\n7 2\n", picks.stderr                # target 7's backbone is not target 1's
    perturb_a_weight(baseline_checkpoint(work, 2))
    assert python("-m", "tools.task_info", "demo", "--selections", "7", env=env).returncode == 1
    only_1 = python("-m", "tools.task_info", "demo", "--selections", "shapes_clean", env=env)
    assert only_1.returncode == 0 and only_1.stdout == "1 7\n", only_1.stderr


def test_changed_data_recomputes_and_says_why(work, small_demo_root, tmp_path):
    """A caption of task 7 edited, step 1 not re-run: the probes drawn from it are others (before, the distances
    were reused)."""
    data = tmp_path / "data"
    shutil.copytree(small_demo_root, data)
    caption = sorted((data / "demo" / "text" / "train" / NAMES[7]).glob("*/*.txt"))[0]
    caption.write_text(caption.read_text() + " again")
    stdout = select(work, data).stdout
    assert RECOMPUTED.format(1, "its input 'candidate 7 data' changed") in stdout
    assert RECOMPUTED.format(7, "its input 'target 7 data' changed") in stdout


def test_each_targets_distances_are_saved_as_soon_as_it_is_done(baseline_outputs, small_demo_root, tmp_path):
    """The picks are made together once every target has its distances (a hub is a property of many picks)."""
    out = tmp_path / "out"
    shutil.copytree(baseline_outputs, out)
    baseline_checkpoint(out, 7).unlink()                   # target 7 fails, after target 1 is done
    proc = select(out, small_demo_root, targets=["1", "7"], candidates=["1", "2"], check=False)
    assert proc.returncode != 0 and "No checkpoint" in proc.stderr
    result, table, sidecar = outputs(out)
    assert result is None
    assert [r[:2] for r in rows(table)] == [["1", "2"]]
    assert list(sidecar) == ["1,2"]
    proc = select(out, small_demo_root, targets=["1"], candidates=["1", "2"])
    assert REUSED.format(1) in proc.stdout                 # and the next run resumes from it
    assert rows(outputs(out)[0]) == [["1", "2"]]


def test_seed_defaults_to_the_pipeline_seed_and_selects_its_outputs(baseline_outputs, small_demo_root, tmp_path,
                                                                    monkeypatch):
    import pickaback_perceiverIO
    from packnet_models_pickaback.compare import load_task_model
    assert pickaback_perceiverIO.get_args_parser().parse_args([]).seed == paths.DEFAULT_SEED

    out = tmp_path / "out"
    shutil.copytree(baseline_outputs / f"checkpoints_{ARCH}", out / "seed5" / f"checkpoints_{ARCH}")
    select(out, small_demo_root, "--seed", "5", targets=["1"], candidates=["1", "2"])
    assert outputs(out) == (None, None, None)             # the default seed's outputs are not touched
    result, table, sidecar = outputs(out, seed=5)
    assert rows(result) == [["1", "2"]] and sidecar["1,2"]["settings"]["seed"] == 5

    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(out))
    cfg = get_config("demo", data_root_dir=small_demo_root)
    with pytest.raises(UserError, match="No checkpoint"):
        load_task_model(cfg, cfg.task(1), ARCH)           # the default seed's baseline is not there
    assert load_task_model(cfg, cfg.task(1), ARCH, seed=5).task_names == [NAMES[1]]


def test_probe_seed_changes_the_probes_not_the_run(work, small_demo_root):
    """--probe_seed draws other profiling inputs (other distances) but writes into the --seed run's files."""
    before = outputs(work)[1]
    stdout = select(work, small_demo_root, "--probe_seed", "9", targets=["7"]).stdout
    assert RECOMPUTED.format(7, "probe_seed changed (2 -> 9)") in stdout
    after = outputs(work)
    assert after[2]["7,1"]["settings"]["probe_seed"] == 9
    assert [r for r in rows(after[1]) if r[0] == "7"] != [r for r in rows(before) if r[0] == "7"]
    assert not (work / "seed9").exists()


def test_a_table_from_before_the_score_columns_is_recomputed(work, small_demo_root):
    table = work / "pickaback_demo_table.csv"
    old = [r[:4] for r in csv.reader(table.read_text().splitlines())]        # as step 3-1 wrote it before
    with open(table, "w", newline="") as f:
        csv.writer(f).writerows(old)
    missing = "the table was saved without the columns " + ", ".join(NEW_COLUMNS)
    stdout = select(work, small_demo_root, targets=["1"]).stdout
    assert RECOMPUTED.format(1, missing) in stdout
    assert next(csv.reader(table.read_text().splitlines()))[4:] == NEW_COLUMNS
    stdout = select(work, small_demo_root, targets=["7"]).stdout     # its old rows were kept, blank in the new columns
    assert RECOMPUTED.format(7, missing) in stdout


CFG_MODALITY = {task.task_id: task.modality for task in get_config("demo").tasks}
NEW_COLUMNS = ["compared_as", "logme", "leep", "cka", "ddv_euc_untrained", "ddv_euc_over_untrained"]


def test_a_table_from_before_the_untrained_floor_is_recomputed(work, small_demo_root):
    table = work / "pickaback_demo_table.csv"
    old = [r[:8] for r in csv.reader(table.read_text().splitlines())]        # as step 3-1 wrote it before the floor
    with open(table, "w", newline="") as f:
        csv.writer(f).writerows(old)
    stdout = select(work, small_demo_root, targets=["1"]).stdout
    assert RECOMPUTED.format(1, "the table was saved without the columns " + ", ".join(NEW_COLUMNS)) in stdout
    header, *body = list(csv.reader(table.read_text().splitlines()))
    floor = {r[1]: float(r[header.index("ddv_euc_untrained")]) for r in body if r[0] == "1"}
    for r in body:
        if r[0] == "1":
            euc, over = float(r[header.index("ddv_euc")]), float(r[header.index("ddv_euc_over_untrained")])
            assert over == pytest.approx(euc - floor[r[1]], abs=1e-7)
    # one floor per kind of candidate (its modality): the image candidates share one, the text candidates another
    kinds = {CFG_MODALITY[int(c)] for c in floor}
    assert len(set(floor.values())) == len(kinds)


def test_paired_probes_compare_the_other_modality_on_the_same_samples(work, small_demo_root):
    """Demo task 1 (images) and 7 (their captions) are paired: with --cross_modal_probes paired, a text
    candidate of image target 1 and an image candidate of text target 7 read the paired samples."""
    select(work, small_demo_root, "--cross_modal_probes", "paired")
    table = {(r[0], r[1]): r[4] for r in rows(outputs(work)[1])}
    assert table == {("1", "2"): "own adapter", ("1", "7"): "paired probes", ("7", "1"): "paired probes",
                     ("7", "2"): "paired probes"}
    select(work, small_demo_root)
    assert {(r[0], r[1]): r[4] for r in rows(outputs(work)[1])}[("1", "7")] == "target adapter"
