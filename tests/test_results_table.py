"""results_<cfg>.csv (tools/results_table.py) on a fabricated run: tiny real checkpoints, hand-written records.

Backbone 2 (shapes_noisy) predicts class 0 whatever it sees (its head's bias dominates), so its accuracy is
1/5 on both splits (the demo's splits are balanced). Target 1 trained on it honestly (grown to 1.5, the
backbone untouched); target 7's checkpoint carries a backbone whose head was changed, as a broken CPG would
leave it: its accuracy there is measured by the trainer's own evaluate(). Target 3 is selected but step 3-2
has not trained it.
"""
import csv
import json

import pytest
import torch

from models.cpg import CPGModel
from utils import paths
from utils.checkpoint import load_model, save_model
from utils.data import task_loaders
from utils.dataset_config import DATA_ROOT_ENV
from utils.errors import UserError
from utils.provenance import fingerprint
from utils.results import RESULT_FIELDS, read_results
from utils.train import evaluate
from tools import results_table
from tools.results_table import other_recipe_sentence, write_results

ARCH, SEED = "perceiver_io", paths.DEFAULT_SEED
SELECTIONS = {1: 2, 3: 2, 7: 2}
SCRATCH = {"val": {"shapes_clean": "0.7000", "shapes_captions": "0.6000"},
           "test": {"shapes_clean": "0.6800", "shapes_captions": "0.5900"}}
ON_BACKBONE = {1: (0.81234, 0.79119), 7: (0.6501, 0.6633)}     # the checkpoints' val / test accuracy
CONSTANT_ACCURACY = 0.2                                         # class 0 of 5 balanced classes


def write_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def write_records(cfg):
    for split, path in (("val", paths.baseline_acc_file(ARCH, cfg.name)),
                        ("test", paths.baseline_test_acc_file(ARCH, cfg.name))):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(SCRATCH[split]))
    write_csv(paths.pickaback_result_csv(cfg.name), [["target_id", "task_id"], *SELECTIONS.items()])
    write_csv(paths.pickaback_table_csv(cfg.name), [["target_id", "task_id", "ddv_euc"], [1, 2, 0.1], [1, 3, 0.2],
                                                    [7, 2, 0.3], [7, 8, 0.4]])
    # the control ran target 1 only: backbone 3 is better on validation, the selected one on test
    write_csv(paths.transfer_csv(cfg.name), [
        ["target_id", "backbone", "width", "val_accuracy", "test_accuracy", "seed"],
        [1, 2, 1.5, 0.80, 0.78, SEED], [1, 3, 1.0, 0.85, 0.77, SEED]])


def constant_backbone(cfg):
    """The chosen checkpoint of backbone 2: its head predicts class 0 (a large bias over small logits)."""
    torch.manual_seed(0)
    model = CPGModel.create(ARCH, "demo")
    model.add_task(cfg.task(2), cfg)
    with torch.no_grad():
        model.body.heads["shapes_noisy"][1].bias[0] = 10.0
    folder = paths.backbone_dir(ARCH, cfg.name, "shapes_noisy") / "gradual_prune"
    save_model(folder / "checkpoint-2.pth.tar", model, cfg.name, accuracy=0.9, test_accuracy=0.9)
    (folder / paths.CHOSEN_FILE).write_text(json.dumps({"ratio": 0.3, "accuracy": 0.9,
                                                        "checkpoint": "checkpoint-2.pth.tar"}))
    return model


def save_target(cfg, model, target_id):
    """Step 3-2's checkpoint, saved with the backbone task active: the figures must not depend on which task
    a checkpoint left active."""
    val_acc, test_acc = ON_BACKBONE[target_id]
    shared_ratio = round(model.stats()["shared_ratio"], 4)
    model.set_active_task("shapes_noisy")
    folder = paths.target_dir(ARCH, cfg.name, "shapes_noisy", cfg.task(target_id).name) / "scratch"
    save_model(folder / "checkpoint-2.pth.tar", model, cfg.name, accuracy=val_acc, test_accuracy=test_acc)
    return shared_ratio


@pytest.fixture
def fabricated_run(demo_cfg, tmp_path, monkeypatch):
    """(cfg, target 1's shared ratio, the changed backbone's {split: accuracy} in target 7's checkpoint)."""
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
    write_records(demo_cfg)
    backbone = constant_backbone(demo_cfg)

    honest = backbone.grown(1.5)
    honest.add_task(demo_cfg.task(1), demo_cfg)
    shared_ratio = save_target(demo_cfg, honest, 1)

    broken = backbone.grown(1.0)
    broken.add_task(demo_cfg.task(7), demo_cfg)
    _, val, test = task_loaders(demo_cfg, demo_cfg.task(2), seed=SEED)
    # large random head weights, no bias: predictions that depend on the input. Which draw gives accuracies
    # other than the constant model's depends on the architecture, so take the first that does: the break must
    # be visible in accuracy too (a view reads the head when made, so each draw gets a new one)
    for seed in range(3, 23):
        torch.manual_seed(seed)
        with torch.no_grad():
            broken.body.heads["shapes_noisy"][1].bias.zero_()
            torch.nn.init.normal_(broken.body.heads["shapes_noisy"][1].weight, 0.0, 1.0)
        view = broken.task_view("shapes_noisy")
        changed = {split: round(evaluate(view, loader, torch.device("cpu"))[1], 4)
                   for split, loader in (("val", val), ("test", test))}
        if CONSTANT_ACCURACY not in changed.values():
            break
    assert CONSTANT_ACCURACY not in changed.values()
    save_target(demo_cfg, broken, 7)
    return demo_cfg, shared_ratio, changed


def test_every_column_of_the_results_table(fabricated_run):
    cfg, shared_ratio, changed = fabricated_run
    path, rows, missing = write_results(cfg, ARCH)
    assert path == paths.output_root() / "results_demo.csv" and missing == [3]
    with open(path, newline="") as f:
        assert next(csv.reader(f)) == RESULT_FIELDS
    results = read_results(path, ARCH)
    assert read_results(path, "lenet5") == {}

    assert results[1] == {
        "seed": SEED, "arch": ARCH, "target_id": 1, "target_name": "shapes_clean", "target_modality": "image",
        "backbone_id": 2, "backbone_name": "shapes_noisy", "backbone_modality": "image", "picked_related": True,
        "scratch_val_acc": 0.70, "scratch_test_acc": 0.68,
        "on_backbone_val_acc": 0.8123, "on_backbone_test_acc": 0.7912,
        "forward_transfer_val": 0.1123, "forward_transfer_test": 0.1112,
        "on_untrained_val_acc": None, "on_untrained_test_acc": None,       # no untrained twin was trained
        "knowledge_transfer_val": None, "knowledge_transfer_test": None,
        "backbone_before_val_acc": CONSTANT_ACCURACY, "backbone_before_test_acc": CONSTANT_ACCURACY,
        "backbone_after_val_acc": CONSTANT_ACCURACY, "backbone_after_test_acc": CONSTANT_ACCURACY,
        "backward_transfer_val": 0.0, "backward_transfer_test": 0.0, "backbone_outputs_identical": True,
        "final_width": 1.5, "shared_ratio": shared_ratio, "regret_val": 0.05, "regret_test": 0.0}
    assert shared_ratio > 0          # the target's own ratio, not its backbone's (task 1 shares nothing)

    assert results[7] == {
        "seed": SEED, "arch": ARCH, "target_id": 7, "target_name": "shapes_captions", "target_modality": "text",
        "backbone_id": 2, "backbone_name": "shapes_noisy", "backbone_modality": "image",
        "picked_related": False,                          # its designed related task 8 was a candidate
        "scratch_val_acc": 0.60, "scratch_test_acc": 0.59,
        "on_backbone_val_acc": 0.6501, "on_backbone_test_acc": 0.6633,
        "forward_transfer_val": 0.0501, "forward_transfer_test": 0.0733,
        "on_untrained_val_acc": None, "on_untrained_test_acc": None,
        "knowledge_transfer_val": None, "knowledge_transfer_test": None,
        "backbone_before_val_acc": CONSTANT_ACCURACY, "backbone_before_test_acc": CONSTANT_ACCURACY,
        "backbone_after_val_acc": changed["val"], "backbone_after_test_acc": changed["test"],
        "backward_transfer_val": round(changed["val"] - CONSTANT_ACCURACY, 4),
        "backward_transfer_test": round(changed["test"] - CONSTANT_ACCURACY, 4),
        "backbone_outputs_identical": False, "final_width": 1.0, "shared_ratio": results[7]["shared_ratio"],
        "regret_val": None, "regret_test": None}          # the control never ran target 7


def test_regret_is_left_empty_and_said_where_step_3_2_trained_the_selected_pair_again(fabricated_run, capsys,
                                                                                       monkeypatch, small_demo_root):
    """The control's row of target 1 on its pick (0.80 / 0.78 at width 1.5) is not step 3-2's run there now
    (0.8123 / 0.7912): its other runs were set against a run that no longer stands."""
    cfg, _, _ = fabricated_run
    monkeypatch.setenv(DATA_ROOT_ENV, str(small_demo_root))
    outcome = paths.target_dir(ARCH, cfg.name, "shapes_noisy", "shapes_clean") / "scratch" / "outcome.json"
    args = results_table.get_args_parser().parse_args([])
    for (val, test), regret in (((0.8, 0.78), 0.0), ((0.8123, 0.7912), None)):
        outcome.write_text(json.dumps({"width": 1.5, "val_accuracy": val, "test_accuracy": test}))
        assert results_table.main(args) == 0
        assert read_results(paths.results_csv(cfg.name), ARCH)[1]["regret_test"] == regret
    assert ("The transfer control of target 1 holds runs trained again since it was collected, or with other settings"
            in capsys.readouterr().out.split("Wrote")[-1])


def test_a_target_trained_on_an_earlier_model_of_its_backbone_has_no_row(fabricated_run, capsys, monkeypatch,
                                                                          small_demo_root):
    """Backbone 2 trained again since step 3-2 ran target 1 on it (step 4's transfer file it started from changed):
    its row would set the new backbone's 'before' against the old one inside the target's checkpoint, a backward
    transfer no run had, and call CPG's guarantee broken (before: written with exit 0)."""
    cfg, _, _ = fabricated_run
    monkeypatch.setenv(DATA_ROOT_ENV, str(small_demo_root))
    start = paths.output_root() / "checkpoint-2_kv_transfer_1.pth.tar"
    start.write_bytes(b"step 4's file of the backbone target 1 trained on")
    outcome = paths.target_dir(ARCH, cfg.name, "shapes_noisy", "shapes_clean") / "scratch" / "outcome.json"
    outcome.write_text(json.dumps({"width": 1.5, "val_accuracy": 0.8123, "test_accuracy": 0.7912,
                                   "start": {"path": start.name, "fingerprint": fingerprint(start)}}))
    assert [row["target_id"] for row in write_results(cfg, ARCH)[1]] == [1, 7]
    start.write_bytes(b"step 4's file of the backbone trained again")
    _, rows, missing = write_results(cfg, ARCH)
    assert [row["target_id"] for row in rows] == [7] and missing == [1, 3]
    assert results_table.main(results_table.get_args_parser().parse_args([])) == 0
    assert ("Step 3-2 has not trained targets 1 3 on their backbone as it is now (not yet, or before the backbone "
            "was trained again)") in capsys.readouterr().out


def test_forward_transfer_of_another_recipe_than_step_1s_is_said(fabricated_run, capsys, monkeypatch,
                                                                  small_demo_root):
    """EPOCHS=2 bash run_pickaback/w_backbone.sh after a step 1 of 4 epochs: on backbone - scratch then compares
    two recipes (before: no word of it)."""
    cfg, _, _ = fabricated_run
    monkeypatch.setenv(DATA_ROOT_ENV, str(small_demo_root))
    recipe = {"epochs": 4, "lr": 0.01, "batch_size": 32, "profile": "demo"}
    step_1 = paths.baseline_dir(ARCH, cfg.name, "shapes_clean") / "checkpoint-4.pth.tar"
    model = CPGModel.create(ARCH, "demo")
    model.add_task(cfg.task(1), cfg)
    save_model(step_1, model, cfg.name, provenance={"settings": {**recipe, "seed": 2}, "inputs": {}})
    checkpoint = paths.target_dir(ARCH, cfg.name, "shapes_noisy", "shapes_clean") / "scratch" / "checkpoint-2.pth.tar"
    model, payload = load_model(checkpoint)
    for epochs, says in ((4, False), (2, True)):
        save_model(checkpoint, model, cfg.name, accuracy=payload["accuracy"], test_accuracy=payload["test_accuracy"],
                   provenance={"settings": {**recipe, "epochs": epochs, "network_width_multiplier": 1.5},
                               "inputs": {}})
        assert results_table.main(results_table.get_args_parser().parse_args([])) == 0
        out = capsys.readouterr().out
        assert ("Step 3-2 trained target 1 with other settings than step 1 did: epochs (step 1: 4, step 3-2: 2); "
                "their forward transfer compares two recipes" in out) == says, out


def test_rewriting_replaces_the_rows(fabricated_run):
    cfg, _, _ = fabricated_run
    write_results(cfg, ARCH)
    path, rows, _ = write_results(cfg, ARCH)
    with open(path, newline="") as f:
        assert len(list(csv.reader(f))) == 1 + len(rows) == 3


def test_no_selection_is_one_sentence(demo_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
    with pytest.raises(UserError, match="run the pipeline"):
        write_results(demo_cfg, ARCH)


def test_lenet_is_not_held_to_the_picks_of_text_targets(demo_cfg, tmp_path, monkeypatch):
    """LeNet-5 reads images only: picks of text targets (here the only ones) are no selection of its."""
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(tmp_path))
    text_targets = [t.task_id for t in demo_cfg.tasks if t.modality == "text"][:2]
    picks = "".join(f"{t},{t + 1}\n" for t in text_targets)
    paths.pickaback_result_csv("demo").write_text("target_id,task_id\n" + picks)
    with pytest.raises(UserError, match="holds no selection"):
        write_results(demo_cfg, "lenet5")


def test_the_backbone_is_evaluated_on_the_validation_split_its_run_used(fabricated_run):
    """A pipeline run with --val_fraction 0.5: the backbone's validation figures come from that split, not the
    config's."""
    cfg, _, _ = fabricated_run
    folder = paths.backbone_dir(ARCH, cfg.name, "shapes_noisy") / "gradual_prune"
    model, payload = load_model(folder / "checkpoint-2.pth.tar")
    save_model(folder / "checkpoint-2.pth.tar", model, cfg.name, accuracy=0.9, test_accuracy=0.9,
               provenance={"settings": {"val_fraction": 0.5}, "inputs": {}})
    broken = load_model(paths.target_dir(ARCH, cfg.name, "shapes_noisy", "shapes_captions") / "scratch"
                        / "checkpoint-2.pth.tar")[0].task_view("shapes_noisy")
    accuracy = {fraction: round(evaluate(broken, task_loaders(cfg, cfg.task(2), seed=SEED, val_fraction=fraction)[1],
                                         torch.device("cpu"))[1], 4) for fraction in (None, 0.5)}
    assert accuracy[None] != accuracy[0.5]          # the two splits tell apart
    _, rows, _ = write_results(cfg, ARCH)
    assert {row["target_id"]: row["backbone_after_val_acc"] for row in rows}[7] == accuracy[0.5]


def test_picked_related_judges_a_target_among_the_candidates_it_was_ranked_among(fabricated_run):
    """Target 7 re-ranked among backbone 2 alone (a narrowed step 3-1): its related task 8 was no candidate, though
    the table keeps the 7,8 row of the wider run."""
    cfg, _, _ = fabricated_run
    paths.pickaback_result_csv(cfg.name).with_suffix(".json").write_text(json.dumps(
        {"7": {"score": "modeldiff", "select": "similar", "candidates": [2]}}))
    _, rows, _ = write_results(cfg, ARCH)
    assert {row["target_id"]: row["picked_related"] for row in rows} == {1: True, 7: None}


# A run on the backbone and its twin: the twin has fresh weights and the width the other run ended at
ON_BACKBONE_SETTINGS = {"epochs": 4, "lr": 0.01, "untrained_backbone": False, "network_width_multiplier": 1.5,
                        "max_allowed_network_width_multiplier": 2.0}
TWIN_SETTINGS = {**ON_BACKBONE_SETTINGS, "untrained_backbone": True, "max_allowed_network_width_multiplier": 1.5}


@pytest.mark.parametrize("twin_of_7", [{"start": "old"}, {"settings": {**TWIN_SETTINGS, "epochs": 2}}],
                         ids=["an earlier selection's start", "other epochs (UNTRAINED=0 after a change)"])
def test_knowledge_transfer_is_against_the_untrained_twin_that_started_where_the_target_did(fabricated_run, twin_of_7):
    """Target 1's untrained twin started from the same step-4 file as its run on the backbone, with the same recipe;
    target 7's from another file, or with other settings: only target 1 gets the figures."""
    cfg, _, _ = fabricated_run
    for target_id in (1, 7):
        start = f"f{target_id}"
        folder = paths.target_dir(ARCH, cfg.name, "shapes_noisy", cfg.task(target_id).name) / "scratch"
        model, payload = load_model(folder / "checkpoint-2.pth.tar")
        provenance = {"settings": ON_BACKBONE_SETTINGS, "inputs": {"start": start}}
        save_model(folder / "checkpoint-2.pth.tar", model, cfg.name, accuracy=payload["accuracy"],
                   test_accuracy=payload["test_accuracy"], provenance=provenance)
        twin = {"start": start, "settings": TWIN_SETTINGS, **(twin_of_7 if target_id == 7 else {})}
        folder = paths.target_dir(ARCH, cfg.name, "untrained", cfg.task(target_id).name) / "scratch"
        save_model(folder / "checkpoint-2.pth.tar", model, cfg.name, accuracy=0.75, test_accuracy=0.70,
                   provenance={"settings": twin["settings"], "inputs": {"start": twin["start"]}})
    results = {row["target_id"]: row for row in write_results(cfg, ARCH)[1]}
    assert {k: results[1][k] for k in ("on_untrained_val_acc", "on_untrained_test_acc", "knowledge_transfer_val",
                                       "knowledge_transfer_test")} == {
        "on_untrained_val_acc": 0.75, "on_untrained_test_acc": 0.70,
        "knowledge_transfer_val": round(0.8123 - 0.75, 4), "knowledge_transfer_test": round(0.7912 - 0.70, 4)}
    assert results[7]["on_untrained_test_acc"] is None and results[7]["knowledge_transfer_test"] is None


def test_a_step_3_2_run_decided_by_an_earlier_baseline_of_its_target_is_refused(fabricated_run):
    """Step 1 re-run for target 1 (its baseline now 0.70), step 3-2 not: its run, decided against 0.65, would stand
    beside the new scratch accuracy in one row (before: written with exit 0)."""
    cfg, _, _ = fabricated_run
    checkpoint = paths.target_dir(ARCH, cfg.name, "shapes_noisy", "shapes_clean") / "scratch" / "checkpoint-2.pth.tar"
    model, payload = load_model(checkpoint)
    save_model(checkpoint, model, cfg.name, accuracy=payload["accuracy"], test_accuracy=payload["test_accuracy"],
               provenance={"settings": {"baseline_accuracy": 0.65}, "inputs": {}})
    with pytest.raises(UserError, match=r"was trained against step 1's earlier baseline of shapes_clean \(0.6500; now "
                                        r"0.7000\); re-run run_pickaback/transfer_kv.sh and run_pickaback/w_backbone.sh"):
        write_results(cfg, ARCH)
    save_model(checkpoint, model, cfg.name, accuracy=payload["accuracy"], test_accuracy=payload["test_accuracy"],
               provenance={"settings": {"baseline_accuracy": 0.70}, "inputs": {}})
    assert 1 in read_results(write_results(cfg, ARCH)[0], ARCH)


def test_settings_that_differ_for_some_targets_name_them():
    """Step 1 re-run for target 1 at EPOCHS=6 and for target 2 at EPOCHS=5 (before: "epochs (step 1: 5, ...); epochs
    (step 1: 6, ...)" after "targets 1, 2", which pairs target 1 with 5)."""
    rows = [{"target_id": 1, "recipe_differences": {"epochs": (6, 4), "lr": (0.1, 0.2)}},
            {"target_id": 2, "recipe_differences": {"epochs": (5, 4), "lr": (0.1, 0.2)}},
            {"target_id": 3, "recipe_differences": {}}]
    assert other_recipe_sentence(rows) == [
        "Step 3-2 trained targets 1, 2 with other settings than step 1 did: epochs (step 1: 5, step 3-2: 4) for "
        "target 2; epochs (step 1: 6, step 3-2: 4) for target 1; lr (step 1: 0.1, step 3-2: 0.2); their forward "
        "transfer compares two recipes, not a backbone against none."]
