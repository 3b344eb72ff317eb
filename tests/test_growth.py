"""A task registered at one width that grows and claims the new weights (step 4 -> step 3-2) keeps what it grew."""
import pytest
import torch

from models.cpg import CPGModel, build_body
from models.masking import raw_weight
from tests.test_cpg import train_steps
from tests.test_models import CFG, images, spec
from utils.checkpoint import model_from_state, model_state


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
        reloaded = model_from_state(model_state(model))
        assert torch.equal(reloaded.task_view("b")(x), before)
        reloaded.set_active_task("b")
        reloaded.eval()
        assert torch.allclose(reloaded(x), before, atol=1e-5)


def test_untrained_backbone_keeps_the_structure_and_forgets_the_weights():
    """The transfer control's untrained backbone: earlier tasks' weights take a fresh body's initial values;
    ownership, the target's own entries and its piggymask stay as they were."""
    torch.manual_seed(0)
    model = CPGModel.create("perceiver_io", "demo")
    model.add_task(spec(1, "a"), CFG)
    train_steps(model, images(seed=1))
    model.prune_active_task(0.5)
    model.add_task(spec(2, "b"), CFG)
    weights = {layer: raw_weight(m).clone() for layer, m in model.maskable.items()}
    owners = {layer: mask.owner.clone() for layer, mask in model.masks.items()}
    piggy = {layer: mask.piggymasks["2"].detach().clone() for layer, mask in model.masks.items()}
    torch.manual_seed(7)
    model.reinitialise_earlier_tasks()
    torch.manual_seed(7)
    fresh = build_body("perceiver_io", "demo", 1.0).state_dict()
    for layer, module in model.maskable.items():
        owner, weight = model.masks[layer].owner, raw_weight(module)
        assert torch.equal(owner, owners[layer])
        assert torch.equal(weight[owner == 1], fresh[f"{layer}.weight"][owner == 1])
        assert not torch.equal(weight[owner == 1], weights[layer][owner == 1])
        assert torch.equal(weight[owner == 2], weights[layer][owner == 2])
        assert torch.equal(model.masks[layer].piggymasks["2"].detach(), piggy[layer])
