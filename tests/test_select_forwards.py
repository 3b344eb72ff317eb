"""Step 3-1 without the mutation search runs each model once per target, and its distances and scores are those
of each pair compared on its own (the per-pair computation step 3-1 did before it reused outputs)."""
import csv
from contextlib import contextmanager

import pytest
import torch

import pickaback_perceiverIO as step
from models.cpg import TaskView
from packnet_models.baseline import build_baseline
from packnet_models_pickaback.compare import (compared_as, comparison_view, load_task_model,
                                              logits_and_features, untrained_twin)
from utils import paths
from utils.checkpoint import save_model
from utils.dataset_config import get_config
from utils_pickaback.modeldiff import logits_distance, model_distance, search_single_moves

ARCH = "perceiver_io"


def save_untrained_baselines(cfg, seed=paths.DEFAULT_SEED):
    """Step 1's checkpoint of every task of `cfg`, untrained (seeded by the task id), under paths.output_root."""
    for task in cfg.tasks:
        torch.manual_seed(task.task_id)
        save_model(paths.baseline_dir(ARCH, cfg.name, task.name, seed) / "checkpoint-0.pth.tar",
                   build_baseline(ARCH, "demo", cfg, task), cfg.name)


@contextmanager
def counting_forwards():
    """A dict whose "calls" counts every forward of a task view (the models step 3-1 compares) inside the block."""
    count, forward = {"calls": 0}, TaskView.forward

    def counted(self, x):
        count["calls"] += 1
        return forward(self, x)
    TaskView.forward = counted
    try:
        yield count
    finally:
        TaskView.forward = forward


@pytest.fixture(scope="module")
def untrained_run(small_demo_root, tmp_path_factory):
    """An output root holding an untrained baseline of every demo task (cost does not depend on training)."""
    out = tmp_path_factory.mktemp("untrained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMPAB_OUTPUT_ROOT", str(out))
        save_untrained_baselines(get_config("demo", data_root_dir=small_demo_root))
    return out


@pytest.fixture
def run_step(untrained_run, small_demo_root, monkeypatch):
    """Run step 3-1's main() in this process; returns the number of model forwards and the table's rows."""
    monkeypatch.setenv("MMPAB_OUTPUT_ROOT", str(untrained_run))
    monkeypatch.setenv("MMPAB_DATA_ROOT", str(small_demo_root))

    def run(*options):
        args = step.get_args_parser().parse_args(["--dataset_config", "demo", "--compare", "baseline", "--device",
                                                  "cpu", "--force", *options])
        with counting_forwards() as count:
            assert step.main(args) == 0
        with open(paths.pickaback_table_csv("demo")) as f:
            return count["calls"], list(csv.DictReader(f))
    return run


@pytest.mark.parametrize("pairing", ["target_adapter", "paired"])
def test_without_the_search_each_target_runs_itself_and_each_candidate_once(run_step, pairing):
    options = ["--max_iterations", "0", "--cross_modal_probes", pairing, "--target_id", "1", "7"]
    forwards, _ = run_step(*options)
    # per target: itself, its 11 candidates and one untrained twin per kind of candidate (image, text: the floor)
    assert forwards == 2 * (12 + 2)
    forwards, _ = run_step(*options, "--candidate_ids", "1", "2", "3", "7", "8")
    assert forwards == 2 * (5 + 2)                                # grows with the pool, one forward per model


def reference_row(cfg, target, candidate, args):
    """One pair compared on its own, its untrained twin's floor too (step 3-1 computes one floor per kind)."""
    record = reference_record(cfg, target, candidate, args, load_task_model(cfg, candidate, ARCH))
    twin = untrained_twin(load_task_model(cfg, candidate, ARCH), candidate, cfg)
    floor = reference_record(cfg, target, candidate, args, twin)["ddv_euc"]
    record.update(ddv_euc_untrained=floor, ddv_euc_over_untrained=record["ddv_euc"] - floor)
    return step.table_row(target.task_id, candidate.task_id, record)


def reference_record(cfg, target, candidate, args, candidate_model):
    """One pair compared on its own, as step 3-1 did before it reused outputs: fresh views, the search (or the
    seeds), both models run on the profiling inputs for the distances and again on the probes for the scores."""
    probes = step.drawn_probes(cfg, target, args.n_inputs, args, "cpu")
    view_t = load_task_model(cfg, target, ARCH).task_view(target.name)
    how = compared_as(candidate, target, probes.paired is not None)
    view_c = comparison_view(candidate_model, candidate, load_task_model(cfg, target, ARCH).task_view(target.name),
                             how)
    if how == "paired probes":
        inputs_c = profiled_c = probes.paired
        profiled_t = probes.inputs
    else:
        inputs_c = probes.inputs
        searched = probes.inputs.clone()
        if args.max_iterations:
            search = (dict(valid_range=step.normalised_image_range(target.mean, target.std))
                      if target.modality == "image" else dict(vocab_size=cfg.vocab_size))
            searched = search_single_moves(view_t, view_c, probes.inputs, epsilon=args.epsilon,
                                           max_iterations=args.max_iterations, progress=False,
                                           generator=torch.Generator().manual_seed(args.seed), **search)
        profiled_t = profiled_c = searched
    if args.ddv_outputs == "logits":
        distances = model_distance(view_t, view_c, profiled_t, inputs_b=profiled_c, pairs=args.ddv_pairs)
    else:
        distances = logits_distance(logits_and_features(view_t, profiled_t)[1], logits_and_features(view_c, profiled_c)[1],
                                    pairs=args.ddv_pairs)
    _, features_t = logits_and_features(view_t, probes.inputs)
    logits_c, features_c = logits_and_features(view_c, inputs_c)
    scores = {"logme": lambda: step.logme(features_c, probes.labels),
              "leep": lambda: step.leep(logits_c.softmax(dim=1), probes.labels),
              "cka": lambda: step.linear_cka(features_t, features_c)}
    return {"ddv_cos": distances["cos"], "ddv_euc": distances["euc"], "compared_as": how,
            **{name: step.undefined_as_nan(score) for name, score in scores.items()}}


@pytest.mark.parametrize("options", [["--max_iterations", "0"], ["--max_iterations", "2"],
                                     ["--max_iterations", "0", "--cross_modal_probes", "paired"],
                                     ["--max_iterations", "2", "--ddv_outputs", "logits", "--ddv_pairs", "halves"],
                                     ["--cross_modal_probes", "paired", "--ddv_outputs", "logits"]])
def test_the_table_holds_each_pair_compared_on_its_own(run_step, small_demo_root, options):
    _, rows = run_step(*options, "--target_id", "1", "7", "--candidate_ids", "1", "2", "7", "8")
    rows = [row for row in rows if row["task_id"] in ("1", "2", "7", "8")]   # an earlier test's wider pool stays
    args = step.get_args_parser().parse_args(options)
    cfg = get_config("demo", data_root_dir=small_demo_root)
    expected = [reference_row(cfg, cfg.task(int(row["target_id"])), cfg.task(int(row["task_id"])), args)
                for row in rows]
    assert len(rows) == 6 and rows == expected
