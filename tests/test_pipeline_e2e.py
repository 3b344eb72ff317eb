"""The bash steps end to end on a reduced demo config (4 tasks, 1-2 epochs), as a user runs them."""
import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from conftest import PIPELINE_TASKS as TASKS, python, run_step, sha256
from packnet_models_pickaback.compare import load_task_model
from pickaback_perceiverIO import as_model_inputs
from utils.checkpoint import load_checkpoint
from utils.data import load_split
from utils.dataset_config import get_config

ROOT = Path(__file__).resolve().parent.parent


def test_every_task_has_a_baseline_and_a_backbone(pipeline):
    out = pipeline["out"]
    baselines = json.loads((out / "logs_perceiver_io" / "baseline_demo_acc.txt").read_text())
    assert set(baselines) == set(TASKS.values())
    for name, path in pipeline["chosen"].items():
        record = json.loads((path.parent / "record.txt").read_text())
        assert "0.0" in record and path.exists()


def test_relations_bench_gives_each_targets_own_accuracy_and_its_related_models_on_its_data(pipeline, monkeypatch):
    result = python("-m", "tools.bench.relations", "demo", env=pipeline["env"])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = {r["target_id"]: r for r in json.loads(result.stdout.strip().splitlines()[-1])["targets"]}
    assert {t: r["related_id"] for t, r in rows.items()} == {1: 2, 2: 1, 7: 8, 8: 7}
    assert all(r["chance"] == 0.2 for r in rows.values())
    step1 = json.loads((pipeline["out"] / "logs_perceiver_io" / "baseline_demo_test_acc.txt").read_text())
    assert {t: r["own"] for t, r in rows.items()} == {t: pytest.approx(float(step1[TASKS[t]])) for t in rows}
    # the notes model on the captions' test split, computed here another way
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(pipeline["out"]))
    cfg = get_config("demo", data_root_dir=Path(pipeline["env"]["MMPAB_DATA_ROOT"]))
    notes, captions = cfg.task(8), cfg.task(7)
    x, y = as_model_inputs(cfg, notes, load_split(cfg, captions, "test"), "cpu", 2)
    view = load_task_model(cfg, notes, "perceiver_io").task_view(notes.name)
    assert rows[7]["related_zero_shot"] == pytest.approx((view(x).argmax(1) == y).float().mean().item())


def test_each_target_gets_one_backbone_among_its_peers(pipeline):
    with open(pipeline["out"] / "pickaback_demo_result.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["target_id", "task_id"]
    picks = {int(t): int(c) for t, c in rows[1:]}
    assert set(picks) == set(TASKS)
    assert all(c in TASKS and c != t for t, c in picks.items())
    assert "Selected backbone for target 7 = (euc)" in pipeline["logs"]["find_backbone"]


def test_targets_train_on_their_backbones_and_log_the_final_line(pipeline):
    out = pipeline["out"]
    with open(out / "pickaback_demo_result.csv", newline="") as f:
        picks = [(int(t), int(c)) for t, c in list(csv.reader(f))[1:]]
    targets = out / "checkpoints_perceiver_io" / "CPG_fromsingle_scratch_woexp_target" / "perceiver_io" / "demo"
    for target_id, task_id in picks:
        log = (targets / TASKS[task_id] / TASKS[target_id] / "train.log").read_text().splitlines()
        last = [line for line in log if "In validate()-> Val Ep." in line][-1]
        assert "task2 ratio:" in last and "shared_ratio:" in last and "mpl:" in last


def test_backbone_checkpoints_are_untouched_by_steps_4_and_3_2(pipeline):
    assert {name: sha256(p) for name, p in pipeline["chosen"].items()} == pipeline["hashes_before"]


def test_summary_shows_backbones_bit_identical(pipeline):
    result = python("-m", "tools.report", "demo", "--summary", env=pipeline["env"])
    assert result.returncode == 0, result.stderr
    assert "bit-identical" in result.stdout and "CHANGED" not in result.stdout


def epochs_trained(out):
    """Training epochs logged in every train.log under the output root (the logs are appended to)."""
    return sum(log.read_text().count("Train Ep.") for log in out.rglob("train.log"))


def test_rerunning_a_step_skips_finished_work(pipeline):
    one_at_a_time = dict(pipeline["env"], JOBS="1")       # on the console (JOBS=2 logs each job to a file)
    trained = epochs_trained(pipeline["out"])
    stdout = run_step("baseline", one_at_a_time)
    assert stdout.count("already done") == len(TASKS)
    stdout = run_step("w_backbone", dict(one_at_a_time, TASKS="7"))     # its run on the backbone and the twin
    assert stdout.count("is already done") == 2 and epochs_trained(pipeline["out"]) == trained


def test_parallel_steps_log_each_job_and_print_one_line_per_job(pipeline):
    """The fixture ran every step with JOBS=2: each task's output is in its own log, the console has a line each."""
    out, logs = pipeline["out"], pipeline["logs"]
    targets = out / "checkpoints_perceiver_io" / "CPG_fromsingle_scratch_woexp_target" / "perceiver_io" / "demo"
    for target_id in TASKS:
        assert f"target_on_backbone {target_id}: started" in logs["w_backbone"]
        stage = f"{TASKS[target_id]} finetune@1.0: val accuracy"    # the stage's console line
        assert stage in (targets / f"target_on_backbone_{target_id}.log").read_text()
        assert stage not in logs["w_backbone"]
    assert "finetune@" not in logs["wo_backbone"]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def read_table(out):
    with open(out / "pickaback_demo_table.csv", newline="") as f:
        return {(int(r["target_id"]), int(r["task_id"])): r for r in csv.DictReader(f)}


def test_table_ranks_every_peer_of_both_modalities_and_never_the_target(pipeline):
    rows = read_csv(pipeline["out"] / "pickaback_demo_table.csv")
    assert rows[0] == ["target_id", "task_id", "ddv_cos", "ddv_euc", "compared_as", "logme", "leep", "cka",
                       "ddv_euc_untrained", "ddv_euc_over_untrained"]
    pairs = {(int(t), int(c)) for t, c, *_ in rows[1:]}
    assert pairs == {(t, c) for t in TASKS for c in TASKS if c != t}   # image targets rank text peers too


def test_other_modality_candidates_are_compared_through_the_targets_adapter_by_default(pipeline):
    """A candidate of the target's modality reads its probes through its own adapter, one of the other modality
    through the target's (pairing is an option: tests/test_select_resume.py); every pair has every score."""
    for (target, candidate), row in read_table(pipeline["out"]).items():
        same = (target <= 6) == (candidate <= 6)
        assert row["compared_as"] == ("own adapter" if same else "target adapter")
        assert all(row[score] not in ("", "nan") for score in ("logme", "leep", "cka"))


def picks_of(out):
    """{target: the backbone step 3-1 selected for it}."""
    return {int(t): int(c) for t, c in read_csv(out / "pickaback_demo_result.csv")[1:]}


def column(out, name):
    """{(target, candidate): that pair's value of step 3-1's table column `name`}."""
    return {key: float(row[name]) for key, row in read_table(out).items()}


def assert_picks_rank_first(out, values, best):
    """Every target's pick holds `best` (min or max) of its candidates' `values`."""
    for target, chosen in picks_of(out).items():
        assert values[(target, chosen)] == best(v for (t, _), v in values.items() if t == target)


def test_selection_is_the_smallest_distance_and_rerun_reproduces_it(pipeline):
    out, env = pipeline["out"], pipeline["env"]
    table = read_csv(out / "pickaback_demo_table.csv")
    assert_picks_rank_first(out, column(out, "ddv_euc"), min)
    assert "already computed" in run_step("find_backbone", env)                 # resumes
    run_step("find_backbone", dict(env, FORCE="1"))                               # recomputes
    assert read_csv(out / "pickaback_demo_table.csv") == table          # same seed, same numbers
    assert len(read_csv(out / "pickaback_demo_result.csv")) == len(TASKS) + 1   # one row per target


def test_step_3_1_compares_the_checkpoint_each_candidate_hands_over(pipeline):
    """By default a candidate is the model the target would receive: its step-2-2 chosen checkpoint."""
    sidecar = json.loads((pipeline["out"] / "pickaback_demo_table.json").read_text())
    for target in TASKS:
        for candidate, name in TASKS.items():
            if candidate != target:
                fingerprint = hashlib.sha256(pipeline["chosen"][name].read_bytes()).hexdigest()[:16]
                assert sidecar[f"{target},{candidate}"]["inputs"][f"candidate {candidate}"] == fingerprint


def test_dissimilar_rule_takes_the_largest_distance(pipeline):
    out = pipeline["out"]
    run_step("find_backbone", dict(pipeline["env"], SELECT="dissimilar"))
    assert_picks_rank_first(out, column(out, "ddv_euc"), max)
    run_step("find_backbone", pipeline["env"])    # back to the default rule, re-ranked from the table
    assert_picks_rank_first(out, column(out, "ddv_euc"), min)


def test_score_leep_ranks_by_the_tables_leep_without_recomputing(pipeline):
    out = pipeline["out"]
    table = read_table(out)
    stdout = run_step("find_backbone", dict(pipeline["env"], SCORE="leep"))
    assert "already computed" in stdout and read_table(out) == table
    assert_picks_rank_first(out, column(out, "leep"), max)
    assert "Selected backbone for target 7 = (leep)" in stdout
    run_step("find_backbone", pipeline["env"])    # back to ModelDiff


# ---------------------------------------------------------------- the transfer control (run_pickaback/transfer_matrix.sh)

def transfer_rows(out):
    return {(int(r["target_id"]), r["backbone"]): r for r in csv.DictReader(open(out / "pickaback_demo_transfer.csv"))}


CONTROLLED = (1, 7)     # the control's targets: an image and a text task, each with candidates of both modalities


@pytest.fixture(scope="module")
def control(pipeline):
    env = dict(pipeline["env"], JOBS="2", CONTROL_TARGETS=" ".join(map(str, CONTROLLED)))
    stdout = run_step("transfer_matrix", env)
    return {"stdout": stdout, "rows": transfer_rows(pipeline["out"])}


def outcome(out, backbone, target):
    folder = out / "checkpoints_perceiver_io" / "CPG_fromsingle_scratch_woexp_target" / "perceiver_io" / "demo"
    return json.loads((folder / backbone / target / "scratch" / "outcome.json").read_text())


def test_each_untrained_twin_trains_at_the_width_its_run_on_the_backbone_ended_at(pipeline):
    """Knowledge transfer sets two runs of one capacity against each other: the twin does not grow on its own."""
    out = pipeline["out"]
    picks = picks_of(out)
    folder = out / "checkpoints_perceiver_io" / "CPG_fromsingle_scratch_woexp_target" / "perceiver_io" / "demo"
    for target, backbone in picks.items():
        width = outcome(out, TASKS[backbone], TASKS[target])["width"]
        twin = load_checkpoint(next((folder / "untrained" / TASKS[target] / "scratch").glob("checkpoint-*.pth.tar")))
        settings = twin["provenance"]["settings"]
        assert settings["network_width_multiplier"] == settings["max_allowed_network_width_multiplier"] == width
        assert outcome(out, "untrained", TASKS[target])["width"] == width


def test_control_trains_its_targets_on_every_peer_plus_matched_scratch_and_untrained(pipeline, control):
    out = pipeline["out"]
    picks = picks_of(out)
    # every target's step 3-2 runs (on its backbone and on the untrained twin), collected beside the control's
    expected = {(t, run) for t in TASKS for run in (str(picks[t]), f"untrained@{picks[t]}")}
    for target in CONTROLLED:
        width = outcome(out, TASKS[picks[target]], TASKS[target])["width"]
        expected |= {(target, str(c)) for c in TASKS if c != target} | {(target, f"scratch@{width:g}")}
    assert set(control["rows"]) == expected
    for (target, backbone), row in control["rows"].items():
        assert row["seed"] == "2" and 0.0 <= float(row["test_accuracy"]) <= 1.0


def test_control_reuses_step_3_2s_run_for_the_selected_pair(pipeline, control):
    out = pipeline["out"]
    picks = picks_of(out)
    for target in CONTROLLED:
        selected = picks[target]
        row = control["rows"][(target, str(selected))]
        assert float(row["val_accuracy"]) == outcome(out, TASKS[selected], TASKS[target])["val_accuracy"]
    log = (out / "checkpoints_perceiver_io" / "CPG_fromsingle_scratch_woexp_target" / "perceiver_io" / "demo"
           / "control_7.log").read_text()
    assert log.index("is already done") < log.index(": val accuracy")   # the selected run first, not retrained


def test_control_leaves_every_backbone_byte_identical(pipeline, control):
    assert {name: sha256(p) for name, p in pipeline["chosen"].items()} == pipeline["hashes_before"]


def test_control_seeds_train_one_targets_runs_again_with_that_seed_and_nothing_else(pipeline, control, tmp_path):
    """Seed 2's runs of target 7 are there already: the rerun trains none of them and adds no row of seed 2."""
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    trained = epochs_trained(out)
    env = dict(pipeline["env"], MMPAB_OUTPUT_ROOT=str(out), CONTROL_SEEDS="2 5", CONTROL_TARGETS="7")
    run_step("transfer_matrix", env)
    rows = list(csv.DictReader(open(out / "pickaback_demo_transfer.csv")))
    again = {r["backbone"] for r in rows if r["seed"] == "5"}
    assert {r["target_id"] for r in rows if r["seed"] == "5"} == {"7"}
    assert again == {b for t, b in control["rows"] if t == 7}       # every run of target 7, nothing else
    assert {(int(r["target_id"]), r["backbone"]): r for r in rows if r["seed"] == "2"} == control["rows"]
    seed_5_epochs = sum(log.read_text().count("Train Ep.") for log in out.rglob("training_seed5/train.log"))
    assert seed_5_epochs > 0 and epochs_trained(out) == trained + seed_5_epochs
    repeat = (out / "checkpoints_perceiver_io" / "CPG_fromsingle_scratch_woexp_target" / "perceiver_io" / "demo"
              / "shapes_notes" / "shapes_captions" / "training_seed5" / "scratch")
    settings = load_checkpoint(next(repeat.glob("checkpoint-*.pth.tar")))["provenance"]["settings"]
    # seed 5 trains; the validation split stays seed 2's, beside which step 4's start checkpoint was trained
    assert (settings["training_seed"], settings["seed"]) == (5, 2)
    judged = quality(env, out)
    spread = judged["seed_spread"]
    assert (spread["runs"], spread["seeds"]) == (len(again), 2) and spread["sd"] >= 0.0
    assert judged["noise_regret"] is not None and judged["noise_regret"] >= 0.0


def test_control_under_another_max_width_refuses_and_leaves_step_3_2s_runs(pipeline, tmp_path):
    """Step 3-2 grew up to MAX_WIDTH 2.0; a control at 1.0 would train the selected pairs' runs again in place."""
    import subprocess
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    trained, picks = epochs_trained(out), picks_of(out)
    env = dict(pipeline["env"], MMPAB_OUTPUT_ROOT=str(out), MAX_WIDTH="1.0", CONTROL_TARGETS="7")
    result = subprocess.run(["bash", "run_pickaback/transfer_matrix.sh", "demo"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    refusal = f"error: Step 3-2 trained target 7 (shapes_captions) on backbone {picks[7]} with MAX_WIDTH=2, and the"
    assert result.returncode == 1 and result.stderr.startswith(refusal)
    assert len(result.stderr.splitlines()) == 1 and epochs_trained(out) == trained


def quality(env, out, *extra):
    result = python("-m", "tools.transfer_control", "quality", "demo", *extra,
                    env=dict(env, MMPAB_OUTPUT_ROOT=str(out)))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_quality_regret_is_the_hand_computation_and_zero_for_the_oracle(pipeline, control, tmp_path):
    out, rows = pipeline["out"], control["rows"]
    picks = picks_of(out)
    acc = {key: float(r["test_accuracy"]) for key, r in rows.items()}
    best = {t: max(acc[(t, str(c))] for c in TASKS if c != t) for t in CONTROLLED}
    regrets = [best[t] - acc[(t, str(picks[t]))] for t in CONTROLLED]
    figures = quality(pipeline["env"], out)
    assert figures["mean_regret"] == pytest.approx(sum(regrets) / len(regrets))
    assert [f["regret"] for f in figures["per_target"]] == pytest.approx(regrets)
    related = {1: 2, 2: 1, 7: 8, 8: 7}     # the demo's designed pairs among the reduced config's tasks
    assert figures["related_picks"] == sum(picks[t] == related[t] for t in CONTROLLED)
    # the same files with the oracle as the selector: no regret, every pick ranked first
    for name in ("pickaback_demo_table.csv", "pickaback_demo_transfer.csv"):
        shutil.copy(out / name, tmp_path / name)
    shutil.copytree(out / "logs_perceiver_io", tmp_path / "logs_perceiver_io")
    oracle = {t: max((c for c in TASKS if c != t), key=lambda c: acc[(t, str(c))]) for t in CONTROLLED}
    (tmp_path / "pickaback_demo_result.csv").write_text(
        "target_id,task_id\n" + "".join(f"{t},{c}\n" for t, c in oracle.items()))
    figures = quality(pipeline["env"], tmp_path)
    assert figures["mean_regret"] == 0.0 and figures["mean_rank"] == 1.0
    assert figures["oracle_picks"] == len(CONTROLLED)


def test_cl_table_gives_pickaback_as_two_task_sequences_and_the_controls_picks(pipeline, control, tmp_path):
    """Pick-a-back's row of the CL table: per target the sequence (backbone, target), from results_demo.csv."""
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    result = python("-m", "tools.continual", "table", "demo", env=dict(pipeline["env"], MMPAB_OUTPUT_ROOT=str(out)))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = {r["method"]: r for r in csv.DictReader(open(out / "cl_demo.csv"))}
    assert list(rows) == ["scratch", "pickaback", "pickaback_oracle", "pickaback_random"]
    results = list(csv.DictReader(open(out / "results_demo.csv")))
    acc = sum((float(r["backbone_after_test_acc"]) + float(r["on_backbone_test_acc"])) / 2 for r in results)
    learned = sum(float(r["forward_transfer_test"]) for r in results)
    assert float(rows["pickaback"]["acc"]) == pytest.approx(acc / len(results), abs=1e-4)
    assert float(rows["pickaback"]["learned_vs_scratch"]) == pytest.approx(learned / len(results), abs=1e-4)
    assert all(float(rows[m]["bwt"]) == 0.0 for m in ("pickaback", "pickaback_oracle", "pickaback_random"))
    tests = {key: float(r["test_accuracy"]) for key, r in control["rows"].items()}
    scratch = {int(r["target_id"]): float(r["scratch_test_acc"]) for r in results}
    oracle = [max(tests[(t, str(c))] for c in TASKS if c != t) - scratch[t] for t in CONTROLLED]
    assert float(rows["pickaback_oracle"]["learned_vs_scratch"]) == pytest.approx(sum(oracle) / len(CONTROLLED),
                                                                                  abs=1e-4)
    assert int(rows["pickaback"]["models"]) == len(TASKS) == int(rows["scratch"]["models"])


def test_quality_judges_the_selection_another_score_of_the_table_makes(pipeline, control):
    """--score logme: the candidate of largest LogME per target, judged by the same control."""
    out, rows = pipeline["out"], control["rows"]
    table = read_table(out)
    acc = {key: float(r["test_accuracy"]) for key, r in rows.items()}
    picks = {t: max((c for c in TASKS if c != t), key=lambda c: float(table[(t, c)]["logme"])) for t in CONTROLLED}
    best = {t: max(acc[(t, str(c))] for c in TASKS if c != t) for t in CONTROLLED}
    figures = quality(pipeline["env"], out, "--score", "logme")
    assert {f["target_id"]: f["selected"] for f in figures["per_target"]} == picks
    assert figures["mean_regret"] == pytest.approx(sum(best[t] - acc[(t, str(picks[t]))] for t in CONTROLLED)
                                                   / len(CONTROLLED))
    assert figures["score"] == "logme"


def test_variants_bench_runs_each_variant_and_judges_every_score(pipeline, control):
    table_before = read_table(pipeline["out"])
    result = python("-m", "tools.bench.variants", "demo", "--base_args", "--candidates same-modality", "--variants",
                    "default", "probe_seed_3", env=pipeline["env"], timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures["variants"]) == {"default", "probe_seed_3"}
    for variant in figures["variants"].values():
        assert set(variant["scores"]) == {"modeldiff", "modeldiff_cos", "logme", "leep", "cka", "modeldiff_untrained"}
        assert all(s["targets"] == len(CONTROLLED) for s in variant["scores"].values())
    for variant in figures["variants"].values():      # the base args reached step 3-1 in every variant
        assert all((int(t) <= 6) == (c <= 6) for score in variant["scores"].values() for t, c in score["picks"].items())
    assert 0.0 <= figures["probe_seed_agreement"]["modeldiff"]["pairwise"] <= 1.0
    regrets = [figures["variants"][v]["scores"]["modeldiff"]["mean_regret"] for v in ("default", "probe_seed_3")]
    assert figures["probe_seed_agreement"]["modeldiff"]["mean_regret"] == pytest.approx(sum(regrets) / 2)
    assert read_table(pipeline["out"]) == table_before     # variants write their tables elsewhere


def test_variants_bench_puts_base_args_before_every_variant(pipeline, control):
    """An odd probe count is refused by step 3-1 itself, so its error shows the base args reached it."""
    result = python("-m", "tools.bench.variants", "demo", "--base_args", "--n_inputs 3", "--variants", "probe_seed_1",
                    env=pipeline["env"], timeout=900)
    assert result.returncode == 1
    assert "step 3-1 with --n_inputs 3 --probe_seed 1 failed" in result.stderr
    assert "even" in result.stderr and "Traceback" not in result.stderr


def test_variants_bench_without_a_probe_seed_variant_reports_no_agreement(pipeline, control):
    result = python("-m", "tools.bench.variants", "demo", "--base_args", "--max_iterations 0", "--variants", "default",
                    env=pipeline["env"], timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["probe_seed_agreement"] is None and set(figures["variants"]) == {"default"}
