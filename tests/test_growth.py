"""A task registered at one width that grows and claims the new weights (step 4 -> step 3-2) keeps what it grew."""
import pytest
import torch

from models.cpg import CPGModel
from tests.test_cpg import train_steps
from tests.test_models import CFG, images, spec


def grown_target(arch):
    """Task "b" registered at width 1.0 (as step 4 does), then grown to 2.0, claimed and trained."""
    torch.manual_seed(0)
    model = CPGModel.create(arch, "demo")
    model.add_task(spec(1, "a"), CFG)
    train_steps(model, images(seed=1))
    model.prune_active_task(0.5)
    model.add_task(spec(2, "b"), CFG)
    model = model.grown(2.0)
    model.set_active_task("b")
    model.claim_free_weights()
    train_steps(model, images(seed=2), steps=5)
    return model


@pytest.mark.parametrize("arch", ["lenet5", "perceiver_io"])
def test_claiming_after_growth_gives_the_task_the_new_width(arch):
    model = grown_target(arch)
    assert model.tasks["b"].width_mult == 2.0
    assert model.tasks["a"].width_mult == 1.0


@pytest.mark.parametrize("arch", ["lenet5", "perceiver_io"])
def test_grown_task_view_is_the_live_model(arch):
    model = grown_target(arch)
    x = images(seed=3)
    with torch.no_grad():
        live = model(x)
        assert torch.allclose(model.task_view("b")(x), live, atol=1e-5)
        model.set_active_task("a")       # a task switch snapshots b at its own (grown) width
        model.set_active_task("b")
        assert torch.allclose(model(x), live, atol=1e-5)


@pytest.mark.parametrize("arch", ["lenet5", "perceiver_io"])
def test_grown_task_survives_a_checkpoint_round_trip(arch):
    model = grown_target(arch)
    x = images(seed=3)
    with torch.no_grad():
        before = model.task_view("b")(x)
        reloaded = CPGModel.from_checkpoint_state(model.checkpoint_state())
        assert torch.equal(reloaded.task_view("b")(x), before)
        reloaded.set_active_task("b")
        reloaded.eval()
        assert torch.allclose(reloaded(x), before, atol=1e-5)
