"""Step 3-1 saving (pickaback_perceiverIO.save_target), in process on generated files: the fake checkpoints are
only fingerprinted, and a recomputation's distances come from a stub."""
import json
import os

import pytest

import pickaback_perceiverIO as step
from conftest import python
from utils import paths
from utils.dataset_config import DATA_ROOT_ENV, get_config
from utils.errors import UserError
from utils_pickaback import ranking

POOL = (2, 3, 4)          # target 1's candidates in the finished table


@pytest.fixture
def root(tmp_path, monkeypatch, small_demo_root):
    """An output root with a fake step 1 checkpoint of tasks 1-4 and a finished table of target 1 against POOL, its
    pick saved; the data are the session's generated demo data, which step 3-1 fingerprints."""
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
    monkeypatch.setenv(DATA_ROOT_ENV, str(small_demo_root))
    cfg = get_config("demo")
    for task_id in (1, *POOL):
        folder = paths.baseline_dir("perceiver_io", "demo", cfg.task(task_id).name)
        folder.mkdir(parents=True)
        (folder / "checkpoint-2.pth.tar").write_bytes(f"model of task {task_id}".encode())
    args = arguments(*map(str, POOL))
    provenances = {c: step.pair_provenance(cfg, cfg.task(1), cfg.task(c), args, {}) for c in POOL}
    step.save_target(cfg, paths.DEFAULT_SEED, 1, {c: record(c) for c in POOL}, provenances,
                     {"score": "modeldiff", "select": "similar", "candidates": list(POOL)})
    step.save_selections(cfg, paths.DEFAULT_SEED)
    return tmp_path


def arguments(*candidates, extra=()):
    return step.get_args_parser().parse_args(["--target_id", "1", "--candidate_ids", *candidates, "--compare",
                                              "baseline", "--device", "cpu", *extra])


def record(candidate, shift=0.0):
    """compare()'s record of (1, candidate): ddv_euc grows with the candidate's id, logme falls."""
    return {"ddv_cos": 0.5, "ddv_euc": candidate / 10 + shift, "compared_as": "own adapter", "logme": -candidate,
            "leep": 0.0, "cka": 0.0, "ddv_euc_untrained": 0.25, "ddv_euc_over_untrained": candidate / 10 + shift - 0.25}


def saved(root):
    names = ("pickaback_demo_table.csv", "pickaback_demo_table.json", "pickaback_demo_result.csv")
    return {name: (root / name).read_bytes() for name in names}


def table_pairs(root):
    return [tuple(line.split(",")[:2]) for line in (root / "pickaback_demo_table.csv").read_text().splitlines()[1:]]


class StubModel:
    """Stands in for a task's model where the comparison itself is stubbed."""
    def to(self, device):
        return self

    def task_view(self, name):
        return name


def test_a_narrower_rerun_reusing_the_distances_leaves_the_table_as_it_was(root, capsys):
    before, files = saved(root), [root / "pickaback_demo_table.csv", root / "pickaback_demo_table.json"]
    inodes = [f.stat().st_ino for f in files]            # an atomic write replaces the file: a new inode
    assert step.main(arguments("3")) == 0
    assert "Distances of target 1 already computed" in capsys.readouterr().out
    after = saved(root)
    assert after["pickaback_demo_table.csv"] == before["pickaback_demo_table.csv"]      # byte for byte
    assert after["pickaback_demo_table.json"] == before["pickaback_demo_table.json"]
    assert [f.stat().st_ino for f in files] == inodes                                   # not even rewritten
    assert after["pickaback_demo_result.csv"].decode().splitlines() == ["target_id,task_id", "1,3"]   # among the pool


def test_a_narrower_rerun_recomputing_keeps_the_rows_outside_its_pool(root, monkeypatch, capsys):
    """The pool's pair is recomputed (another epsilon); the pairs outside it keep their rows and provenance."""
    before = json.loads((root / "pickaback_demo_table.json").read_text())
    monkeypatch.setattr(step, "load_task_model", lambda *a: StubModel())
    monkeypatch.setattr(step, "load_candidate_model", lambda *a: StubModel())
    monkeypatch.setattr(step, "compare", lambda cfg, target, candidate, *a: record(candidate.task_id, shift=1.0))
    assert step.main(arguments("2", extra=("--epsilon", "0.3"))) == 0
    assert "Distances of target 1 recomputed: epsilon changed (0.1 -> 0.3)" in capsys.readouterr().out
    assert table_pairs(root) == [("1", "2"), ("1", "3"), ("1", "4")]
    after = json.loads((root / "pickaback_demo_table.json").read_text())
    assert after["1,2"]["settings"]["epsilon"] == 0.3
    assert after["1,3"] == before["1,3"] and after["1,4"] == before["1,4"]
    euc = {line.split(",")[1]: line.split(",")[3]
           for line in (root / "pickaback_demo_table.csv").read_text().splitlines()[1:]}
    assert euc == {"2": "1.20000000", "3": "0.30000000", "4": "0.40000000"}


def test_the_score_and_rule_each_target_was_ranked_by_are_recorded(root):
    """Beside the result CSV, per target: what ranked its row, so the figures judge it by that score."""
    step.main(arguments("2", "3", "4", extra=("--score", "logme")))
    assert (root / "pickaback_demo_result.csv").read_text().splitlines() == ["target_id,task_id", "1,2"]
    ranking = json.loads((root / "pickaback_demo_result.json").read_text())
    assert ranking == {"1": {"score": "logme", "select": "similar", "candidates": [2, 3, 4], "arch": "perceiver_io"}}
    step.main(arguments("3", "4", extra=("--select", "dissimilar")))
    ranking = json.loads((root / "pickaback_demo_result.json").read_text())
    assert ranking == {"1": {"score": "modeldiff", "select": "dissimilar", "candidates": [3, 4],
                             "arch": "perceiver_io"}}
    assert (root / "pickaback_demo_result.csv").read_text().splitlines()[1] == "1,4"


def test_steps_4_and_3_2_refuse_picks_that_step_3_1_made_with_another_arch(root):
    """The result CSV is one per config: after step 3-1 with ARCH=lenet5, the Perceiver's steps must not train on it."""
    result_csv = root / "pickaback_demo_result.csv"
    assert ranking.picks_for(result_csv, "perceiver_io", {1}) == {1: 2}
    sidecar = ranking.rankings_json(result_csv)
    sidecar.write_text(json.dumps({"1": {**json.loads(sidecar.read_text())["1"], "arch": "lenet5"}}))
    with pytest.raises(UserError, match=r"holds lenet5's picks for targets 1, not perceiver_io's: run step 3-1 .* "
                                        r"with ARCH=perceiver_io first"):
        ranking.picks_for(result_csv, "perceiver_io", {1})
    assert ranking.picks_for(result_csv, "lenet5", {1}) == {1: 2}
    assert ranking.picks_for(result_csv, "perceiver_io", {3}) == {}     # a target it does not train is not judged
    transfer = python("transfer_kv_perceiver_io.py", "--dataset_config", "demo", env=dict(os.environ))
    assert transfer.returncode == 1 and "holds lenet5's picks for targets 1" in transfer.stderr
    info = python("-m", "tools.task_info", "demo", "--selections", env=dict(os.environ))
    assert info.returncode == 1 and "holds lenet5's picks for targets 1" in info.stderr
    # the results table leaves such a target out, saying so, rather than refusing the others' rows with it
    table = python("-m", "tools.results_table", "demo", env=dict(os.environ))
    assert ("Left out: target 1, whose pick in pickaback_demo_result.csv step 3-1 made with another arch's models "
            "since" in table.stderr and "holds no selection perceiver_io reads" in table.stderr), table.stderr


# Candidate 4 is the closest to each of the image targets 1-3; each target also has a candidate close to it alone
HUB_DISTANCES = {(1, 2): 0.12, (1, 3): 0.5, (1, 4): 0.1, (2, 1): 0.5, (2, 3): 0.12, (2, 4): 0.1,
                 (3, 1): 0.12, (3, 2): 0.5, (3, 4): 0.1}


def select_with(monkeypatch, distances, *extra):
    """Step 3-1 of targets 1-3 among tasks 1-4, its comparisons stubbed to give `distances` as ddv_euc."""
    monkeypatch.setattr(step, "load_task_model", lambda *a: StubModel())
    monkeypatch.setattr(step, "load_candidate_model", lambda *a: StubModel())
    monkeypatch.setattr(step, "compare", lambda cfg, target, candidate, *a: {
        **record(candidate.task_id), "ddv_euc": distances[(target.task_id, candidate.task_id)]})
    args = step.get_args_parser().parse_args(["--target_id", "1", "2", "3", "--candidate_ids", "1", "2", "3", "4",
                                              "--compare", "baseline", "--device", "cpu", "--force", *extra])
    assert step.main(args) == 0


def picks_and_records(root):
    picks = dict(tuple(map(int, line.split(","))) for line in
                 (root / "pickaback_demo_result.csv").read_text().splitlines()[1:])
    return picks, json.loads((root / "pickaback_demo_result.json").read_text())


def test_a_hub_is_ranked_again_without_its_closeness_to_every_target(root, monkeypatch, capsys):
    select_with(monkeypatch, HUB_DISTANCES)
    assert "Backbone 4 (patterns_noisy) was picked for 3 of 3 image targets (1, 2, 3)" in capsys.readouterr().out
    picks, records = picks_and_records(root)
    assert picks == {1: 2, 2: 3, 3: 1}
    assert all(records[t]["hubs"] == [1, 2, 3] for t in ("1", "2", "3"))
    # the report and the control's quality read the values each target was ranked by, corrected as step 3-1 did
    ranked = ranking.recorded_scores(root / "pickaback_demo_table.csv", [1, 2, 3],
                                     ranking.read_rankings(root / "pickaback_demo_result.csv"))
    assert {t: ranking.rank_candidates(values, rule)[0] for t, (values, rule) in ranked.items()} == picks

    select_with(monkeypatch, HUB_DISTANCES, "--hubs", "keep")
    picks, records = picks_and_records(root)
    assert picks == {1: 4, 2: 4, 3: 4}
    assert not any("hubs" in record for record in records.values())


def test_picks_that_differ_are_not_corrected(root, monkeypatch, capsys):
    """Without a hub each target keeps its nearest candidate, even where the correction would rank another first."""
    distances = {**HUB_DISTANCES, (2, 3): 0.09, (3, 1): 0.09}
    select_with(monkeypatch, distances)
    assert "was picked for" not in capsys.readouterr().out
    picks, records = picks_and_records(root)
    assert picks == {1: 4, 2: 3, 3: 1}
    assert not any("hubs" in record for record in records.values())


def test_a_hub_corrected_value_is_the_standardised_value_less_the_candidates_nearest_targets():
    """Each target's values are standardised (target 3's scale is 10 times target 1's and counts the same), then
    each candidate's mean over its k nearest targets is subtracted."""
    values = {(1, 2): 1.0, (1, 3): 3.0, (2, 2): 3.0, (2, 3): 1.0, (3, 2): 10.0, (3, 3): 30.0}
    z = 1 / 2 ** 0.5       # a target's two values standardised: -z and +z
    assert ranking.hub_corrected(values, k=1) == pytest.approx(
        {(1, 2): 0.0, (1, 3): 2 * z, (2, 2): 2 * z, (2, 3): 0.0, (3, 2): 0.0, (3, 3): 2 * z})
    assert ranking.hub_corrected(values, k=3) == pytest.approx(
        {(1, 2): -2 * z / 3, (1, 3): 2 * z / 3, (2, 2): 4 * z / 3, (2, 3): -4 * z / 3, (3, 2): -2 * z / 3,
         (3, 3): 2 * z / 3})
