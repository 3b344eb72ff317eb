"""CPG semantics: the earlier-task invariant, ownership, gradients, pruning, metrics."""
import math

import pytest
import torch
import torch.nn.functional as F

from models.cpg import CPGModel
from models.masking import raw_weight
from tests.test_models import CFG, images, spec


def text_batch(n=4, seed=1):
    tokens = torch.randint(1, CFG.vocab_size, (n, CFG.max_text_length), generator=torch.Generator().manual_seed(seed))
    tokens[:, 8:] = 0
    return tokens


def train_steps(model, x, steps=3, lr=0.05, lr_mask=1e-2, weight_decay=5e-4):
    """A few SGD (+ Adam piggymask) steps on random labels, the way utils/train.py steps."""
    groups = model.parameter_groups(lr, lr_mask, weight_decay)
    sgd = torch.optim.SGD([g for g in groups if g["name"] != "piggymask"], lr=lr, momentum=0.9, nesterov=True)
    masks = [g for g in groups if g["name"] == "piggymask"]
    adam = torch.optim.Adam(masks, lr=lr_mask) if masks else None
    y = torch.arange(len(x)) % 3
    model.train()
    for _ in range(steps):
        sgd.zero_grad()
        if adam:
            adam.zero_grad()
        F.cross_entropy(model(x), y).backward()
        model.mask_gradients(weight_decay)
        sgd.step()
        if adam:
            adam.step()
    model.eval()


@pytest.mark.parametrize("arch,second_modality", [("lenet5", "image"), ("perceiver_io", "image"),
                                                  ("perceiver_io", "text")])
def test_earlier_task_is_bit_identical_after_later_task_trains_grows_and_prunes(arch, second_modality):
    torch.manual_seed(0)
    x1 = images()
    model = CPGModel.create(arch, "demo")
    model.add_task(spec(1, "first"), CFG)
    train_steps(model, x1)
    model.prune_active_task(0.5)
    train_steps(model, x1, steps=2)
    before = model.task_view("first")(x1)
    second_x = images(seed=3) if second_modality == "image" else text_batch()

    model = model.grown(1.5)
    assert torch.equal(model.task_view("first")(x1), before)
    model.add_task(spec(2, "second", second_modality, 3), CFG)
    train_steps(model, second_x)
    model.prune_active_task(0.6)
    train_steps(model, second_x, steps=2)
    model = model.grown(2.0)
    model.add_task(spec(3, "third"), CFG)
    train_steps(model, images(seed=4))

    assert torch.equal(model.task_view("first")(x1), before)
    model.set_active_task("first")   # switching back restores its private state
    assert torch.equal(model.task_view("first")(x1), before)


def test_task_view_matches_live_forward_at_the_same_width():
    model = CPGModel.create("perceiver_io", "demo")
    model.add_task(spec(1, "a"), CFG)
    model.add_task(spec(2, "b"), CFG)
    train_steps(model, images())
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(images()), model.task_view("b")(images()), atol=1e-5)


@pytest.mark.parametrize("arch", ["lenet5", "perceiver_io"])
def test_free_and_later_weights_have_no_effect(arch):
    torch.manual_seed(0)
    model = CPGModel.create(arch, "demo")
    model.add_task(spec(1, "a"), CFG)
    train_steps(model, images())
    model.prune_active_task(0.5)
    x = images(seed=5)
    before = model(x)
    with torch.no_grad():   # scribble over every free weight
        for layer, mask in model._masks.items():
            w = raw_weight(model._maskable[layer])
            w[mask.owner == 0] = torch.randn(int((mask.owner == 0).sum())) * 10
    assert torch.equal(model(x), before)
    model.add_task(spec(2, "b"), CFG)   # task b owns those weights now; task a must not see them
    train_steps(model, images(seed=6))
    model.set_active_task("a")
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), before)


def test_gradients_only_reach_own_weights_and_piggymask_only_earlier_entries():
    torch.manual_seed(0)
    model = CPGModel.create("perceiver_io", "demo")
    model.add_task(spec(1, "a"), CFG)
    model.prune_active_task(0.5)
    model.add_task(spec(2, "b"), CFG)    # b owns the freed half, piggybacks on a's half
    model.train()
    F.cross_entropy(model(images()), torch.zeros(4, dtype=torch.long)).backward()
    model.mask_gradients(weight_decay=0.1)
    piggy_seen = 0
    for layer, mask in model._masks.items():
        w = raw_weight(model._maskable[layer])
        assert (w.grad[mask.owner != 2] == 0).all(), layer
        piggy = mask.piggymasks["2"]
        assert (piggy.grad[mask.owner != 1] == 0).all(), layer
        piggy_seen += int((piggy.grad[mask.owner == 1] != 0).sum())
    assert piggy_seen > 0
    assert all(p.grad is None for p in model.body.heads["a"].parameters())


def test_parameter_groups_hold_only_the_active_tasks_private_modules():
    model = CPGModel.create("perceiver_io", "demo")
    model.add_task(spec(1, "a"), CFG)
    model.add_task(spec(2, "b", "text"), CFG)
    groups = {g["name"]: g for g in model.parameter_groups(0.1, 1e-4, 5e-4)}
    params = {id(p) for g in groups.values() for p in g["params"]}
    assert not params & {id(p) for p in model.body.heads["a"].parameters()}
    assert {id(p) for p in model.body.adapters["b"].parameters()} <= params
    assert groups["shared"]["weight_decay"] == 0.0
    assert len(groups["piggymask"]["params"]) == len(model._masks)


@pytest.mark.parametrize("arch", ["lenet5", "perceiver_io"])
@pytest.mark.parametrize("sparsity", [0.3, 0.75])
def test_prune_hits_the_per_layer_target_within_one_weight(arch, sparsity):
    torch.manual_seed(0)
    model = CPGModel.create(arch, "demo")
    model.add_task(spec(1, "a"), CFG)
    model.prune_active_task(0.1)    # gradual schedule: earlier stage, then the target
    model.prune_active_task(sparsity)
    for layer, mask in model._masks.items():
        pool = mask.owner.numel()
        free = int((mask.owner == 0).sum())
        assert abs(free - sparsity * pool) <= 1, layer
        w = raw_weight(model._maskable[layer])
        assert (w[mask.owner == 0] == 0).all()
        kept = w[mask.owner == 1].abs()
        assert kept.min() >= w.new_tensor(0) and kept.numel() == pool - free


def test_prune_never_touches_earlier_tasks():
    model = CPGModel.create("lenet5", "demo")
    model.add_task(spec(1, "a"), CFG)
    model.prune_active_task(0.5)
    model.add_task(spec(2, "b"), CFG)
    owners = {k: m.owner.clone() for k, m in model._masks.items()}
    model.prune_active_task(0.9)
    for layer, mask in model._masks.items():
        assert torch.equal(mask.owner == 1, owners[layer] == 1)
        own_pool = int((owners[layer] == 2).sum())
        assert abs(int((mask.owner == 0).sum()) - 0.9 * own_pool) <= 1


def test_stats_follow_the_original_definitions():
    model = CPGModel.create("lenet5", "demo", 1.0)
    model.add_task(spec(1, "a"), CFG)
    model.prune_active_task(0.5)
    s = model.stats()
    assert s["task_index"] == 1 and s["shared_ratio"] == 0.0 and s["mpl"] == 1.0
    assert abs(s["sparsity"] - 0.5) < 1e-3 and abs(s["task_ratio"] + s["zero_ratio"] - 1.0) < 1e-9
    model = model.grown(2.0)
    model.add_task(spec(2, "b"), CFG)
    s = model.stats()
    total = sum(m.owner.numel() for m in model._masks.values())
    own = sum(int((m.owner == 2).sum()) for m in model._masks.values())
    assert s["task_ratio"] == pytest.approx(own / total * 2.0)
    assert s["sparsity"] == 0.0 and s["shared_ratio"] == 1.0 and s["mpl"] == pytest.approx(math.sqrt(2))
    with torch.no_grad():
        for mask in model._masks.values():
            mask.piggymasks["2"].fill_(0.0)
    assert model.stats()["shared_ratio"] == 0.0


def test_piggymask_below_threshold_switches_earlier_weights_off():
    model = CPGModel.create("lenet5", "demo")
    model.add_task(spec(1, "a"), CFG)
    model.add_task(spec(2, "b"), CFG)   # b owns nothing: everything it sees comes through its piggymask
    model.eval()
    with torch.no_grad():
        on = model(images())
        for mask in model._masks.values():
            mask.piggymasks["2"].fill_(0.004)
        off = model(images())
    assert not torch.equal(on, off)
    assert torch.equal(model._masks["fc1"].owner.unique(), torch.tensor([1], dtype=torch.int16))
