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


def test_switching_tasks_keeps_each_tasks_private_state_apart():
    """The body reads the active task's own private tensors: training one task's BatchNorm leaves the other's."""
    torch.manual_seed(0)
    model = CPGModel.create("lenet5", "demo")
    model.add_task(spec(1, "a"), CFG)
    model.add_task(spec(2, "b"), CFG)
    kept = {k: v.clone() for k, v in model.private_state("a").items()}
    train_steps(model, images())
    assert all(torch.equal(model.private_state("a")[k], v) for k, v in kept.items())
    assert not all(torch.equal(model.private_state("b")[k], v) for k, v in kept.items())
    model.set_active_task("a")
    assert all(torch.equal(model.live_private()[k], v) for k, v in kept.items())


def test_training_after_a_conversion_updates_the_tasks_own_statistics():
    """.double() (like .to(device)) makes new buffer objects; the body must use the task's converted ones, or
    training would update statistics that no checkpoint saves."""
    torch.manual_seed(0)
    model = CPGModel.create("lenet5", "demo")
    model.add_task(spec(1, "a"), CFG)
    model = model.double()
    before = {k: v.clone() for k, v in model.private_state("a").items() if k.endswith("running_mean")}
    model.train()
    model(images().double())
    assert before and all(not torch.equal(model.private_state("a")[k], v) for k, v in before.items())


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
        for layer, mask in model.masks.items():
            w = raw_weight(model.maskable[layer])
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
    for layer, mask in model.masks.items():
        w = raw_weight(model.maskable[layer])
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
    assert len(groups["piggymask"]["params"]) == len(model.masks)


@pytest.mark.parametrize("arch", ["lenet5", "perceiver_io"])
@pytest.mark.parametrize("sparsity", [0.3, 0.75])
def test_prune_frees_exactly_the_smallest_own_weights_per_layer(arch, sparsity):
    torch.manual_seed(0)
    model = CPGModel.create(arch, "demo")
    model.add_task(spec(1, "a"), CFG)
    original = {k: raw_weight(m).detach().clone() for k, m in model.maskable.items()}
    model.prune_active_task(0.1)    # gradual schedule: earlier stage, then the target
    model.prune_active_task(sparsity)
    for layer, mask in model.masks.items():
        pool = mask.owner.numel()
        free = int((mask.owner == 0).sum())
        assert free == round(sparsity * pool), layer
        w = raw_weight(model.maskable[layer])
        assert (w[mask.owner == 0] == 0).all()
        kept = mask.owner == 1
        assert torch.equal(w[kept], original[layer][kept]), layer     # kept weights keep their values
        assert original[layer][kept].abs().min() >= original[layer][~kept].abs().max(), layer


def test_prune_never_touches_earlier_tasks():
    torch.manual_seed(0)
    model = CPGModel.create("lenet5", "demo")
    model.add_task(spec(1, "a"), CFG)
    model.prune_active_task(0.5)
    model.add_task(spec(2, "b"), CFG)
    with torch.no_grad():   # b's entries were zeroed when a freed them: give them magnitudes to rank
        for layer, mask in model.masks.items():
            w = raw_weight(model.maskable[layer])
            w[mask.owner == 2] = torch.randn(int((mask.owner == 2).sum())) * 0.01   # smaller than most of a's
    owners = {k: m.owner.clone() for k, m in model.masks.items()}
    original = {k: raw_weight(m).detach().clone() for k, m in model.maskable.items()}
    model.prune_active_task(0.9)
    for layer, mask in model.masks.items():
        w, before = raw_weight(model.maskable[layer]), owners[layer]
        assert torch.equal(mask.owner == 1, before == 1), layer
        assert torch.equal(w[before == 1], original[layer][before == 1]), layer
        own_pool = int((before == 2).sum())
        assert int((mask.owner == 0).sum()) == round(0.9 * own_pool), layer
        kept, pruned = mask.owner == 2, (before == 2) & (mask.owner == 0)
        assert original[layer][kept].abs().min() >= original[layer][pruned].abs().max(), layer


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
    total = sum(m.owner.numel() for m in model.masks.values())
    own = sum(int((m.owner == 2).sum()) for m in model.masks.values())
    assert s["task_ratio"] == pytest.approx(own / total * 2.0)
    assert s["sparsity"] == 0.0 and s["shared_ratio"] == 1.0 and s["mpl"] == pytest.approx(math.sqrt(2))
    with torch.no_grad():
        for mask in model.masks.values():
            mask.piggymasks["2"].fill_(0.0)
    assert model.stats()["shared_ratio"] == 0.0


def test_piggymask_below_threshold_switches_earlier_weights_off():
    model = CPGModel.create("lenet5", "demo")
    model.add_task(spec(1, "a"), CFG)
    model.add_task(spec(2, "b"), CFG)   # b owns nothing: everything it sees comes through its piggymask
    model.eval()
    with torch.no_grad():
        on = model(images())
        for mask in model.masks.values():
            mask.piggymasks["2"].fill_(0.004)
        off = model(images())
    assert not torch.equal(on, off)
    assert torch.equal(model.masks["fc1"].owner.unique(), torch.tensor([1], dtype=torch.int16))


def three_owner_model():
    """lenet5 whose active task 2 ("b") has own (2), earlier (1) and free (0) entries in every layer,
    all with random non-zero raw weights."""
    torch.manual_seed(0)
    model = CPGModel.create("lenet5", "demo")
    model.add_task(spec(1, "a"), CFG)
    model.prune_active_task(0.5)
    model.add_task(spec(2, "b"), CFG)
    model.prune_active_task(0.5)
    with torch.no_grad():
        for module in model.maskable.values():
            raw_weight(module).copy_(torch.randn_like(raw_weight(module)))
    for layer, mask in model.masks.items():
        assert {0, 1, 2} <= set(mask.owner.unique().tolist()), layer
    return model


@pytest.mark.parametrize("value,selected", [(0.006, True), (0.01, True), (0.005, False), (0.004, False)])
def test_piggymask_selects_an_earlier_weight_only_strictly_above_5e_3(value, selected):
    model = three_owner_model()
    model.eval()
    mask, module = model.masks["fc1"], model.maskable["fc1"]
    earlier, w = mask.owner == 1, raw_weight(module).detach()
    with torch.no_grad():
        for m in model.masks.values():
            m.piggymasks["2"].fill_(value)
        live = module.weight                       # the parametrised (effective) weight
        baked = mask.effective_for(w, 2)           # the task-view path
    for effective in (live, baked):
        expected = w[earlier] if selected else torch.zeros_like(w[earlier])
        assert torch.equal(effective[earlier], expected)
        assert torch.equal(effective[mask.owner == 2], w[mask.owner == 2])     # own: always
        assert (effective[mask.owner == 0] == 0).all()                          # free: never
    assert model.stats()["shared_ratio"] == (1.0 if selected else 0.0)


def test_piggymask_gradient_is_straight_through_on_earlier_entries_only():
    """d L / d piggy = dL/dW_eff * W on earlier entries (selected or not), 0 elsewhere;
    d L / d W = dL/dW_eff on own entries only (before mask_gradients)."""
    model = three_owner_model()
    model.train()
    for layer, mask in model.masks.items():   # half the earlier entries switched off
        with torch.no_grad():
            piggy = mask.piggymasks["2"]
            piggy.copy_(torch.where(torch.rand_like(piggy) < 0.5, 0.004, 0.01))
    for layer, module in model.maskable.items():
        mask, w = model.masks[layer], raw_weight(module)
        piggy = mask.piggymasks["2"]
        w.grad = piggy.grad = None
        upstream = torch.randn_like(w)
        (module.weight * upstream).sum().backward()
        own, earlier = mask.owner == 2, mask.owner == 1
        assert torch.equal(piggy.grad, torch.where(earlier, upstream * w.detach(), 0.0)), layer
        assert torch.equal(w.grad, torch.where(own, upstream, 0.0)), layer
        assert (piggy.grad[earlier & (piggy <= 5e-3)] != 0).any(), layer   # unselected entries still learn


@pytest.mark.parametrize("arch", ["lenet5", "perceiver_io"])
def test_first_task_gradient_reaches_only_its_own_entries_after_pruning(arch):
    """Task 1 has no piggymask: its effective weight's backward alone keeps pruned (free) entries at
    zero gradient, so pruning-retraining never moves them; mask_gradients adds L2 decay there only."""
    torch.manual_seed(0)
    model = CPGModel.create(arch, "demo")
    model.add_task(spec(1, "a"), CFG)
    model.prune_active_task(0.5)
    model.train()
    upstream = {}
    for layer, module in model.maskable.items():
        mask, w = model.masks[layer], raw_weight(module)
        w.grad = None
        upstream[layer] = torch.randn_like(w)
        (module.weight * upstream[layer]).sum().backward()
        assert (mask.owner == 0).any(), layer
        assert torch.equal(w.grad, torch.where(mask.owner == 1, upstream[layer], 0.0)), layer
    model.mask_gradients(weight_decay=0.1)
    for layer, module in model.maskable.items():
        w, own = raw_weight(module), model.masks[layer].owner == 1
        decayed = torch.where(own, upstream[layer] + 0.1 * w.detach(), 0.0)
        assert torch.allclose(w.grad, decayed, rtol=0, atol=1e-6), layer


def test_piggymask_adam_is_built_at_lr_mask_only_for_later_tasks():
    from utils.train import build_optimizers
    model = CPGModel.create("lenet5", "demo")
    model.add_task(spec(1, "a"), CFG)
    assert build_optimizers(model, 0.1, 1e-4, 5e-4)[1] is None
    model.add_task(spec(2, "b"), CFG)
    sgd, adam = build_optimizers(model, 0.1, 1e-4, 5e-4)
    assert isinstance(adam, torch.optim.Adam) and [g["lr"] for g in adam.param_groups] == [1e-4]
    piggies = {id(m.piggymasks["2"]) for m in model.masks.values()}
    assert {id(p) for p in adam.param_groups[0]["params"]} == piggies
    assert not piggies & {id(p) for g in sgd.param_groups for p in g["params"]}
    assert build_optimizers(model, 0.1, 0.0, 5e-4)[1] is None


@pytest.mark.parametrize("epochs", [10, 20])
def test_mask_lr_factor_drops_at_50_and_freezes_at_70_percent_when_the_task_owns_weights(epochs):
    from CPG_MM_main_normal import mask_lr_factor
    half, freeze = epochs // 2, epochs * 7 // 10
    owns = [mask_lr_factor(e, epochs, True) for e in range(epochs)]
    assert owns == [1.0] * half + [0.2] * (freeze - half) + [0.0] * (epochs - freeze)
    owns_nothing = [mask_lr_factor(e, epochs, False) for e in range(epochs)]
    assert owns_nothing == [1.0] * half + [0.2] * (epochs - half)
