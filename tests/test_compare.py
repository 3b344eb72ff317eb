"""How step 3-1 sees a candidate: through its own input adapter when it reads the target's modality."""
import torch

from packnet_models_pickaback.compare import comparison_view
from models.cpg import CPGModel
from tests.test_models import CFG, images, spec

TARGET, IMAGE_PEER, TEXT_PEER = spec(1, "target"), spec(2, "image_peer"), spec(3, "text_peer", "text")


def model_of(task, seed):
    torch.manual_seed(seed)
    model = CPGModel.create("perceiver_io", "demo")
    model.add_task(task, CFG)
    return model


def adapter_state(view, name):
    return {k: v.clone() for k, v in view.body.adapters[name].state_dict().items()}


def test_a_same_modality_candidate_reads_through_its_own_adapter():
    target, peer = model_of(TARGET, 0), model_of(IMAGE_PEER, 1)
    own = comparison_view(peer, IMAGE_PEER, target, TARGET)
    alone = peer.task_view(IMAGE_PEER.name)
    state, expected = adapter_state(own, IMAGE_PEER.name), adapter_state(alone, IMAGE_PEER.name)
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    with torch.no_grad():
        assert torch.equal(own(images()), alone(images()))        # the candidate exactly as it is


def test_a_cross_modal_candidate_reads_through_the_targets_adapter():
    target, peer = model_of(TARGET, 0), model_of(TEXT_PEER, 1)
    view = comparison_view(peer, TEXT_PEER, target, TARGET)
    state, expected = adapter_state(view, TEXT_PEER.name), adapter_state(target.task_view(TARGET.name), TARGET.name)
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    assert view.modality == "image" and view(images()).shape == (4, TEXT_PEER.num_classes)


def test_candidate_adapter_target_puts_every_candidate_behind_the_targets_adapter():
    target, peer = model_of(TARGET, 0), model_of(IMAGE_PEER, 1)
    view = comparison_view(peer, IMAGE_PEER, target, TARGET, adapter="target")
    state, expected = adapter_state(view, IMAGE_PEER.name), adapter_state(target.task_view(TARGET.name), TARGET.name)
    assert all(torch.equal(state[k], expected[k]) for k in expected)
