"""How step 3-1 sees a candidate: through its own input adapter when it reads the target's modality or, paired,
the same samples in its own; through the target's adapter otherwise."""
import torch

from packnet_models_pickaback.compare import compared_as, comparison_view, logits_and_features
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


def tokens(n=4, seed=0):
    return torch.randint(1, CFG.vocab_size, (n, 12), generator=torch.Generator().manual_seed(seed))


def view_of(peer_task, paired):
    """(how compared_as says the peer is compared, its comparison view, the peer alone, the target)."""
    target, peer = model_of(TARGET, 0), model_of(peer_task, 1)
    how = compared_as(peer_task, TARGET, paired=paired)
    view = comparison_view(peer, peer_task, target.task_view(TARGET.name), how)
    return how, view, peer.task_view(peer_task.name), target


def same_adapter(view, name, other_view, other_name):
    state, expected = adapter_state(view, name), adapter_state(other_view, other_name)
    return all(torch.equal(state[k], expected[k]) for k in expected)


def test_a_same_modality_candidate_reads_through_its_own_adapter():
    how, view, alone, _ = view_of(IMAGE_PEER, paired=True)
    assert how == "own adapter" and same_adapter(view, IMAGE_PEER.name, alone, IMAGE_PEER.name)
    with torch.no_grad():
        assert torch.equal(view(images()), alone(images()))        # the candidate exactly as it is


def test_an_unpaired_cross_modal_candidate_reads_through_the_targets_adapter():
    how, view, _, target = view_of(TEXT_PEER, paired=False)
    assert how == "target adapter" and same_adapter(view, TEXT_PEER.name, target.task_view(TARGET.name), TARGET.name)
    assert view.modality == "image" and view(images()).shape == (4, TEXT_PEER.num_classes)


def test_a_paired_cross_modal_candidate_reads_its_own_modality_through_its_own_adapter():
    how, view, alone, _ = view_of(TEXT_PEER, paired=True)
    assert how == "paired probes" and view.modality == "text"
    assert same_adapter(view, TEXT_PEER.name, alone, TEXT_PEER.name)
    with torch.no_grad():
        assert torch.equal(view(tokens()), alone(tokens()))


def test_features_are_what_the_head_reads():
    view = model_of(TARGET, 0).task_view(TARGET.name)
    logits, features = logits_and_features(view, images())
    head = view.body.heads[TARGET.name]
    with torch.no_grad():
        assert torch.allclose(head(features), logits) and torch.equal(logits, view(images()))
    assert features.shape == (4, view.body.p.latent_dim)
