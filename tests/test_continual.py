"""PackNet and CPG learning a 3-task sequence in one model (run_pickaback/learn_in_sequence.sh), its accuracy
matrix and the CL table (tools/continual.py)."""
import csv
import json
import shutil
import subprocess

import pytest
import torch

from conftest import BASELINE_TASK_IDS, python, sha256, steps_python
from models.cpg import CPGModel
from tools.continual import (best_runs, cell, cl_figures, format_table, pair_row, ran_at_every_seed,
                             same_tasks_at_every_seed)
from utils import paths
from utils.checkpoint import load_model
from utils.dataset_config import REPO_ROOT, get_config
from utils.errors import UserError
from utils.pruner import GradualPruner

SEQUENCE = BASELINE_TASK_IDS          # two image tasks and a text task, step 1 done by the baseline_outputs fixture
PACKNET_PRUNE = 0.5


def run_sequence(env, method):
    result = subprocess.run(["bash", "run_pickaback/learn_in_sequence.sh", "demo"], cwd=REPO_ROOT,
                            env=dict(env, METHOD=method), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def sequences(baseline_outputs, small_demo_root, tmp_path_factory):
    """Both methods' sequences of tasks 1, 2, 7 on a copy of step 1's outputs: {"out", "env", "folder": {method}}."""
    out = tmp_path_factory.mktemp("sequences") / "out"
    shutil.copytree(baseline_outputs, out)
    env = dict(__import__("os").environ, MMPAB_OUTPUT_ROOT=str(out), MMPAB_DATA_ROOT=str(small_demo_root),
               TASKS=" ".join(SEQUENCE), EPOCHS="1", PRUNE_EPOCHS="1", PRUNE_STAGES="0.5",
               PACKNET_PRUNE=str(PACKNET_PRUNE), DEVICE="cpu", JOBS="1", OPTIMIZER="sgd", LR="1e-2",
               PYTHON=steps_python())
    root = out / "checkpoints_perceiver_io" / "sequence" / "perceiver_io" / "demo"
    logs = {method: run_sequence(env, method) for method in ("packnet", "cpg")}
    return {"out": out, "env": env, "logs": logs,
            "folder": {method: root / f"{method}_{'-'.join(SEQUENCE)}" for method in ("packnet", "cpg")}}


def matrix(folder):
    return json.loads((folder / "accuracy_matrix.json").read_text())


def checkpoint_after(sequences, method, task):
    """The sequence's model after `task` (the matrix names it relative to the output root)."""
    return sequences["out"] / matrix(sequences["folder"][method])["rows"][task]["checkpoint"]


def test_one_shot_pruning_keeps_exactly_the_asked_share(demo_cfg):
    model = CPGModel.create("perceiver_io", "demo")
    model.add_task(demo_cfg.task(1), demo_cfg)
    GradualPruner(model, initial=0.3, target=0.3, begin=0, end=0, frequency=1)   # no ramp: PackNet's one shot
    for name, mask in model.masks.items():
        n = mask.owner.numel()
        assert int((mask.owner == 1).sum()) == n - round(0.3 * n), name


def test_packnet_task_keeps_its_share_and_the_next_gets_the_rest(sequences):
    names = matrix(sequences["folder"]["packnet"])["tasks"]
    after_first, _ = load_model(checkpoint_after(sequences, "packnet", names[0]))
    after_second, _ = load_model(checkpoint_after(sequences, "packnet", names[1]))
    for name, mask in after_first.masks.items():
        n = mask.owner.numel()
        assert int((mask.owner == 1).sum()) == n - round(PACKNET_PRUNE * n), name
        assert int((mask.owner == 0).sum()) == round(PACKNET_PRUNE * n), name
    for name, mask in after_second.masks.items():
        freed = int((after_first.masks[name].owner == 0).sum())
        assert int((mask.owner == 2).sum()) == freed - round(PACKNET_PRUNE * freed), name
        assert torch.equal(mask.owner == 1, after_first.masks[name].owner == 1), name
        # every earlier weight is used whole: the piggymask selects all of task 1's weights for task 2
        assert bool((mask.piggymasks["2"][mask.owner == 1] > 5e-3).all()), name


@pytest.mark.parametrize("method", ["packnet", "cpg"])
def test_earlier_tasks_bit_identical_after_later_ones(sequences, method):
    names = matrix(sequences["folder"][method])["tasks"]
    first, _ = load_model(checkpoint_after(sequences, method, names[0]))
    last, _ = load_model(checkpoint_after(sequences, method, names[-1]))
    before, after = first.task_view(names[0]).state_dict(), last.task_view(names[0]).state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("method", ["packnet", "cpg"])
def test_accuracy_matrix_has_every_learned_task_and_bwt_is_measured_zero(sequences, method):
    record = matrix(sequences["folder"][method])
    names = record["tasks"]
    cfg_names = [get_config("demo").task(i).name for i in SEQUENCE]
    assert names == cfg_names
    for i, name in enumerate(names):
        row = record["rows"][name]["test_acc"]
        assert set(row) == set(names[:i + 2])      # every task learned so far, and the next one before it is
    R = [[record["rows"][a]["test_acc"].get(b) for b in names] for a in names]
    assert all(R[-1][j] == R[j][j] for j in range(len(names)))
    assert cl_figures(R, [record["random_init"][n] for n in names])[1] == 0.0


def test_cl_table_is_the_hand_computation_from_r(sequences):
    env = sequences["env"]
    result = python("-m", "tools.continual", "table", "demo", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(sequences["out"] / "cl_demo.csv", newline="") as f:
        rows = {row["method"]: row for row in csv.DictReader(f)}
    for method in ("packnet", "cpg"):
        record = matrix(sequences["folder"][method])
        names = record["tasks"]
        R = [[record["rows"][a]["test_acc"].get(b) for b in names] for a in names]
        b = [record["random_init"][n] for n in names]
        acc = (R[2][0] + R[2][1] + R[2][2]) / 3
        bwt = ((R[2][0] - R[0][0]) + (R[2][1] - R[1][1])) / 2
        fwt = ((R[0][1] - b[1]) + (R[1][2] - b[2])) / 2
        row = rows[f"{method}_sequence"]
        assert (float(row["acc"]), float(row["bwt"]), float(row["fwt"])) == pytest.approx((acc, bwt, fwt), abs=1e-4)
        assert float(row["bwt"]) == 0.0
        assert row["models"] == "1" and float(row["train_seconds"]) > 0
    assert rows["scratch"]["models"] == str(len(SEQUENCE))


def test_a_run_whose_start_is_gone_names_the_step_that_trains_it_again(tmp_path, monkeypatch, demo_cfg):
    """A control run made from a transfer file step 2-2 has since removed (its backbone trained again): one
    sentence naming the steps, not "Checkpoint ... does not exist"."""
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
    run = tmp_path / "a_run"
    (run / "scratch").mkdir(parents=True)
    (run / "scratch" / "outcome.json").write_text(json.dumps({
        "width": 1.0, "val_accuracy": 0.5, "test_accuracy": 0.5,
        "start": {"path": "backbone/checkpoint-2_kv_transfer_1.pth.tar", "fingerprint": "0" * 16}}))
    with pytest.raises(UserError, match=r"^The run .*a_run started from .*checkpoint-2_kv_transfer_1.pth.tar, which is "
                                        r"gone .*run_pickaback/transfer_matrix.sh for the control's\)\.$"):
        pair_row(demo_cfg, "perceiver_io", paths.DEFAULT_SEED, None, demo_cfg.task(1), demo_cfg.task(2), run)


def test_a_rerun_redoes_nothing(sequences):
    folder = sequences["folder"]["packnet"]
    before = sha256(folder / "accuracy_matrix.json")
    log = run_sequence(sequences["env"], "packnet")
    assert log.count("unchanged, kept") == len(SEQUENCE)
    assert "val accuracy" not in log          # no stage trained again
    assert sha256(folder / "accuracy_matrix.json") == before


def test_a_bad_method_is_one_sentence(sequences):
    result = subprocess.run(["bash", "run_pickaback/learn_in_sequence.sh", "demo"], cwd=REPO_ROOT,
                            env=dict(sequences["env"], METHOD="ewc"), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == 'METHOD must be one of: cpg, packnet (or empty), not "ewc".'


def test_a_sequence_not_finished_is_left_out_of_the_table_not_the_table_refused(sequences, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(sequences["out"], out)
    folder = out / sequences["folder"]["packnet"].relative_to(sequences["out"])
    record = matrix(folder)
    del record["rows"][record["tasks"][-1]]        # killed before its last task
    (folder / "accuracy_matrix.json").write_text(json.dumps(record))
    result = python("-m", "tools.continual", "table", "demo", env=dict(sequences["env"], MMPAB_OUTPUT_ROOT=str(out)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Left out {folder.name}: it has not learned {record['tasks'][-1]} yet" in result.stdout
    with open(out / "cl_demo.csv", newline="") as f:
        methods = [row["method"] for row in csv.DictReader(f)]
    assert "cpg_sequence" in methods and "packnet_sequence" not in methods


def test_an_earlier_row_written_anew_drops_the_rows_learned_after_it(sequences, tmp_path):
    """A re-run with another PACKNET_PRUNE killed after the first task: the later rows were learned on the model the
    first row replaces, so the sequence is unfinished, not a mix of two (before: the table mixed them, exit 0)."""
    out = tmp_path / "out"
    shutil.copytree(sequences["out"], out)
    folder = out / sequences["folder"]["packnet"].relative_to(sequences["out"])
    first, second = matrix(folder)["tasks"][:2]
    other_model = out / matrix(folder)["rows"][second]["checkpoint"]      # any other checkpoint of the first task
    env = dict(sequences["env"], MMPAB_OUTPUT_ROOT=str(out))
    result = python("-m", "tools.continual", "evaluate", "demo", "--sequence", folder, "--tasks", *SEQUENCE,
                    "--after", SEQUENCE[0], "--model", other_model, "--trained_in", folder, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(matrix(folder)["rows"]) == [first]
    assert f"Left out {folder.name}: it has not learned" in python("-m", "tools.continual", "table", "demo",
                                                                    env=env).stdout


def test_a_transfer_that_rounds_to_zero_reads_as_zero_in_the_cl_table():
    line = {"method": "pickaback", "tasks": 3, "acc": 0.5, "acc_ci95": None, "bwt": 0.0, "fwt": -0.00001,
            "learned_vs_scratch": -0.00002, "learned_vs_scratch_ci95": 0.001, "models": 1, "width": 1.0,
            "parameters": 1000, "train_seconds": 10.0}
    table = format_table([line])
    assert "-0.0000" not in table and "+0.0000 ± 0.0010" in table, table
    assert cell(line["learned_vs_scratch"]) == "0.0000" and cell(-0.00006) == "-0.0001"     # cl_<cfg>.csv


def test_the_oracle_row_takes_each_targets_best_run_of_the_seed_the_table_scores():
    """The control's oracle is the best by its mean over training seeds; this seed's run of it may be under the
    pick's, which made the oracle row score under Pick-a-back's."""
    runs = {7: [{"learned": 0.30, "acc": 0.4}, {"learned": 0.52, "acc": 0.5}, {"learned": 0.41, "acc": 0.6}]}
    assert best_runs(runs) == {7: [{"learned": 0.52, "acc": 0.5}]}


def test_a_method_whose_seeds_cover_other_tasks_is_left_out_of_the_mean_and_said(capsys):
    """Seed 2 ran TASKS="1 2 7", seed 3 TASKS="1 2": their scratch rows were averaged as one figure of 3 tasks."""
    by_seed = {2: {"scratch": {"task_names": frozenset({"a", "b", "c"})}, "pickaback": {"task_names": frozenset("a")}},
               3: {"scratch": {"task_names": frozenset({"a", "b"})}, "pickaback": {"task_names": frozenset("a")}}}
    assert same_tasks_at_every_seed("pickaback", by_seed) and capsys.readouterr().out == ""
    assert not same_tasks_at_every_seed("scratch", by_seed)
    assert "Left out scratch: its runs cover other tasks at different seeds (seed 2: a, b, c; seed 3: a, b)" in \
        capsys.readouterr().out


def test_a_method_run_at_some_seeds_only_is_left_out_and_said(capsys):
    """The transfer control ran at seed 2 only: its oracle and random rows vanished from --seeds 2 3 (before)."""
    by_seed = {2: {"scratch": {}, "pickaback_oracle": {}}, 3: {"scratch": {}}}
    assert ran_at_every_seed("scratch", by_seed) and capsys.readouterr().out == ""
    assert not ran_at_every_seed("pickaback_oracle", by_seed)
    assert capsys.readouterr().out == "Left out pickaback_oracle: it has no runs at seed 3.\n"
