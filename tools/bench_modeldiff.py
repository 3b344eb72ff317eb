"""Seconds per (target, candidate) pair of the ModelDiff searches: the original's loop, single-move, batched.

Settings are the original's: 100 profiling inputs, 100 iterations, epsilon 0.1,
32 x 32 images, 5 classes. Two architectures, built here from torch.nn / perceiver-pytorch so the bench
does not depend on models/: a LeNet-5-sized CNN and a small Perceiver. Three searches:
* original: re-implements the original's hill climbing as §5.1 describes it: one random element of one
  random input per iteration, the whole batch re-run through both models for X + eps*e and X - eps*e,
  global score chg_a * chg_b * div_a * div_b on numpy/scipy;
* single (`search_single_moves`): the same algorithm and number of moves, incremental (only the 2
  proposals for the moved input are run through each model);
* batched (`search_profiling_inputs`): per iteration both models forward 2 x 100 inputs, as the
  original, but a move is proposed for EVERY input, so the bench also reports the cost at an equal
  number of proposed moves (original iterations x n, extrapolated) and at an equal final score.

Usage: .venv/bin/python -m tools.bench_modeldiff [--original-iterations N] [--archs lenet5 perceiver]
The last output line is one JSON object, per architecture.
"""
import json
import time

import numpy as np
import torch
from scipy.spatial import distance
from torch import nn

from utils.cli import ArgumentParser, positive_int
from utils.errors import run_main
from utils_pickaback.modeldiff import (
    model_distance, search_profiling_inputs, search_single_moves)

NUM_INPUTS = 100
ITERATIONS = 100
EPSILON = 0.1
NUM_CLASSES = 5
IMAGE_SIZE = 32
FORWARD_BATCH = 100     # the batched search forwards 2 x 100 proposals in chunks of the original's batch


def lenet5(seed):
    """PackNet LeNet-5 as the original's ModelDiff compares it (plain conv/linear, no BN)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 5), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, NUM_CLASSES)).eval()


class SmallPerceiver(nn.Module):
    """perceiver-pytorch Perceiver on B x 3 x H x W images (it wants channels last)."""

    def __init__(self, seed):
        super().__init__()
        from perceiver_pytorch import Perceiver
        torch.manual_seed(seed)
        self.net = Perceiver(num_freq_bands=6, max_freq=10.0, depth=1, input_channels=3, input_axis=2,
                             num_latents=32, latent_dim=128, cross_dim_head=32, latent_heads=4,
                             latent_dim_head=32, num_classes=NUM_CLASSES)

    def forward(self, images):
        return self.net(images.permute(0, 2, 3, 1))


ARCHS = {"lenet5": lenet5, "perceiver": lambda seed: SmallPerceiver(seed).eval()}


# ---------------------------------------------------------------------------------------------------
# the original's search, element by element

@torch.no_grad()
def _logits_numpy(model, inputs):
    return model(inputs).cpu().numpy()


def original_scorer(model_a, model_b, seeds):
    """The original's global objective chg_a * chg_b * div_a * div_b of a batch, as a function."""
    start_a, start_b = _logits_numpy(model_a, seeds), _logits_numpy(model_b, seeds)

    def score(inputs):
        out_a, out_b = _logits_numpy(model_a, inputs), _logits_numpy(model_b, inputs)
        chg_a = np.mean(distance.cdist(out_a, start_a).diagonal())
        chg_b = np.mean(distance.cdist(out_b, start_b).diagonal())
        div_a = np.mean(distance.cdist(out_a, out_a))
        div_b = np.mean(distance.cdist(out_b, out_b))
        return chg_a * chg_b * div_a * div_b
    return score


def original_search(model_a, model_b, seeds, epsilon, iterations, rng):
    score = original_scorer(model_a, model_b, seeds)
    inputs = seeds.clone()
    current = score(inputs)
    input_size = inputs[0].numel()
    for _ in range(iterations):
        position = rng.randint(0, input_size)
        index = rng.randint(0, inputs.shape[0])
        step = torch.zeros_like(inputs)
        step[index].view(-1)[position] = epsilon
        right, left = inputs + step, inputs - step
        right_score, left_score = score(right), score(left)
        if right_score <= current and left_score <= current:
            continue
        if left_score > right_score:
            inputs, current = left, left_score
        else:
            inputs, current = right, right_score
    return inputs


# ---------------------------------------------------------------------------------------------------

def time_pair(search, model_a, model_b, seeds):
    """(seconds for one pair: search + both DDVs + distance, the searched inputs)."""
    start = time.perf_counter()
    inputs = search(model_a, model_b, seeds)
    model_distance(model_a, model_b, inputs)
    return time.perf_counter() - start, inputs


def batched_search(iterations):
    def search(a, b, x):
        return search_profiling_inputs(a, b, x, epsilon=EPSILON, max_iterations=iterations,
                                       generator=torch.Generator().manual_seed(1),
                                       forward_batch_size=FORWARD_BATCH, progress=False)
    return search


def single_search(iterations):
    def search(a, b, x):
        return search_single_moves(a, b, x, epsilon=EPSILON, max_iterations=iterations,
                                   generator=torch.Generator().manual_seed(1), progress=False)
    return search


def iterations_to_reach(score, target_score, model_a, model_b, seeds):
    """Fewest batched iterations among 1, 2, 4, ..., 100 whose inputs score at least `target_score` (same
    generator, so a run of k iterations is the prefix of a longer one), and the seconds of that run;
    (None, None) if 100 do not suffice. Doubling keeps the probe cost at about two full searches."""
    for iterations in sorted({min(2 ** k, ITERATIONS) for k in range(8)}):
        seconds, inputs = time_pair(batched_search(iterations), model_a, model_b, seeds)
        if score(inputs) >= target_score:
            return iterations, seconds
    return None, None


def bench_arch(name, original_iterations):
    build = ARCHS[name]
    target, candidate = build(0), build(1)
    seeds = torch.randn(NUM_INPUTS, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))

    def original(a, b, x):
        return original_search(a, b, x, EPSILON, original_iterations, np.random.RandomState(1))

    time_pair(lambda a, b, x: x, target, candidate, seeds)          # warm-up (allocator, threads)
    batched_s, batched_inputs = time_pair(batched_search(ITERATIONS), target, candidate, seeds)
    single_s, single_inputs = time_pair(single_search(ITERATIONS), target, candidate, seeds)
    measured_s, original_inputs = time_pair(original, target, candidate, seeds)
    score = original_scorer(target, candidate, seeds)
    original_score, batched_score = score(original_inputs), score(batched_inputs)
    single_score = score(single_inputs)
    needed, needed_s = iterations_to_reach(score, original_score, target, candidate, seeds)
    original_s = measured_s * ITERATIONS / original_iterations
    equal_moves_s = original_s * NUM_INPUTS                          # n times the iterations, linear
    print(f"{name}: original {measured_s:.3f} s for {original_iterations} iterations"
          + (f" -> {original_s:.3f} s/pair at {ITERATIONS} (linear extrapolation)"
             if original_iterations != ITERATIONS else " (measured, not extrapolated)")
          + f"; single-move {single_s:.3f} s/pair; batched {batched_s:.3f} s/pair")
    print(f"{name}: single-move (same algorithm, same {ITERATIONS} moves) speed-up {original_s / single_s:.1f}x")
    print(f"{name}: batched speed-up at equal iterations {original_s / batched_s:.2f}x; at an equal number of "
          f"proposed moves ({NUM_INPUTS * ITERATIONS} original iterations, extrapolated) "
          f"{equal_moves_s / batched_s:.0f}x")
    print(f"{name}: original objective after the search: original {original_score:.4g} "
          f"({original_iterations} iterations), single-move {single_score:.4g}, batched {batched_score:.4g} "
          f"({ITERATIONS} iterations each); "
          f"batched reaches the original's score within {needed} iteration(s) (probing 1, 2, 4, ...) in "
          + (f"{needed_s:.3f} s -> speed-up at equal score {measured_s / needed_s:.0f}x" if needed else "-"))
    return {"original_s_per_pair": round(original_s, 4), "single_s_per_pair": round(single_s, 4),
            "batched_s_per_pair": round(batched_s, 4),
            "speedup_single": round(original_s / single_s, 1), "speedup": round(original_s / batched_s, 2),
            "speedup_equal_proposed_moves": round(equal_moves_s / batched_s, 1),
            "speedup_equal_score": round(measured_s / needed_s, 1) if needed else None,
            "original_iterations_timed": original_iterations,
            "score_original": float(original_score), "score_single": float(single_score),
            "score_batched": float(batched_score)}


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original-iterations", type=positive_int, default=ITERATIONS,
                        help="iterations of the slow original search actually timed (extrapolated to 100)")
    parser.add_argument("--archs", nargs="+", choices=sorted(ARCHS), default=["lenet5", "perceiver"])
    args = parser.parse_args()
    print(f"settings: {NUM_INPUTS} inputs, {ITERATIONS} iterations, epsilon {EPSILON}, "
          f"{IMAGE_SIZE}x{IMAGE_SIZE} images, {torch.get_num_threads()} torch threads, CPU")
    results = {name: bench_arch(name, args.original_iterations) for name in args.archs}
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    run_main(main)
