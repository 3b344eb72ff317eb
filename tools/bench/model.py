"""Train-step throughput of the CPG models: masked vs plain, i.e. what CPG's ownership masks cost.

    python -m tools.bench.model [--steps-paper 5] [--steps-demo 15] [--archs ...] [--profiles ...]

For each arch and profile, on 32x32 images with batch 32:
* masked: a CPGModel whose task 1 is pruned to 50% and whose active task 2 trains with its piggymask (the
  training loop's optimisers, mask_gradients every step), i.e. the full CPG training step;
* plain: the same architecture at the same width with no parametrisation, (fused) SGD over everything.
Steps of the models alternate and the fastest step of each is reported: on a shared machine other processes
only ever add time. overhead = plain / masked throughput - 1.
"""
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from models.cpg import ARCHS, CPGModel, build_body
from models.perceiver_io import PROFILES
from tools.bench.harness import emit, timed
from utils.cli import ArgumentParser, positive_int
from utils.errors import run_main
from utils.train import build_optimizers

BATCH, IMAGE_SIZE, CLASSES = 32, 32, 10
CFG = SimpleNamespace(image_size=IMAGE_SIZE, image_patch=None, vocab_size=1000, max_text_length=32)


def get_args_parser():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps-paper", type=positive_int, default=5, help="timed steps per model at the paper profile")
    parser.add_argument("--steps-demo", type=positive_int, default=15, help="timed steps per model at the demo profile")
    parser.add_argument("--archs", nargs="+", default=sorted(ARCHS), choices=sorted(ARCHS))
    parser.add_argument("--profiles", nargs="+", default=sorted(PROFILES), choices=sorted(PROFILES))
    return parser


def task(name):
    return SimpleNamespace(name=name, modality="image", num_classes=CLASSES)


def masked_stepper(arch, profile):
    model = CPGModel.create(arch, profile)
    model.add_task(task("first"), CFG)
    model.prune_active_task(0.5)
    model.add_task(task("second"), CFG)
    model.train()
    sgd, adam = build_optimizers(model, lr=0.01, lr_mask=1e-4, weight_decay=5e-4)

    def step(x, y):
        sgd.zero_grad(set_to_none=True)
        adam.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        model.mask_gradients(5e-4)
        sgd.step()
        adam.step()
    return step


def plain_stepper(arch, profile):
    body = build_body(arch, profile, 1.0)
    body.add_task_modules("second", "image", CLASSES, {"image_size": IMAGE_SIZE}, 1.0)
    body.train()
    sgd = torch.optim.SGD(body.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4, fused=True)

    def step(x, y):
        sgd.zero_grad(set_to_none=True)
        F.cross_entropy(body(x, "second"), y).backward()
        sgd.step()
    return step


def bench(arch, profile, steps):
    torch.manual_seed(0)
    x, y = torch.randn(BATCH, 3, IMAGE_SIZE, IMAGE_SIZE), torch.randint(0, CLASSES, (BATCH,))
    steppers = {"masked": masked_stepper(arch, profile), "plain": plain_stepper(arch, profile)}
    for step in steppers.values():   # warm-up: allocator, kernels, optimiser state
        step(x, y)
    times = {name: [] for name in steppers}
    for _ in range(steps):   # alternating, so a busy spell of the machine slows every model alike
        for name, step in steppers.items():
            times[name].append(timed(step, x, y)[0])
    rate = {name: BATCH / min(seconds) for name, seconds in times.items()}
    return {"arch": arch, "profile": profile, "masked_samples_per_s": round(rate["masked"], 1),
            "plain_samples_per_s": round(rate["plain"], 1), "overhead": round(rate["plain"] / rate["masked"] - 1, 4)}


def main(args):
    rows = [bench(arch, profile, args.steps_paper if profile == "paper" else args.steps_demo)
            for arch in args.archs for profile in args.profiles]
    print(f"{'arch':<14}{'profile':<8}{'masked samples/s':>18}{'plain samples/s':>17}{'overhead':>10}")
    for r in rows:
        print(f"{r['arch']:<14}{r['profile']:<8}{r['masked_samples_per_s']:>18.1f}{r['plain_samples_per_s']:>17.1f}"
              f"{r['overhead']:>10.1%}")
    return emit(rows)


if __name__ == "__main__":
    run_main(main, get_args_parser)
