"""Gradual pruning: the cubic (Zhu & Gupta) sparsity schedule and when GradualPruner prunes."""
import pytest
import torch

from models.cpg import CPGModel
from models.masking import raw_weight
from tests.test_models import CFG, spec
from utils.pruner import GradualPruner, cubic_sparsity


def zhu_gupta(t, t0, n, s_i, s_f):
    return s_f + (s_i - s_f) * (1 - (t - t0) / n) ** 3


@pytest.mark.parametrize("step,expected", [
    (10, 0.1),                  # begin: the initial sparsity
    (15, 0.3890625),            # 0.6 - 0.5 * 0.75^3
    (20, 0.5375),               # middle: 0.6 - 0.5 * 0.5^3
    (25, 0.5921875),            # 0.6 - 0.5 * 0.25^3
    (30, 0.6),                  # end: the target
])
def test_cubic_sparsity_matches_zhu_gupta(step, expected):
    assert cubic_sparsity(step, 10, 30, 0.1, 0.6) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert cubic_sparsity(step, 10, 30, 0.1, 0.6) == pytest.approx(zhu_gupta(step, 10, 20, 0.1, 0.6), rel=1e-12)


def test_cubic_sparsity_is_clamped_outside_the_ramp():
    assert cubic_sparsity(0, 10, 30, 0.1, 0.6) == pytest.approx(0.1, rel=1e-12)
    assert cubic_sparsity(9, 10, 30, 0.1, 0.6) == pytest.approx(0.1, rel=1e-12)
    assert cubic_sparsity(31, 10, 30, 0.1, 0.6) == 0.6
    assert cubic_sparsity(1000, 10, 30, 0.1, 0.6) == 0.6
    assert cubic_sparsity(5, 10, 10, 0.1, 0.6) == 0.6     # empty ramp: the target at once


class Recorder:
    """Stands in for CPGModel: records the sparsities pruned to and the zeroing calls."""

    def __init__(self):
        self.pruned, self.zeroed = [], 0

    def prune_active_task(self, sparsity):
        self.pruned.append(sparsity)

    def zero_free_weights(self):
        self.zeroed += 1


def test_gradual_pruner_prunes_every_frequency_steps_and_exactly_at_end():
    model = Recorder()
    pruner = GradualPruner(model, initial=0.0, target=0.5, begin=0, end=10, frequency=3)
    steps_pruned = []
    for step in range(1, 15):
        before = len(model.pruned)
        pruner()
        if len(model.pruned) > before:
            steps_pruned.append(step)
    assert steps_pruned == [3, 6, 9, 10]
    assert model.pruned == [pytest.approx(cubic_sparsity(s, 0, 10, 0.0, 0.5), rel=1e-12) for s in (3, 6, 9)] + [0.5]
    assert model.pruned[-1] == 0.5          # exactly the target, not approximately
    assert model.zeroed == 14               # free weights re-zeroed after every step
    pruner.finish()
    assert len(model.pruned) == 4           # already at the target: finish does not prune again


def test_gradual_pruner_finish_reaches_the_target_when_the_run_stops_early():
    model = Recorder()
    pruner = GradualPruner(model, initial=0.1, target=0.7, begin=0, end=100, frequency=10)
    for _ in range(25):
        pruner()
    assert len(model.pruned) == 2
    pruner.finish()
    assert model.pruned[-1] == 0.7 and len(model.pruned) == 3


def test_gradual_pruner_brings_a_real_model_to_the_exact_target_per_layer():
    torch.manual_seed(0)
    model = CPGModel.create("lenet5", "demo")
    model.add_task(spec(1, "a"), CFG)
    pruner = GradualPruner(model, initial=0.0, target=0.6, begin=0, end=8, frequency=3)
    for _ in range(8):
        pruner()
    for layer, mask in model.masks.items():
        assert int((mask.owner == 0).sum()) == round(0.6 * mask.owner.numel()), layer
        assert (raw_weight(model.maskable[layer])[mask.owner == 0] == 0).all(), layer
