"""ModelDiff core: search reproducibility and validity, DDV distances, ranking direction."""
import copy

import pytest
import torch
from torch import nn

from utils.errors import UserError
from utils_pickaback.modeldiff import (
    cosine_distance, decision_distance_vectors, logits_distance, model_distance, normalised_image_range,
    search_single_moves)
from utils_pickaback.ranking import rank_candidates

VOCAB = 50
SEARCH = dict(epsilon=0.1, max_iterations=15, progress=False)


def decision_distance_vector(model, inputs, metric, pairs="halves"):
    """One model's decision distance vector of one metric on `inputs`."""
    with torch.no_grad():
        return decision_distance_vectors(model(inputs).float(), pairs)[metric]


def small_cnn(seed, num_classes=5):
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 5), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 84), nn.ReLU(), nn.Linear(84, num_classes))
    return model.eval()


class BagOfTokens(nn.Module):
    """Mean of the non-padding token embeddings -> linear head."""

    def __init__(self, seed, num_classes=4):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(VOCAB, 16)
        self.head = nn.Linear(16, num_classes)

    def forward(self, tokens):
        mask = (tokens != 0).unsqueeze(-1).float()
        pooled = (self.embed(tokens) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled)


def noisy_copy(model, scale, seed):
    torch.manual_seed(seed)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p in twin.parameters():
            p.add_(scale * p.std() * torch.randn_like(p))
    return twin


def image_seeds(n=20, seed=0):
    low, high = normalised_image_range((0.5, 0.4, 0.3), (0.25, 0.2, 0.3))
    unit = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    return low + unit * (high - low), (low, high)


def text_seeds(n=20, length=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, VOCAB, (n, length), generator=gen)
    lengths = torch.randint(1, length + 1, (n,), generator=gen)
    tokens[torch.arange(length) >= lengths.unsqueeze(1)] = 0
    tokens[0] = 0                                  # an all-padding row must survive untouched
    return tokens


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------------
# the original's search recomputed from scratch, with search_single_moves's order of random draws

@torch.no_grad()
def reference_single_moves(model_a, model_b, seeds, *, epsilon, max_iterations, generator, valid_range=None,
                           vocab_size=None):
    """Every iteration builds the two whole proposed batches, runs them through both models and scores
    them with the global objective from scratch, as the original does."""
    start_a, start_b = model_a(seeds).double(), model_b(seeds).double()

    def score(batch):
        out_a, out_b = model_a(batch).double(), model_b(batch).double()
        chg_a, chg_b = (out_a - start_a).norm(dim=1).mean(), (out_b - start_b).norm(dim=1).mean()
        div_a = torch.cdist(out_a, out_a, compute_mode="donot_use_mm_for_euclid_dist").mean()
        div_b = torch.cdist(out_b, out_b, compute_mode="donot_use_mm_for_euclid_dist").mean()
        return float(chg_a) * float(chg_b) * float(div_a) * float(div_b)

    inputs = seeds.clone()
    current = score(inputs)
    for _ in range(max_iterations):
        n = int(torch.randint(0, inputs.shape[0], (1,), generator=generator))
        if vocab_size is not None:                                 # text
            real = (inputs[n] != 0).nonzero().squeeze(1)
            if real.numel() == 0:
                continue
            batches = []
            for _ in range(2):
                k = real[int(torch.randint(0, real.numel(), (1,), generator=generator))]
                s = int(torch.randint(1, vocab_size - 1, (1,), generator=generator))
                batch = inputs.clone()
                batch[n, k] = 1 + (batch[n, k] - 1 + s) % (vocab_size - 1)
                batches.append(batch)
        else:
            e = int(torch.randint(0, inputs[0].numel(), (1,), generator=generator))
            step = torch.zeros_like(inputs)
            step[n].view(-1)[e] = epsilon
            batches = [inputs + step, inputs - step]
            if valid_range is not None:
                batches = [torch.maximum(torch.minimum(b, valid_range[1]), valid_range[0]) for b in batches]
        right, left = score(batches[0]), score(batches[1])
        if right <= current and left <= current:
            continue
        # the original keeps X+e only when it strictly beats X-e: ties go to X-e
        inputs, current = (batches[0], right) if right > left else (batches[1], left)
    return inputs


# float64 models: kernels round differently for a batch of 2 and a whole batch, and in float32 that noise
# (~1e-4 of a one-pixel change of these untrained models' logits) can flip a near-tie between X+e and X-e.

def test_single_moves_match_the_from_scratch_original_on_images():
    a, b = small_cnn(0).double(), small_cnn(1).double()
    seeds, bounds = image_seeds(n=21)               # odd: the last pair is padded
    seeds[:, :, :8, :8] = bounds[1]                 # boundary elements: the +epsilon move clips to a no-op
    seeds, bounds = seeds.double(), tuple(bound.double() for bound in bounds)
    settings = dict(epsilon=0.1, max_iterations=200, valid_range=bounds)
    fast = search_single_moves(a, b, seeds, generator=gen(4), progress=False, **settings)
    slow = reference_single_moves(a, b, seeds, generator=gen(4), **settings)
    assert torch.equal(fast, slow)
    moved = (fast != seeds).flatten(1).sum(1)
    assert 50 < int(moved.sum()) <= 200             # many moves kept, at most one element per iteration
    assert (fast >= bounds[0]).all() and (fast <= bounds[1]).all()


def test_single_moves_match_the_from_scratch_original_on_text():
    a, b = BagOfTokens(0).double(), BagOfTokens(1, num_classes=6).double()
    seeds = text_seeds(n=12)                        # row 0 is all padding: those iterations are skipped
    fast = search_single_moves(a, b, seeds, epsilon=0.1, max_iterations=200, generator=gen(6),
                               vocab_size=VOCAB, progress=False)
    slow = reference_single_moves(a, b, seeds, epsilon=0.1, max_iterations=200, generator=gen(6),
                                  vocab_size=VOCAB)
    assert torch.equal(fast, slow)
    assert not torch.equal(fast, seeds)
    assert torch.equal(fast == 0, seeds == 0)       # padding untouched, real tokens stay real
    assert fast.min() >= 0 and fast.max() < VOCAB


def test_single_moves_same_seed_same_result_and_errors():
    a, b = small_cnn(0), small_cnn(1)
    seeds, bounds = image_seeds()
    first = search_single_moves(a, b, seeds, generator=gen(7), valid_range=bounds, **SEARCH)
    again = search_single_moves(a, b, seeds, generator=gen(7), valid_range=bounds, **SEARCH)
    other = search_single_moves(a, b, seeds, generator=gen(8), valid_range=bounds, **SEARCH)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert torch.equal(seeds, image_seeds()[0])    # the seeds are not modified in place
    with pytest.raises(UserError):
        search_single_moves(a, b, seeds[:1], generator=gen(0), **SEARCH)
    with pytest.raises(UserError):
        search_single_moves(a, b, seeds, epsilon=0.0, max_iterations=1, generator=gen(0), progress=False)
    with pytest.raises(UserError):
        search_single_moves(BagOfTokens(0), BagOfTokens(1), text_seeds(), epsilon=0.1, max_iterations=1,
                            generator=gen(0), vocab_size=None, progress=False)


class SignBlind(nn.Module):
    """A linear model of |x|: moving an element from 0 by +epsilon or by -epsilon gives the same logits."""

    def __init__(self, seed, size, num_classes=5):
        super().__init__()
        torch.manual_seed(seed)
        self.head = nn.Linear(size, num_classes).double()

    def forward(self, x):
        return self.head(x.abs().flatten(1))


def test_ties_between_plus_and_minus_epsilon_go_to_minus_epsilon():
    """From all-zero seeds, every first move of an element is an exact tie between X+e and X-e: the
    original keeps X+e only when it scores strictly higher, so no element may ever become positive."""
    seeds = torch.zeros(6, 3, 4, 4, dtype=torch.float64)
    a, b = SignBlind(0, seeds[0].numel()), SignBlind(1, seeds[0].numel())
    settings = dict(epsilon=0.1, max_iterations=30)
    single = search_single_moves(a, b, seeds, generator=gen(2), progress=False, **settings)
    assert torch.equal(single, reference_single_moves(a, b, seeds, generator=gen(2), **settings))
    assert (single < 0).any()                       # moves were kept ...
    assert not (single > 0).any()                   # ... and every tie went to -epsilon


# ---------------------------------------------------------------------------------------------------

def test_model_compared_with_itself_has_distance_zero():
    model = small_cnn(0)
    seeds, bounds = image_seeds()
    inputs = search_single_moves(model, model, seeds, generator=gen(1), valid_range=bounds, **SEARCH)
    assert model_distance(model, model, inputs) == {"euc": 0.0, "cos": 0.0}


def test_noisy_copy_ranks_first_when_similar_and_not_first_when_dissimilar():
    target = small_cnn(0)
    candidates = {"twin": noisy_copy(target, 0.05, seed=9)}
    candidates.update({f"random{i}": small_cnn(100 + i) for i in range(3)})
    seeds, bounds = image_seeds()
    distances = {name: model_distance(target, model, search_single_moves(
                     target, model, seeds, generator=gen(1), valid_range=bounds, **SEARCH))["euc"]
                 for name, model in candidates.items()}
    assert distances["twin"] < min(v for k, v in distances.items() if k != "twin")
    assert rank_candidates(distances, "similar")[0] == "twin"
    assert rank_candidates(distances, "dissimilar")[0] != "twin"
    assert rank_candidates(distances, "dissimilar")[-1] == "twin"


def test_ddv_pairs_first_half_with_second_half():
    logits = torch.tensor([[1.0, 0.0], [0.0, 2.0], [4.0, 0.0], [0.0, 1.0]])
    model = lambda x: x                                       # identity: inputs are the logits
    assert torch.allclose(decision_distance_vector(model, logits, "euc"), torch.tensor([3.0, 1.0]).double())
    assert torch.allclose(decision_distance_vector(model, logits, "cos"), torch.tensor([0.0, 0.0]).double())


def test_ddv_of_all_pairs_holds_every_pair_in_order():
    logits = torch.tensor([[1.0, 0.0], [0.0, 2.0], [4.0, 0.0], [0.0, 1.0]])
    model = lambda x: x
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    euc = torch.tensor([(logits[i] - logits[j]).norm() for i, j in pairs]).double()
    cos = torch.tensor([1.0 - torch.nn.functional.cosine_similarity(logits[i], logits[j], dim=0)
                        for i, j in pairs]).double()
    assert torch.allclose(decision_distance_vector(model, logits, "euc", pairs="all"), euc)
    assert torch.allclose(decision_distance_vector(model, logits, "cos", pairs="all"), cos, atol=1e-7)
    a, b = small_cnn(0), small_cnn(1)
    inputs, _ = image_seeds(n=20)
    assert model_distance(a, b, inputs, pairs="all") != model_distance(a, b, inputs)
    with pytest.raises(UserError):
        decision_distance_vector(model, logits, "euc", pairs="some")


def test_cosine_distance_edge_cases_and_ranking_rules():
    assert cosine_distance(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0])) == pytest.approx(0.0, abs=1e-12)
    assert cosine_distance(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])) == pytest.approx(1.0)
    assert cosine_distance(torch.zeros(3), torch.zeros(3)) == 0.0
    distances = {"a": 0.3, "b": 0.1, "c": float("nan"), "d": 0.9}
    assert rank_candidates(distances, "similar") == ["b", "a", "d", "c"]
    assert rank_candidates(distances, "dissimilar") == ["d", "a", "b", "c"]
    with pytest.raises(UserError):
        rank_candidates(distances, "closest")


def test_paired_inputs_give_each_model_its_own_modality():
    """An image model on images and a text model on their captions: each DDV is its own model's on its own
    inputs, so a text model that decides like the image model on the paired samples is at distance 0."""
    image_model = small_cnn(0)
    images, _ = image_seeds(n=20)
    captions = text_seeds(n=20)
    mimic = MimicOnTokens(image_model(images).detach(), captions)
    assert model_distance(image_model, mimic, images, inputs_b=captions) == {"euc": 0.0, "cos": 0.0}
    text_model = BagOfTokens(3, num_classes=5)
    ddv_a = decision_distance_vector(image_model, images, "euc")
    ddv_b = decision_distance_vector(text_model, captions, "euc")
    expected = cosine_distance(ddv_a, ddv_b)
    assert model_distance(image_model, text_model, images, inputs_b=captions)["euc"] == pytest.approx(expected)


def test_distance_from_logits_is_the_distance_of_the_models_ddvs():
    """Step 3-1 computes a pair's distance from outputs it already holds: the numbers of running the models."""
    a, b = small_cnn(0), small_cnn(1, num_classes=3)
    inputs, _ = image_seeds(n=20)
    with torch.no_grad():
        distances = logits_distance(a(inputs), b(inputs))
    for metric in ("euc", "cos"):
        ddv_a, ddv_b = decision_distance_vector(a, inputs, metric), decision_distance_vector(b, inputs, metric)
        assert distances[metric] == cosine_distance(ddv_a, ddv_b)
    assert distances == model_distance(a, b, inputs)


class MimicOnTokens(nn.Module):
    """A 'text model' that answers each of the given token rows with the given logits."""

    def __init__(self, logits, tokens):
        super().__init__()
        self.answers = {tuple(row.tolist()): out for row, out in zip(tokens, logits)}

    def forward(self, tokens):
        return torch.stack([self.answers[tuple(row.tolist())] for row in tokens])
