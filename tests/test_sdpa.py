"""SDPA attention: the results, gradients and checkpoints of perceiver-pytorch's explicit-softmax attention."""
import pytest
import torch
from perceiver_pytorch.perceiver_pytorch import Attention
from torch import nn

from models import perceiver_io
from models.perceiver_io import PerceiverIO, SDPAAttention
from tests.test_checkpoint import assert_same, payload, trained_model
from tests.test_cpg import text_batch
from tests.test_models import CFG, images
from utils.checkpoint import load_checkpoint, model_from_state, model_state, save_checkpoint

BATCH = {"demo": 4, "paper": 2}   # the paper profile at a small batch keeps the test fast
ADAPTER_CONFIG = {"image_size": CFG.image_size, "vocab_size": CFG.vocab_size, "max_text_length": CFG.max_text_length}


def body(profile, modality, seed=0):
    """A plain PerceiverIO with one task whose head is the identity: outputs and gradients are compared
    at the scale of the features rather than of logits from a head initialised at N(0, 0.01)."""
    torch.manual_seed(seed)
    model = PerceiverIO(profile)
    model.add_task_modules("t", modality, 5, ADAPTER_CONFIG, 1.0)
    model.heads["t"] = nn.Identity()
    return model


def padded_text(n):
    tokens = text_batch(n)   # positions 8 onwards are padding
    tokens[-1] = 0           # and the last sequence is nothing but padding
    return tokens


def batch(profile, modality):
    n = BATCH[profile]
    return images(n) if modality == "image" else padded_text(n)


def output_and_grads(model, x):
    model.zero_grad(set_to_none=True)
    out = model(x, "t")
    weights = torch.linspace(-1.0, 1.0, out.numel()).view_as(out)   # every output element gets its own gradient
    (out * weights).sum().backward()
    return out.detach(), {name: p.grad for name, p in model.named_parameters()}


def without_dropout(model):
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return model


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("modality", ["image", "text"])
@pytest.mark.parametrize("profile", ["demo", "paper"])
def test_outputs_and_gradients_match_the_upstream_attention(monkeypatch, profile, modality, train):
    model = without_dropout(body(profile, modality)).train(train)
    x = batch(profile, modality)
    out, grads = output_and_grads(model, x)
    with monkeypatch.context() as patch:
        patch.setattr(SDPAAttention, "forward", Attention.forward)
        expected_out, expected_grads = output_and_grads(model, x)
    torch.testing.assert_close(out, expected_out, rtol=0, atol=1e-5)
    assert grads.keys() == expected_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], expected_grads[name], rtol=1e-4, atol=1e-5,
                                   msg=lambda m, name=name: f"{name}: {m}")


def test_attention_dropout_acts_in_training_only():
    attention = body("paper", "text").cross_attn.fn
    assert attention.dropout.p == 0.1
    z = torch.randn(2, 8, attention.to_q.in_features)
    context = torch.randn(2, 12, 2 * attention.to_q.out_features)
    attention.eval()
    assert torch.equal(attention(z, context=context), attention(z, context=context))
    attention.train()
    assert not torch.equal(attention(z, context=context), attention(z, context=context))


def test_padding_under_bfloat16_autocast_matches_the_upstream_attention(monkeypatch):
    """utils/train.py trains under bf16 autocast on CUDA; CPU autocast runs the same bfloat16 path here."""
    model = body("demo", "text")
    context, mask = model.adapters["t"](padded_text(4))
    z = model.latents(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.cross_attn(z, context=context, mask=mask)
        with monkeypatch.context() as patch:
            patch.setattr(SDPAAttention, "forward", Attention.forward)
            expected = model.cross_attn(z, context=context, mask=mask)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), expected.float(), rtol=2e-2, atol=2e-2)


def test_upstream_options_this_model_never_sets_keep_their_meaning():
    torch.manual_seed(0)
    attention = SDPAAttention(16, heads=2, dim_head=8, queries_contribute_kv=True).eval()
    x, context = torch.randn(2, 3, 16), torch.randn(2, 5, 16)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    for inverted in (False, True):
        torch.testing.assert_close(attention(x, context=context, mask=mask, inverted_attention=inverted),
                                   Attention.forward(attention, x, context=context, mask=mask,
                                                     inverted_attention=inverted))


def test_a_state_dict_of_the_upstream_attention_loads_unchanged(monkeypatch, tmp_path):
    with monkeypatch.context() as patch:
        patch.setattr(perceiver_io, "SDPAAttention", Attention)
        old = body("demo", "text").eval()
    assert not any(isinstance(m, SDPAAttention) for m in old.modules())
    torch.save(old.state_dict(), tmp_path / "old.pt")
    new = body("demo", "text", seed=1).eval()
    state = torch.load(tmp_path / "old.pt", weights_only=True)
    assert new.state_dict().keys() == state.keys()
    new.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(new(padded_text(4), "t"), old(padded_text(4), "t"), rtol=0, atol=1e-5)


def test_a_cpg_checkpoint_of_the_upstream_attention_loads_unchanged(monkeypatch, tmp_path):
    """Owner maps and piggymasks are parametrisations of the attention Linears: they must carry over too."""
    with monkeypatch.context() as patch:
        patch.setattr(perceiver_io, "SDPAAttention", Attention)
        old = trained_model()
    path = tmp_path / "checkpoint-3.pth.tar"
    save_checkpoint(path, payload(old))
    rebuilt = model_from_state(load_checkpoint(path, expect_arch="perceiver_io")["model"])
    assert isinstance(rebuilt.body.cross_attn.fn, SDPAAttention)
    assert_same(model_state(rebuilt), model_state(old))
    old.eval(), rebuilt.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(text_batch()), old(text_batch()), rtol=0, atol=1e-6)
        torch.testing.assert_close(rebuilt.task_view("img")(images()), old.task_view("img")(images()),
                                   rtol=0, atol=1e-6)
