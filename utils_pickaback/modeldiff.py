"""ModelDiff: profiling-input search, decision distance vectors (DDVs), model distance, ranking.

Models are plain callables `model(x) -> logits` (B x C, C may differ between the two models), in eval mode
on the inputs' device. Inputs are one batch: images float32 B x 3 x H x W, or text int64 B x T, 0 = padding.

Score of a batch X (the original's objective): chg_a * chg_b * div_a * div_b, where chg_j = mean_n
||f_j(X_n) - f_j(X0_n)|| (X0 = the start inputs, ModelDiff's "seed inputs") and div_j = mean pairwise
Euclidean distance of f_j's logits on X.
`search_single_moves` is the original's hill climb, move for move, computed incrementally: only the moved
input goes through each model, the rest is cached, and the score is the number a full recomputation gives
(tested against a from-scratch re-implementation; its speed-up over the original's loop: docs/results.md).
All randomness comes from the caller's torch.Generator, so a search is reproducible. DDV: pairs (k, k + n/2)
as the original, or every pair; Euclidean or cosine distance of each pair's logits; model distance =
cosine distance between the two models' DDVs (0 = identical decisions).
"""
import torch
from tqdm import tqdm

from utils.errors import UserError

METRICS = ("euc", "cos")


# ---------------------------------------------------------------------------------------------------
# profiling-input search

def search_single_moves(model_a, model_b, start_inputs, *, epsilon, max_iterations, generator, valid_range=None,
                        vocab_size=None, progress=True):
    """The original's hill climb (one move of one input per iteration) on the global score, incrementally.

    Per iteration, with all draws from `generator` in this order:
    * n = randint(0, batch): the input to move;
    * images: e = randint(0, elements of one input); proposals X_n + epsilon*e and X_n - epsilon*e, each
      clipped to `valid_range` = (low, high), floats or tensors broadcastable to one input (e.g. the 3 x 1 x 1
      per-channel bounds of `normalised_image_range`), None = no clipping;
    * text: if input n is all padding, nothing more is drawn and the iteration is skipped; otherwise,
      twice (one per proposal): k = randint(0, number of real tokens of X_n), s = randint(1, vocab - 1);
      the k-th real token t becomes 1 + (t - 1 + s) mod (vocab - 1), a different id in [1, vocab).
    The better proposal replaces X_n if its global score strictly beats the current one (a proposal equal
    to X_n never does), else the iteration is skipped; the first proposal (+epsilon) is the better one
    only when its score is strictly greater, so ties go to the second (-epsilon), as in the original.
    Only the 2 proposals are run through each model.
    """
    is_text = _check_search_arguments(start_inputs, epsilon, max_iterations, vocab_size)
    if not is_text and valid_range is not None:
        valid_range = tuple(torch.as_tensor(b, dtype=start_inputs.dtype, device=start_inputs.device)
                            for b in valid_range)

    inputs = start_inputs.clone()
    caches = [_SearchCache(_forward_in_pairs(model, inputs)) for model in (model_a, model_b)]
    current = 0.0                                             # chg = 0 at the start inputs
    n_inputs, size = inputs.shape[0], inputs[0].numel()
    for _ in tqdm(range(max_iterations), desc="profiling-input search", leave=False, disable=not progress):
        n = int(torch.randint(0, n_inputs, (1,), generator=generator))
        if is_text:
            proposals = _single_token_replacements(inputs[n], vocab_size, generator)
            if proposals is None:
                continue
        else:
            proposals = _single_pixel_moves(inputs[n], size, epsilon, valid_range, generator)
        fresh = [not torch.equal(p, inputs[n]) for p in proposals]
        if not any(fresh):
            continue
        logits = [_forward_in_pairs(model, proposals) for model in (model_a, model_b)]
        updates = [[cache.propose(n, out[i]) for cache, out in zip(caches, logits)] for i in range(2)]
        scores = [_global_score(update) if fresh[i] else current for i, update in enumerate(updates)]
        best = 0 if scores[0] > scores[1] else 1              # ties go to -epsilon, as the original
        if not scores[best] > current:
            continue
        inputs[n] = proposals[best]
        for cache, update in zip(caches, updates[best]):
            cache.accept(update)
        current = scores[best]
    return inputs


class _SearchCache:
    """One model's logits on the current inputs, each input's change from its start input, and the distance matrix."""

    def __init__(self, logits):
        self.start = logits
        self.logits = logits.clone()
        self.change = torch.zeros(logits.shape[0], dtype=logits.dtype, device=logits.device)
        self.distances = _pairwise_distances(logits, logits)

    def propose(self, n, out):
        """(n, logits, change vector, distance matrix) with input n's logits replaced by `out` (C)."""
        logits = self.logits.clone()
        logits[n] = out
        change = self.change.clone()
        change[n] = (out - self.start[n]).norm()
        row = _pairwise_distances(out.unsqueeze(0), logits)[0]
        distances = self.distances.clone()
        distances[n, :] = row
        distances[:, n] = row
        return logits, change, distances

    def accept(self, update):
        self.logits, self.change, self.distances = update


@torch.no_grad()
def _forward_in_pairs(model, inputs):
    """float64 logits, always computed in batches of exactly 2 (an odd tail padded with a copy).

    Kernels round differently for different batch sizes; with one batch size an input's logits do not
    depend on which batch computed them, so a move the model cannot see gives exactly the cached logits
    and, as in the original, is no improvement.
    """
    odd = inputs.shape[0] % 2
    if odd:
        inputs = torch.cat([inputs, inputs[-1:]])
    logits = torch.cat([model(pair).double() for pair in inputs.split(2)])
    return logits[:-1] if odd else logits


def _global_score(updates):
    """chg_a * chg_b * div_a * div_b from the two models' proposed (logits, change, distances)."""
    score = 1.0
    for _, change, distances in updates:
        score *= float(change.mean()) * float(distances.mean())
    return score


def _pairwise_distances(x, y):
    # direct differences, not the matmul shortcut, so an entry depends only on its two rows: a replaced
    # row gives bit-for-bit the entries a full recomputation would, and the diagonal is exactly 0
    return torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")


def _single_pixel_moves(image, size, epsilon, valid_range, generator):
    """2 x ... : `image` with one random element moved by +epsilon and by -epsilon, clipped."""
    element = int(torch.randint(0, size, (1,), generator=generator))
    proposals = torch.stack([image, image])
    proposals[0].view(-1)[element] += epsilon
    proposals[1].view(-1)[element] -= epsilon
    if valid_range is not None:
        low, high = valid_range
        proposals = torch.maximum(torch.minimum(proposals, high), low)
    return proposals


def _single_token_replacements(tokens, vocab_size, generator):
    """2 x T: `tokens` with one random real token replaced (independently per proposal); None if all padding."""
    real = (tokens != 0).nonzero().squeeze(1)
    if real.numel() == 0:
        return None
    proposals = torch.stack([tokens, tokens])
    for proposal in proposals:
        position = real[int(torch.randint(0, real.numel(), (1,), generator=generator))]
        shift = int(torch.randint(1, vocab_size - 1, (1,), generator=generator))
        proposal[position] = 1 + (proposal[position] - 1 + shift) % (vocab_size - 1)
    return proposals


def normalised_image_range(mean, std):
    """(low, high) per-channel bounds (3 x 1 x 1) of images in [0, 1] after (x - mean) / std."""
    mean = torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return (0.0 - mean) / std, (1.0 - mean) / std


def _check_search_arguments(start_inputs, epsilon, max_iterations, vocab_size):
    """Raise UserError on unusable search settings; True for text inputs, False for images."""
    if start_inputs.dim() < 2 or start_inputs.shape[0] < 2:
        raise UserError("ModelDiff needs a batch of at least 2 start inputs.")
    if max_iterations < 0:
        raise UserError("max_iterations must be zero or positive.")
    is_text = not start_inputs.is_floating_point()
    if is_text:
        _check_token_ids(start_inputs, vocab_size)
    elif epsilon <= 0:
        raise UserError("epsilon must be positive for image inputs.")
    return is_text


def _check_token_ids(tokens, vocab_size):
    if vocab_size is None or vocab_size < 3:
        raise UserError("text inputs need vocab_size >= 3 (id 0 is padding) for the ModelDiff search.")
    if tokens.min() < 0 or tokens.max() >= vocab_size:
        raise UserError(f"start inputs' token ids must lie in [0, {vocab_size}).")


@torch.no_grad()
def _forward(model, inputs):
    return model(inputs).float()


# ---------------------------------------------------------------------------------------------------
# decision distance vectors and model distance

PAIRINGS = ("halves", "all")


def decision_distance_vectors(logits, pairs="halves"):
    """{"euc": DDV, "cos": DDV} of one model's logits (n x C), float64: the Euclidean and cosine distances of
    the pairs (k, k + n/2) (`pairs="halves"`, ModelDiff's n/2 pairs; with an odd n the last input has no
    partner and is left out) or of every pair i < j (`pairs="all"`, n(n - 1)/2 entries from the same
    outputs: each distance is a noisy sample of how the model tells inputs apart, and more of them make the
    two models' DDVs differ by their decisions more than by which inputs happened to be paired).
    """
    if logits.shape[0] < 2:
        raise UserError("a decision distance vector needs at least 2 profiling inputs.")
    if pairs not in PAIRINGS:
        raise UserError(f"unknown DDV pairing {pairs!r}; choose one of {', '.join(PAIRINGS)}.")
    logits = logits.double()
    if pairs == "all":
        unit = torch.nn.functional.normalize(logits, dim=1, eps=1e-12)
        upper = torch.triu_indices(len(logits), len(logits), offset=1, device=logits.device)
        return {"euc": torch.nn.functional.pdist(logits), "cos": 1.0 - (unit @ unit.T)[upper[0], upper[1]]}
    half = logits.shape[0] // 2
    first, second = logits[:half], logits[half:2 * half]
    return {
        "euc": (first - second).norm(dim=1),
        "cos": 1.0 - torch.nn.functional.cosine_similarity(first, second, dim=1, eps=1e-12),
    }


def cosine_distance(u, v):
    """1 - cosine similarity of two DDVs (scipy's definition), in [0, 2].

    Identical vectors give exactly 0; a zero vector (a model whose decisions never differ) is 0 away
    from another zero vector and 1 away from anything else, where scipy would return NaN.
    """
    u, v = u.double().flatten(), v.double().flatten()
    if torch.equal(u, v):
        return 0.0
    norm_u, norm_v = u.norm(), v.norm()
    if norm_u == 0 or norm_v == 0:
        return 0.0 if norm_u == norm_v else 1.0
    similarity = torch.dot(u, v) / (norm_u * norm_v)
    return float((1.0 - similarity).clamp(0.0, 2.0))


def model_distance(model_a, model_b, inputs, inputs_b=None, pairs="halves"):
    """{"euc": d, "cos": d}: cosine distance between the two models' Euclidean DDVs and cosine DDVs.

    `inputs_b` (default: `inputs`) are the same samples as `model_b` reads them, e.g. the captions of the
    images in `inputs`: the DDVs of two models of different modalities then compare the same sample pairs.
    `pairs`: which input pairs the DDVs hold (`decision_distance_vectors`).
    """
    logits_a = _forward(model_a, inputs)
    logits_b = _forward(model_b, inputs if inputs_b is None else inputs_b)
    return logits_distance(logits_a, logits_b, pairs=pairs)


def logits_distance(logits_a, logits_b, pairs="halves"):
    """model_distance of two models from their logits (n x C_a, n x C_b) on the same samples: a caller that
    already holds them (step 3-1, one forward per model on a target's probes) needs no forward more. Any
    per-sample outputs work the same way (step 3-1's --ddv_outputs features passes the features the heads read)."""
    ddvs_a, ddvs_b = decision_distance_vectors(logits_a, pairs), decision_distance_vectors(logits_b, pairs)
    return {metric: cosine_distance(ddvs_a[metric], ddvs_b[metric]) for metric in METRICS}
