"""The training loop every step shares: device, seeding, lr schedule, one epoch, evaluation."""
import contextlib
import random

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from utils.errors import UserError

# The settings that make two from-scratch runs of one task the same run (step 1 and step 2-1's finetune
# of a task alone at width 1.0 share these; the piggymask lr does not matter for a first task).
SAME_RUN_SETTINGS = ("arch", "profile", "dataset_config", "dataset", "epochs", "optimizer", "lr", "weight_decay",
                     "batch_size", "seed", "val_fraction")


def resolve_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was requested but no CUDA device is available; use --device auto or cpu.")
    return torch.device(name)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast(device):
    """bf16 autocast on GPU; full precision on CPU, where bf16 matmuls are slower, not faster."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def step_decay_factor(epoch, epochs):
    """SGD schedule of the original (x0.1 after 50% and again after 80% of the epochs); `epoch` is 0-based."""
    factor = 1.0
    if epoch >= 0.5 * epochs:
        factor *= 0.1
    if epoch >= 0.8 * epochs:
        factor *= 0.1
    return factor


def set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr


OPTIMIZERS = ("sgd", "adam")


def build_optimizers(model, lr, lr_mask, weight_decay, optimizer="sgd"):
    """A fresh optimizer over the trainable groups, SGD (Nesterov, momentum 0.9; the original's) or Adam
    (L2 decay in the gradient, as SGD's), and, for task >= 2, Adam over its piggymasks (None when lr_mask
    is 0 or there are none). Fresh per task, so no momentum of another task ever moves a frozen weight:
    a weight whose gradient mask_gradients zeroes from the first step has zero Adam moments too."""
    groups = model.parameter_groups(lr, lr_mask, weight_decay)
    sgd_groups = [g for g in groups if g["name"] != "piggymask"]
    mask_groups = [g for g in groups if g["name"] == "piggymask"]
    if optimizer == "adam":
        weights = torch.optim.Adam(sgd_groups, lr=lr)
    else:
        weights = torch.optim.SGD(sgd_groups, lr=lr, momentum=0.9, nesterov=True)
    mask_optimizer = torch.optim.Adam(mask_groups, lr=lr_mask) if mask_groups and lr_mask > 0 else None
    return weights, mask_optimizer


def train_one_epoch(model, loader, optimizer, device, epoch, *, weight_decay, mask_optimizer=None,
                    after_step=None):
    """One pass over `loader`; returns (mean loss, accuracy as a fraction).

    `model.mask_gradients` keeps every weight that is not the active task's own frozen;
    `after_step` (the pruning schedule) runs after each optimizer step.
    """
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(loader, desc=f"train ep {epoch}", leave=False, dynamic_ncols=True, disable=None)
    for x, y in bar:
        optimizer.zero_grad(set_to_none=True)
        if mask_optimizer is not None:
            mask_optimizer.zero_grad(set_to_none=True)
        with autocast(device):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        loss.backward()
        model.mask_gradients(weight_decay)
        optimizer.step()
        if mask_optimizer is not None:
            mask_optimizer.step()
        if after_step is not None:
            after_step()
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(dim=1) == y).sum().item()
        seen += len(y)
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    return total_loss / max(seen, 1), correct / max(seen, 1)


@torch.no_grad()
def evaluate(model, loader, device):
    """(mean loss, accuracy as a fraction) of `model` on `loader`, in eval mode."""
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    for x, y in loader:
        with autocast(device):
            logits = model(x)
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum").item()
        correct += (logits.argmax(dim=1) == y).sum().item()
        seen += len(y)
    return total_loss / max(seen, 1), correct / max(seen, 1)
