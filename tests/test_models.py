"""Architectures: shapes, widths under growth, fused-block placement, adapters and text masking."""
import dataclasses

import pytest
import torch

from models.cpg import CPGModel
from models.lenet import lenet_widths
from models.masking import block_index, place, raw_weight, shrink
from models.perceiver_io import PROFILES, ImageAdapter, perceiver_widths
from utils.checkpoint import model_from_state, model_state
from utils.dataset_config import DatasetConfig, TaskSpec
from utils.errors import UserError

CFG = DatasetConfig(name="t", image_root=None, text_root=None, tasks=(), image_size=32,
                    train_augment="crop_flip", text_encoding="hashed_words", vocab_size=50, max_text_length=12)


def spec(task_id, name, modality="image", num_classes=5):
    return TaskSpec(task_id, name, modality, num_classes, (0.5,) * 3, (0.25,) * 3)


def images(n=4, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_lenet_widths_match_the_original():
    assert lenet_widths(1.0) == {"conv1": 6, "conv2": 16, "fc1": 120, "fc2": 84}
    assert lenet_widths(2.0) == {"conv1": 8, "conv2": 22, "fc1": 169, "fc2": 118}


def test_perceiver_widths_grow_heads_and_feed_forward_only():
    paper = PROFILES["paper"]
    assert perceiver_widths(paper, 1.0) == {"latent_heads": 8, "ff_hidden": 2048}
    assert perceiver_widths(paper, 2.0) == {"latent_heads": 11, "ff_hidden": 2896}
    model = CPGModel.create("perceiver_io", "demo", 2.0)
    assert raw_weight(model.body.latents).shape == (32, 96)
    assert model.body.cross_attn.fn.heads == 1


@pytest.mark.parametrize("arch", ["lenet5", "perceiver_io"])
def test_forward_shapes(arch):
    model = CPGModel.create(arch, "demo")
    model.add_task(spec(1, "a", num_classes=7), CFG)
    assert model(images()).shape == (4, 7)
    assert model.task_view("a")(images()).shape == (4, 7)


def test_lenet_refuses_text_tasks():
    model = CPGModel.create("lenet5", "demo")
    with pytest.raises(UserError):
        model.add_task(spec(1, "t", "text"), CFG)


def test_unknown_arch_and_profile_are_user_errors():
    with pytest.raises(UserError):
        CPGModel.create("resnet", "demo")
    with pytest.raises(UserError):
        CPGModel.create("perceiver_io", "huge")


def test_block_index_keeps_each_half_on_top():
    assert block_index(6, 10, 2).tolist() == [0, 1, 2, 5, 6, 7]
    small = torch.arange(6.0).view(6, 1)
    big = place(small, torch.full((10, 1), -1.0), dim0_blocks=2)
    assert big.view(-1).tolist() == [0, 1, 2, -1, -1, 3, 4, 5, -1, -1]
    assert torch.equal(shrink(big, (6, 1), 2), small)


def test_growing_places_fused_kv_and_geglu_halves():
    model = CPGModel.create("perceiver_io", "demo", 1.0)
    model.add_task(spec(1, "a"), CFG)
    wide = model.grown(2.0)
    inner, inner2 = 4 * 16, 5 * 16
    old_kv, new_kv = raw_weight(model.body.layers[0][0].fn.to_kv), raw_weight(wide.body.layers[0][0].fn.to_kv)
    assert torch.equal(new_kv[:inner], old_kv[:inner])
    assert torch.equal(new_kv[inner2:inner2 + inner], old_kv[inner:])
    hidden, hidden2 = 192, 271     # demo latent_dim 96 x ff_mult 2, and floor(192 * sqrt(2))
    old_ff, new_ff = model.body.layers[1][1].fn.net[0], wide.body.layers[1][1].fn.net[0]
    assert torch.equal(raw_weight(new_ff)[hidden2:hidden2 + hidden], raw_weight(old_ff)[hidden:])
    assert torch.equal(new_ff.bias[hidden2:hidden2 + hidden], old_ff.bias[hidden:])
    owner = wide.masks["layers.0.0.fn.to_kv"].owner
    assert (owner[:inner] == 1).all() and (owner[inner:inner2] == 0).all()
    # new entries are freshly initialised (random), not zero
    assert raw_weight(new_ff)[hidden:hidden2].abs().sum() > 0


def test_growing_lenet_keeps_old_block_top_left():
    model = CPGModel.create("lenet5", "demo")
    model.add_task(spec(1, "a"), CFG)
    wide = model.grown(2.0)
    assert raw_weight(wide.body.fc1).shape == (169, 550)
    assert torch.equal(raw_weight(wide.body.fc1)[:120, :400], raw_weight(model.body.fc1))
    assert (wide.masks["conv2"].owner[16:] == 0).all()
    assert wide.body.heads["a"].in_features == 84


def test_text_padding_is_masked_out():
    model = CPGModel.create("perceiver_io", "demo")
    model.add_task(spec(1, "t", "text"), CFG)
    model.eval()
    tokens = torch.randint(1, 50, (3, 12))
    tokens[:, 6:] = 0
    # padding positions differ only through the position table: unless the cross-attention masks
    # them out, editing their rows changes the logits
    with torch.no_grad():
        before = model(tokens)
        model.body.adapters["t"].positions.weight[6:] += 5.0
        after = model(tokens)
    assert torch.equal(before, after)


def test_image_and_text_tasks_share_the_latent_stack():
    model = CPGModel.create("perceiver_io", "demo")
    model.add_task(spec(1, "img"), CFG)
    model.add_task(spec(2, "txt", "text", 3), CFG)
    assert set(model.body.adapters) == {"img", "txt"}
    assert model(torch.randint(0, 50, (2, 12))).shape == (2, 3)


@pytest.mark.parametrize("patch, side, tokens", [(1, 8, 64), (4, 32, 64), (4, 30, 64), (2, 7, 16)])
def test_image_tokens_are_patches_of_pixels(patch, side, tokens):
    adapter = ImageAdapter(kv_dim=16, num_freq_bands=2, max_freq=4.0, patch=patch)
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(0))
    context, mask = adapter(x)
    assert context.shape == (2, tokens, 16) and mask is None
    # a pixel is read by the one token of its patch: change it and only that token's row moves
    edited = x.clone()
    edited[:, :, patch, patch] += 1.0
    moved = (adapter(edited)[0] - context).abs().sum(dim=(0, 2)) > 0
    per_side = -(-side // patch)
    assert moved.nonzero().flatten().tolist() == [per_side + 1]


def test_a_model_reads_images_with_its_profiles_patch():
    assert PROFILES["paper"].image_patch == 1
    model = CPGModel.create("perceiver_io", "demo")
    model.add_task(spec(1, "a"), CFG)
    context, _ = model.body.adapters["a"](images())
    assert context.shape[1] == (32 // PROFILES["demo"].image_patch) ** 2


def test_a_large_image_reads_larger_patches_in_the_demo_profile_only(monkeypatch):
    model = CPGModel.create("perceiver_io", "demo")
    model.add_task(spec(1, "big"), dataclasses.replace(CFG, image_size=128))
    model.add_task(spec(2, "small"), dataclasses.replace(CFG, image_size=16))
    big = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    assert model.body.adapters["big"](big)[0].shape[1] == PROFILES["demo"].image_grid ** 2     # 16 x 16 patches
    small = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert model.body.adapters["small"](small)[0].shape[1] == (16 // PROFILES["demo"].image_patch) ** 2
    assert model_from_state(model_state(model)).body.adapters["big"](big)[0].shape[1] == 16 * 16
    # the patch is saved with the task: a later profile that reads large images otherwise rebuilds the same adapter
    monkeypatch.setitem(PROFILES, "demo", dataclasses.replace(PROFILES["demo"], image_grid=None))
    assert model_from_state(model_state(model)).body.adapters["big"](big)[0].shape[1] == 16 * 16
    assert PROFILES["paper"].patch_for(None, 224) == 1     # the original's one token per pixel, at any size
    assert PROFILES["demo"].patch_for(7, 224) == 7         # a config's own patch wins


def test_a_configs_image_patch_overrides_the_profiles_and_is_rebuilt_from_a_checkpoint():
    model = CPGModel.create("perceiver_io", "demo")
    model.add_task(spec(1, "a"), dataclasses.replace(CFG, image_patch=8))
    model.add_task(spec(2, "b"), CFG)     # a config without the key: the profile's patch
    rebuilt = model_from_state(model_state(model))
    for m in (model, rebuilt):
        assert m.body.adapters["a"](images())[0].shape[1] == (32 // 8) ** 2
        assert m.body.adapters["b"](images())[0].shape[1] == (32 // PROFILES["demo"].image_patch) ** 2
