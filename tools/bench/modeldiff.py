"""Seconds per (target, candidate) pair of the ModelDiff search: the original's loop vs step 3-1's.

    python -m tools.bench.modeldiff [--original-iterations N] [--archs lenet5 perceiver]

The original's settings: 100 profiling inputs, 100 iterations, epsilon 0.1, 32 x 32 images, 5 classes, on two
architectures built here from torch.nn / perceiver-pytorch (a LeNet-5-sized CNN and a small Perceiver). Both
searches make the same moves: one random element of one random input per iteration, kept if the global score
chg_a * chg_b * div_a * div_b strictly improves. The original re-runs the whole batch through both models for
X + eps*e and X - eps*e and scores on numpy/scipy; step 3-1's `search_single_moves` runs only the two proposals
and updates the score from cached outputs. A pair's time includes both DDVs and the distance.
"""
import numpy as np
import torch
from scipy.spatial import distance
from torch import nn

from tools.bench.harness import emit, timed
from utils.cli import ArgumentParser, positive_int
from utils.errors import run_main
from utils_pickaback.modeldiff import model_distance, search_single_moves

NUM_INPUTS, ITERATIONS, EPSILON, NUM_CLASSES, IMAGE_SIZE = 100, 100, 0.1, 5, 32


def get_args_parser():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original-iterations", type=positive_int, default=ITERATIONS,
                        help="iterations of the slow original search actually timed (extrapolated to 100)")
    parser.add_argument("--archs", nargs="+", choices=sorted(ARCHS), default=["lenet5", "perceiver"])
    return parser


def lenet5(seed):
    """PackNet LeNet-5 as the original's ModelDiff compares it (plain conv/linear, no BN)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 5), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, NUM_CLASSES)).eval()


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


def original_scorer(model_a, model_b, seeds):
    """The original's global objective of a batch, on numpy/scipy, re-running the whole batch."""
    @torch.no_grad()
    def outputs(model, inputs):
        return model(inputs).cpu().numpy()
    start_a, start_b = outputs(model_a, seeds), outputs(model_b, seeds)

    def score(inputs):
        out_a, out_b = outputs(model_a, inputs), outputs(model_b, inputs)
        chg = np.mean(distance.cdist(out_a, start_a).diagonal()) * np.mean(distance.cdist(out_b, start_b).diagonal())
        return chg * np.mean(distance.cdist(out_a, out_a)) * np.mean(distance.cdist(out_b, out_b))
    return score


def original_search(model_a, model_b, seeds, iterations, rng):
    score = original_scorer(model_a, model_b, seeds)
    inputs, current = seeds.clone(), score(seeds)
    for _ in range(iterations):
        position, index = rng.randint(0, inputs[0].numel()), rng.randint(0, inputs.shape[0])
        step = torch.zeros_like(inputs)
        step[index].view(-1)[position] = EPSILON
        right, left = inputs + step, inputs - step
        right_score, left_score = score(right), score(left)
        if right_score > current or left_score > current:
            inputs, current = (left, left_score) if left_score > right_score else (right, right_score)
    return inputs


def pair(search, model_a, model_b, seeds):
    """One pair as step 3-1 makes it: the search, then both DDVs and their distance; the searched inputs."""
    inputs = search(model_a, model_b, seeds)
    model_distance(model_a, model_b, inputs)
    return inputs


def bench_arch(name, original_iterations):
    target, candidate = ARCHS[name](0), ARCHS[name](1)
    seeds = torch.randn(NUM_INPUTS, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    pair(lambda a, b, x: x, target, candidate, seeds)          # warm-up (allocator, threads)
    single_s, single_inputs = timed(pair, lambda a, b, x: search_single_moves(
        a, b, x, epsilon=EPSILON, max_iterations=ITERATIONS, generator=torch.Generator().manual_seed(1),
        progress=False), target, candidate, seeds)
    measured_s, original_inputs = timed(pair, lambda a, b, x: original_search(
        a, b, x, original_iterations, np.random.RandomState(1)), target, candidate, seeds)
    original_s = measured_s * ITERATIONS / original_iterations
    score = original_scorer(target, candidate, seeds)
    print(f"{name}: original {measured_s:.3f} s for {original_iterations} iterations"
          + (f" -> {original_s:.3f} s/pair at {ITERATIONS} (linear extrapolation)" if original_iterations != ITERATIONS
             else "") + f"; step 3-1's {single_s:.3f} s/pair, {original_s / single_s:.1f}x faster; objective after "
          f"the search {score(original_inputs):.4g} (original) and {score(single_inputs):.4g} (step 3-1's)")
    return {"original_s_per_pair": round(original_s, 4), "single_s_per_pair": round(single_s, 4),
            "speedup_single": round(original_s / single_s, 1), "original_iterations_timed": original_iterations,
            "score_original": float(score(original_inputs)), "score_single": float(score(single_inputs))}


def main(args):
    print(f"settings: {NUM_INPUTS} inputs, {ITERATIONS} iterations, epsilon {EPSILON}, "
          f"{IMAGE_SIZE}x{IMAGE_SIZE} images, {torch.get_num_threads()} torch threads, CPU")
    return emit({name: bench_arch(name, args.original_iterations) for name in args.archs})


if __name__ == "__main__":
    run_main(main, get_args_parser)
