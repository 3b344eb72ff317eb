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


def test_a_same_modality_candidate_reads_through_its_own_adapter():
    target, peer = model_of(TARGET, 0), model_of(IMAGE_PEER, 1)
    how = compared_as(IMAGE_PEER, TARGET, "own", paired=True)
    own = comparison_view(peer, IMAGE_PEER, target, TARGET, how)
    alone = peer.task_view(IMAGE_PEER.name)
    state, expected = adapter_state(own, IMAGE_PEER.name), adapter_state(alone, IMAGE_PEER.name)
    assert how == "own adapter" and all(torch.equal(state[k], expected[k]) for k in expected)
    with torch.no_grad():
        assert torch.equal(own(images()), alone(images()))        # the candidate exactly as it is


def test_an_unpaired_cross_modal_candidate_reads_through_the_targets_adapter():
    target, peer = model_of(TARGET, 0), model_of(TEXT_PEER, 1)
    how = compared_as(TEXT_PEER, TARGET, "own", paired=False)
    view = comparison_view(peer, TEXT_PEER, target, TARGET, how)
    state, expected = adapter_state(view, TEXT_PEER.name), adapter_state(target.task_view(TARGET.name), TARGET.name)
    assert how == "target adapter" and all(torch.equal(state[k], expected[k]) for k in expected)
    assert view.modality == "image" and view(images()).shape == (4, TEXT_PEER.num_classes)


def test_a_paired_cross_modal_candidate_reads_its_own_modality_through_its_own_adapter():
    target, peer = model_of(TARGET, 0), model_of(TEXT_PEER, 1)
    how = compared_as(TEXT_PEER, TARGET, "own", paired=True)
    view = comparison_view(peer, TEXT_PEER, target, TARGET, how)
    alone = peer.task_view(TEXT_PEER.name)
    state, expected = adapter_state(view, TEXT_PEER.name), adapter_state(alone, TEXT_PEER.name)
    assert how == "paired probes" and view.modality == "text"
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    with torch.no_grad():
        assert torch.equal(view(tokens()), alone(tokens()))


def test_candidate_adapter_target_puts_every_unpaired_candidate_behind_the_targets_adapter():
    target, peer = model_of(TARGET, 0), model_of(IMAGE_PEER, 1)
    how = compared_as(IMAGE_PEER, TARGET, "target", paired=False)
    view = comparison_view(peer, IMAGE_PEER, target, TARGET, how)
    state, expected = adapter_state(view, IMAGE_PEER.name), adapter_state(target.task_view(TARGET.name), TARGET.name)
    assert how == "target adapter" and all(torch.equal(state[k], expected[k]) for k in expected)


def test_features_are_what_the_head_reads():
    view = model_of(TARGET, 0).task_view(TARGET.name)
    logits, features = logits_and_features(view, images())
    head = view.body.heads[TARGET.name]
    with torch.no_grad():
        assert torch.allclose(head(features), logits) and torch.equal(logits, view(images()))
    assert features.shape == (4, view.body.p.latent_dim)
