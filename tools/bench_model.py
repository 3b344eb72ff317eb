"""Train-step throughput of the CPG models, masked vs plain (the cost of CPG's ownership masks).

For each arch (lenet5, perceiver_io) and profile (demo, paper), on 32x32 images with batch 32:
* masked: a CPGModel whose task 1 is pruned to 50% and whose active task 2 trains with its
  piggymask (the training loop's optimisers, mask_gradients every step), i.e. the full CPG training step;
* plain: the same architecture at the same width with no parametrisation, (fused) SGD over everything;
* perceiver_io only, upstream: the plain model with perceiver-pytorch's own attention forward
  (explicit similarity matrix and softmax) instead of scaled_dot_product_attention.
Steps of the models alternate and the fastest step of each is reported: on a shared machine other
processes only ever add time, so the minimum is the least disturbed estimate. Prints a table, then, as the last line, a JSON list of
{"arch", "profile", "masked_samples_per_s", "plain_samples_per_s", "overhead"} (overhead =
plain / masked throughput - 1); perceiver_io rows add "upstream_attention_samples_per_s" and
"sdpa_speedup" (plain / upstream throughput - 1).

    .venv/bin/python -m tools.bench_model [--steps-paper 5] [--steps-demo 15]
"""
import json
import time
from types import MethodType, SimpleNamespace

import torch
import torch.nn.functional as F
from perceiver_pytorch.perceiver_pytorch import Attention
from tqdm import tqdm

from models.cpg import CPGModel, build_body
from models.perceiver_io import SDPAAttention
from utils.cli import ArgumentParser, positive_int
from utils.train import build_optimizers

BATCH, IMAGE_SIZE, CLASSES = 32, 32, 10
CFG = SimpleNamespace(image_size=IMAGE_SIZE, vocab_size=1000, max_text_length=32)


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


def plain_body(arch, profile):
    body = build_body(arch, profile, 1.0)
    body.add_task_modules("second", "image", CLASSES, {}, 1.0)
    return body


def with_upstream_attention(body):
    """`body` with every attention run by perceiver-pytorch's explicit-softmax forward (the model before SDPA)."""
    for module in body.modules():
        if isinstance(module, SDPAAttention):
            module.forward = MethodType(Attention.forward, module)
    return body


def plain_stepper(body):
    body.train()
    sgd = torch.optim.SGD(body.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4, fused=True)

    def step(x, y):
        sgd.zero_grad(set_to_none=True)
        F.cross_entropy(body(x, "second"), y).backward()
        sgd.step()
    return step


def bench(arch, profile, steps):
    torch.manual_seed(0)
    x = torch.randn(BATCH, 3, IMAGE_SIZE, IMAGE_SIZE)
    y = torch.randint(0, CLASSES, (BATCH,))
    steppers = {"masked": masked_stepper(arch, profile), "plain": plain_stepper(plain_body(arch, profile))}
    if arch == "perceiver_io":
        steppers["upstream"] = plain_stepper(with_upstream_attention(plain_body(arch, profile)))
    for step in steppers.values():   # warm-up: allocator, kernels, optimiser state
        step(x, y)
    times = {name: [] for name in steppers}
    for _ in tqdm(range(steps), desc=f"{arch}/{profile}", leave=False):
        for name, step in steppers.items():
            start = time.perf_counter()
            step(x, y)
            times[name].append(time.perf_counter() - start)
    masked = BATCH / min(times["masked"])
    plain = BATCH / min(times["plain"])
    row = {"arch": arch, "profile": profile, "masked_samples_per_s": round(masked, 1),
           "plain_samples_per_s": round(plain, 1), "overhead": round(plain / masked - 1.0, 4)}
    if "upstream" in times:
        upstream = BATCH / min(times["upstream"])
        row.update(upstream_attention_samples_per_s=round(upstream, 1),
                   sdpa_speedup=round(plain / upstream - 1.0, 4))
    return row


def table_line(r):
    upstream = (f"{r['upstream_attention_samples_per_s']:>20.1f}{r['sdpa_speedup']:>14.1%}"
                if "sdpa_speedup" in r else f"{'-':>20}{'-':>14}")
    return (f"{r['arch']:<14}{r['profile']:<8}{r['masked_samples_per_s']:>18.1f}"
            f"{r['plain_samples_per_s']:>17.1f}{r['overhead']:>10.1%}{upstream}")


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps-paper", type=positive_int, default=5, help="timed steps per model at the paper profile")
    parser.add_argument("--steps-demo", type=positive_int, default=15, help="timed steps per model at the demo profile")
    parser.add_argument("--archs", nargs="+", default=["lenet5", "perceiver_io"])
    parser.add_argument("--profiles", nargs="+", default=["demo", "paper"])
    args = parser.parse_args()
    rows = [bench(arch, profile, args.steps_paper if profile == "paper" else args.steps_demo)
            for arch in args.archs for profile in args.profiles]
    print(f"{'arch':<14}{'profile':<8}{'masked samples/s':>18}{'plain samples/s':>17}{'overhead':>10}"
          f"{'upstream samples/s':>20}{'SDPA speedup':>14}")
    for r in rows:
        print(table_line(r))
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    from utils.errors import run_main
    run_main(main)
