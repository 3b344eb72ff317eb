"""The transfer control's bookkeeping (tools/transfer_control.py): which runs it plans, and the rows it collects."""
import csv
import json

import pytest

from tools.transfer_control import collect, get_args_parser, plan, width
from utils import paths
from utils.errors import UserError
from utils.provenance import fingerprint


@pytest.fixture
def output_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
    return tmp_path


def finished_run(folder, test_accuracy, width=1.0, start=None, status=None, **more):
    (folder / "scratch").mkdir(parents=True)
    outcome = {"width": width, "val_accuracy": 0.5, "test_accuracy": test_accuracy, "start": start, **more}
    if status is not None:      # (an outcome of an older version has no status)
        outcome["status"] = status
    (folder / "scratch" / "outcome.json").write_text(json.dumps(outcome))


def run_dir(backbone, target):
    return paths.target_dir("perceiver_io", "demo", backbone, target)


def transfer_file(output_root, backbone):
    """A stand-in for step 4's transfer file of target 1 on `backbone`, as a run's outcome.json records its start."""
    path = output_root / "backbones" / backbone / "checkpoint-2_kv_transfer_1.pth.tar"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(f"{backbone} as the run started from it".encode())
    return {"path": str(path.relative_to(output_root)), "fingerprint": fingerprint(path)}


def test_collect_writes_one_row_per_training_seed_of_a_run(output_root):
    start = transfer_file(output_root, "shapes_noisy")
    finished_run(run_dir("shapes_noisy", "shapes_clean"), 0.90, start=start)
    finished_run(paths.repeat_dir(run_dir("shapes_noisy", "shapes_clean"), 3), 0.80, start=start)
    finished_run(paths.repeat_dir(run_dir("shapes_noisy", "shapes_clean"), 4), 0.70, start=start)
    paths.repeat_dir(run_dir("shapes_noisy", "shapes_clean"), 5).mkdir()     # started, not finished: no row
    finished_run(run_dir("untrained", "shapes_clean"), 0.60, start=start)
    collect(get_args_parser().parse_args(["collect", "demo"]))
    with open(paths.transfer_csv("demo")) as f:
        rows = [(r["target_id"], r["backbone"], r["test_accuracy"], r["seed"]) for r in csv.DictReader(f)]
    assert rows == [("1", "2", "0.9000", "2"), ("1", "2", "0.8000", "3"), ("1", "2", "0.7000", "4"),
                    ("1", "untrained@2", "0.6000", "2")]


def test_collect_names_the_backbone_of_an_untrained_twin_and_leaves_out_the_twin_of_an_earlier_pick(output_root,
                                                                                                     capsys):
    """The twin starts from the file its backbone's run starts from; target 3's twin is of a backbone with no run
    of target 3 (an earlier pick, its run since removed): whose twin it is cannot be told, so it is left out."""
    finished_run(run_dir("shapes_noisy", "shapes_clean"), 0.90, start=transfer_file(output_root, "shapes_noisy"))
    finished_run(run_dir("patterns_clean", "shapes_clean"), 0.80, start=transfer_file(output_root, "patterns_clean"))
    finished_run(run_dir("untrained", "shapes_clean"), 0.60, start=transfer_file(output_root, "patterns_clean"))
    collect(get_args_parser().parse_args(["collect", "demo"]))
    with open(paths.transfer_csv("demo")) as f:
        assert [r["backbone"] for r in csv.DictReader(f)] == ["2", "3", "untrained@3"]
    finished_run(run_dir("untrained", "patterns_clean"), 0.60, start=transfer_file(output_root, "colours_clean"))
    collect(get_args_parser().parse_args(["collect", "demo"]))
    assert "Left out 1 runs on an untrained twin whose backbone has no run of the target here" in \
        capsys.readouterr().out


def test_collect_leaves_out_a_run_whose_starting_checkpoint_changed_after_it_ran(output_root, capsys):
    """A backbone trained again (new data, other settings) makes new transfer files; runs made from the old ones
    measured another backbone, so they must not stand in the table as if they were its runs."""
    transfers = {}
    for backbone in ("shapes_noisy", "patterns_clean"):
        transfers[backbone] = output_root / "backbones" / backbone / "checkpoint-2_kv_transfer_1.pth.tar"
        transfers[backbone].parent.mkdir(parents=True)
        transfers[backbone].write_bytes(b"the backbone as the run started from it")
        start = {"path": str(transfers[backbone].relative_to(output_root)), "fingerprint": fingerprint(transfers[backbone])}
        finished_run(run_dir(backbone, "shapes_clean"), 0.90, start=start)
    finished_run(run_dir("scratch@1", "shapes_clean"), 0.80)                  # a fresh model: nothing to compare
    transfers["patterns_clean"].write_bytes(b"the backbone trained again")
    collect(get_args_parser().parse_args(["collect", "demo"]))
    with open(paths.transfer_csv("demo")) as f:
        assert [(r["target_id"], r["backbone"]) for r in csv.DictReader(f)] == [("1", "2"), ("1", "scratch@1")]
    assert "Left out 1 runs whose starting checkpoint or their target's step-1 baseline changed" in \
        capsys.readouterr().out


def test_collect_leaves_out_and_names_a_run_whose_grow_loop_stopped(output_root, capsys):
    """Step 3-2 writes outcome.json after every attempt, exit 2 ("grow": retry wider) included; a run whose last
    attempt asked to grow was stopped mid-loop, and its accuracy is not the one the recipe ends at."""
    finished_run(run_dir("shapes_noisy", "shapes_clean"), 0.90, width=1.5, status=0)
    finished_run(run_dir("patterns_clean", "shapes_clean"), 0.40, width=1.5, status=2)
    finished_run(paths.repeat_dir(run_dir("shapes_noisy", "shapes_clean"), 3), 0.30, status=2)
    collect(get_args_parser().parse_args(["collect", "demo"]))
    with open(paths.transfer_csv("demo")) as f:
        assert [(r["target_id"], r["backbone"], r["seed"]) for r in csv.DictReader(f)] == [("1", "2", "2")]
    out = capsys.readouterr().out
    assert "Left out 2 runs whose grow loop stopped before they finished" in out
    assert "patterns_clean/shapes_clean" in out and "shapes_noisy/shapes_clean/training_seed3" in out


def test_width_of_a_run_whose_grow_loop_stopped_is_one_clear_error(output_root, capsys):
    finished_run(run_dir("shapes_noisy", "shapes_clean"), 0.90, width=1.5, status=0)
    width(get_args_parser().parse_args(["width", str(run_dir("shapes_noisy", "shapes_clean"))]))
    assert capsys.readouterr().out == "1.5\n"
    finished_run(run_dir("patterns_clean", "shapes_clean"), 0.40, width=1.5, status=2)
    with pytest.raises(UserError, match="holds no finished run: its last attempt, at width 1.5, asked to grow"):
        width(get_args_parser().parse_args(["width", str(run_dir("patterns_clean", "shapes_clean"))]))


def write_selections(selections):
    path = paths.pickaback_result_csv("demo")
    path.write_text("target_id,task_id\n" + "".join(f"{t},{c}\n" for t, c in selections.items()))


def test_plan_of_some_targets_keeps_every_task_run_as_a_candidate(output_root, capsys):
    write_selections({1: 4, 2: 1, 3: 4, 4: 2})
    plan(get_args_parser().parse_args(["plan", "demo", "--targets", "1", "2", "3", "4", "--only", "1", "4"]))
    assert capsys.readouterr().out.splitlines() == ["1 4 2 3", "4 2 1 3"]


def test_plan_of_a_target_outside_the_tasks_run_is_one_clear_error(output_root):
    write_selections({1: 4, 2: 1, 5: 6})
    with pytest.raises(UserError, match="Target 5 of CONTROL_TARGETS is not one of the tasks run"):
        plan(get_args_parser().parse_args(["plan", "demo", "--targets", "1", "2", "--only", "5"]))


def control_plan(*extra):
    return plan(get_args_parser().parse_args(["plan", "demo", "--targets", "1", "2", "3", *extra]))


def test_plan_refuses_to_train_step_3_2s_run_again_under_another_max_width(output_root, capsys):
    """The selected pair's control run is step 3-2's own folder: another MAX_WIDTH would replace its result."""
    write_selections({1: 2, 2: 1, 3: 1})
    finished_run(run_dir("shapes_noisy", "shapes_clean"), 0.9, width=1.5, max_width=2.0)
    finished_run(run_dir("shapes_clean", "shapes_noisy"), 0.9, width=1.0)     # written before max_width was
    with pytest.raises(UserError, match=r"Step 3-2 trained target 1 \(shapes_clean\) on backbone 2 with MAX_WIDTH=2, "
                                        r"and the control at MAX_WIDTH=1 would train that run again in its place"):
        control_plan("--max_width", "1.0")
    control_plan("--max_width", "2.0")
    control_plan("--max_width", "1.0", "--replace_step_3_2")
    assert capsys.readouterr().out.splitlines() == ["1 2 3", "2 1 3", "3 1 2"] * 2


def test_collect_leaves_out_runs_of_other_settings_than_step_3_2s_run_of_the_selected_backbone(output_root, capsys):
    """EPOCHS=3 after a control at 4 epochs: step 3-2's run of the selected backbone (2) is trained again, the other
    runs kept their starts; one control must not set runs of two recipes against each other. What a run has of its
    own (its width, training seed, fresh weights of the twin) is no other recipe."""
    write_selections({1: 2})
    recipe = {"epochs": 3, "lr": 0.01, "untrained_backbone": False, "network_width_multiplier": 1.0,
              "max_allowed_network_width_multiplier": 2.0, "training_seed": None}
    start = transfer_file(output_root, "shapes_noisy")
    finished_run(run_dir("shapes_noisy", "shapes_clean"), 0.90, start=start, settings=recipe)
    finished_run(run_dir("untrained", "shapes_clean"), 0.60, start=start, settings={
        **recipe, "untrained_backbone": True, "network_width_multiplier": 1.5, "max_allowed_network_width_multiplier": 1.5})
    finished_run(paths.repeat_dir(run_dir("shapes_noisy", "shapes_clean"), 3), 0.80, start=start,
                 settings={**recipe, "training_seed": 3})
    finished_run(paths.repeat_dir(run_dir("shapes_noisy", "shapes_clean"), 4), 0.70, start=start,
                 settings={**recipe, "training_seed": 4, "epochs": 4})
    finished_run(run_dir("patterns_clean", "shapes_clean"), 0.80, start=transfer_file(output_root, "patterns_clean"),
                 settings={**recipe, "epochs": 4})
    finished_run(run_dir("scratch@1", "shapes_clean"), 0.50)       # a version that recorded no settings: kept
    collect(get_args_parser().parse_args(["collect", "demo"]))
    with open(paths.transfer_csv("demo")) as f:
        assert [(r["backbone"], r["seed"]) for r in csv.DictReader(f)] == [
            ("2", "2"), ("2", "3"), ("scratch@1", "2"), ("untrained@2", "2")]
    out = capsys.readouterr().out
    assert "Left out 2 runs whose starting checkpoint or their target's step-1 baseline changed after they ran (a "            "backbone or the target trained again), or trained with other settings than step 3-2's run" in out
    assert "patterns_clean/shapes_clean" in out and "shapes_noisy/shapes_clean/training_seed4" in out


def test_collect_leaves_out_a_run_decided_by_an_earlier_step_1_baseline_of_its_target(output_root, capsys):
    """Step 1 re-run for target 1 since its control ran: the run's adapter and baseline were the old model's."""
    baselines = paths.baseline_acc_file("perceiver_io", "demo")
    baselines.parent.mkdir(parents=True)
    baselines.write_text(json.dumps({"shapes_clean": "0.4100"}))
    start = transfer_file(output_root, "shapes_noisy")
    finished_run(run_dir("shapes_noisy", "shapes_clean"), 0.90, start=start, baseline=0.465)
    finished_run(run_dir("patterns_clean", "shapes_clean"), 0.80, start=transfer_file(output_root, "patterns_clean"),
                 baseline=0.41)
    collect(get_args_parser().parse_args(["collect", "demo"]))
    with open(paths.transfer_csv("demo")) as f:
        assert [r["backbone"] for r in csv.DictReader(f)] == ["3"]
    assert "Left out 1 runs whose starting checkpoint or their target's step-1 baseline changed" in \
        capsys.readouterr().out
