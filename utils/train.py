"""The training loop every step shares: device, seeding, lr schedule, one epoch, evaluation, and `fit`,
which runs a stage's epochs, saving after each one what a killed run needs to resume."""
import contextlib
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from utils.checkpoint import load_model, save_model
from utils.errors import UserError
from utils.logs import TrainCsv, console_info, train_line, validate_line
from utils.provenance import why_stale


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


def build_optimizers(model, lr, lr_mask, weight_decay, optimizer="sgd"):
    """A fresh optimizer over the trainable groups, SGD (Nesterov, momentum 0.9; the original's) or Adam
    (L2 decay in the gradient, as SGD's), and, for task >= 2, Adam over its piggymasks (None when lr_mask
    is 0 or there are none). Fresh per task, so no momentum of another task ever moves a frozen weight:
    a weight whose gradient mask_gradients zeroes from the first step has zero Adam moments too."""
    groups = model.parameter_groups(lr, lr_mask, weight_decay)
    sgd_groups = [g for g in groups if g["name"] != "piggymask"]
    mask_groups = [g for g in groups if g["name"] == "piggymask"]
    # fused: one kernel per step instead of a handful of passes per tensor (the piggymasks are as
    # large as the shared weights); SGD's steps are bit-identical to the unfused ones
    if optimizer == "adam":
        weights = torch.optim.Adam(sgd_groups, lr=lr, fused=True)
    else:
        weights = torch.optim.SGD(sgd_groups, lr=lr, momentum=0.9, nesterov=True, fused=True)
    mask_optimizer = (torch.optim.Adam(mask_groups, lr=lr_mask, fused=True)
                      if mask_groups and lr_mask > 0 else None)
    return weights, mask_optimizer


def train_one_epoch(model, loader, optimizer, device, epoch, *, weight_decay, mask_optimizer=None,
                    after_step=None, stage="training"):
    """One pass over `loader`; returns (mean loss, accuracy as a fraction).

    `model.mask_gradients` keeps every weight that is not the active task's own frozen;
    `after_step` (the pruning schedule) runs after each optimizer step. A non-finite loss stops the stage
    with a UserError: its weights are lost, and their chance-level accuracy must not become a result.
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
        batch_loss = loss.item()
        if not math.isfinite(batch_loss):
            raise UserError(f"Stage {stage} of task {model.active_task} stopped in epoch {epoch}: its training loss "
                            f"became {batch_loss}, so it records no result; lower --lr, or check the dataset "
                            f"config's normalisation (mean, std) and the data.")
        total_loss += batch_loss * len(y)
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


# ---------------------------------------------------------------- one stage, resumable

@dataclass(frozen=True)
class Recipe:
    """How one stage trains: its epochs, the weights' optimiser and lr schedule, the piggymasks' lr."""
    epochs: int
    lr: float
    optimizer: str
    weight_decay: float
    decay_lr: bool = True       # the original's step decay (training); a constant lr (its pruning stages)
    lr_mask: float = 0.0
    mask_lr_factor: Callable[[int], float] = lambda epoch: 1.0   # 0-based epoch -> share of lr_mask


def lr_schedules(recipe, optimizer, mask_optimizer):
    """The epoch-wise lr schedules of the weights' and the masks' optimisers (None where there is none)."""
    epochs = recipe.epochs
    decay = (lambda epoch: step_decay_factor(epoch, epochs)) if recipe.decay_lr else (lambda epoch: 1.0)
    weights = torch.optim.lr_scheduler.LambdaLR(optimizer, decay)
    masks = torch.optim.lr_scheduler.LambdaLR(mask_optimizer, recipe.mask_lr_factor) if mask_optimizer else None
    return weights, masks


class StageState:
    """The file a stage saves after every epoch (atomically) and deletes once its checkpoint is written:
    model, optimisers, lr schedules, pruning schedule, the loader's epoch and the RNG, so a killed run
    resumes after its last finished epoch and ends with the checkpoint an uninterrupted run writes.
    A file made with other settings or inputs (its provenance) is ignored and replaced."""

    def __init__(self, path, config_name, provenance):
        self.path, self.config_name, self.provenance = Path(path), config_name, provenance

    def load(self):
        """(model, payload) of the saved epoch, or None when there is none with this provenance."""
        if not self.path.is_file():
            return None
        try:
            model, payload = load_model(self.path)     # its provenance, below, names the config it was made with
        except UserError as err:     # a corrupt state file costs its epochs, never the stage
            console_info(f"Not resuming from {self.path}, which cannot be read ({err}); training from the start.")
            return None
        reason = why_stale(payload.get("provenance"), self.provenance)
        if reason is not None:
            console_info(f"Not resuming from {self.path}: {reason}.")
            return None
        return model, payload

    def save(self, model, epoch, loops, results, csv_rows):
        """After `epoch` (1-based count of finished epochs): the model, the state of every loop part and the
        train.csv rows of the epochs so far."""
        save_model(self.path, model, self.config_name, epoch=epoch, provenance=self.provenance,
                   loops={name: part for name, part in loops.items() if part is not None}, results=results,
                   csv_rows=csv_rows,
                   torch_rng=torch.get_rng_state(),
                   cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])

    def remove(self):
        self.path.unlink(missing_ok=True)


def restore_rng(saved):
    torch.set_rng_state(saved["torch_rng"])
    if saved["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda_rng"])   # dropout draws on the GPU


def loop_state(optimizer, mask_optimizer, schedules, pruner, train_loader):
    """Everything besides the model that decides the next epoch, as plain values."""
    weights_schedule, masks_schedule = schedules
    return {"optimizer": optimizer.state_dict(),
            "mask_optimizer": mask_optimizer.state_dict() if mask_optimizer else None,
            "schedule": weights_schedule.state_dict(),
            "mask_schedule": masks_schedule.state_dict() if masks_schedule else None,
            "pruner": pruner.state_dict() if pruner else None,
            "loader_epoch": train_loader.epoch}


def restore_loop_state(saved, optimizer, mask_optimizer, schedules, pruner, train_loader):
    optimizer.load_state_dict(saved["optimizer"])
    schedules[0].load_state_dict(saved["schedule"])
    if mask_optimizer is not None:
        mask_optimizer.load_state_dict(saved["mask_optimizer"])
        schedules[1].load_state_dict(saved["mask_schedule"])
    if pruner is not None:
        pruner.load_state_dict(saved["pruner"])
    train_loader.epoch = saved["loader_epoch"]


def fit(model, loaders, device, recipe, *, stage, csv_path, state=None, make_pruner=None, tensorboard_dir=None):
    """Train `model` for the recipe's epochs; returns (model, final val acc, final train acc).

    Each epoch logs the original's train and validate lines (train.log) and a `train.csv` row. With a
    `state` (StageState) a killed run resumes after its last finished epoch; `make_pruner(model)` builds
    the pruning schedule of a pruning stage; `tensorboard_dir` receives loss and accuracy scalars.
    The returned model is the trained one (on resume, the one rebuilt from the saved state).
    """
    train_loader, val_loader, _ = loaders
    resumed = state.load() if state is not None else None
    start, val_acc, train_acc = 0, 0.0, 0.0
    if resumed is not None:
        model, saved = resumed
        model.to(device)
        start, (val_acc, train_acc) = saved["epoch"], saved["results"]
        restore_rng(saved)
        console_info(f"Resuming {stage} after epoch {start} of {recipe.epochs} from {state.path}.")
    optimizer, mask_optimizer = build_optimizers(model, recipe.lr, recipe.lr_mask, recipe.weight_decay,
                                                 recipe.optimizer)
    schedules = lr_schedules(recipe, optimizer, mask_optimizer)
    pruner = make_pruner(model) if make_pruner else None
    if resumed is not None:
        restore_loop_state(saved["loops"], optimizer, mask_optimizer, schedules, pruner, train_loader)
    csv_log = TrainCsv(csv_path, stage=stage, done_epochs=start, rows=saved.get("csv_rows") if resumed else None)
    scalars = _tensorboard_writer(tensorboard_dir, start)
    started = epoch_started = time.time()
    for epoch in tqdm(range(start, recipe.epochs), desc=f"{stage} {model.active_task}", initial=start,
                      total=recipe.epochs, leave=False, dynamic_ncols=True, disable=None):
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_acc = train_one_epoch(model, train_loader, optimizer, device, epoch + 1,
                                                weight_decay=recipe.weight_decay, mask_optimizer=mask_optimizer,
                                                after_step=pruner, stage=stage)
        if pruner is not None and epoch == recipe.epochs - 1:
            pruner.finish()
        for schedule in schedules:
            if schedule is not None:
                schedule.step()
        val_loss, val_acc = evaluate(model, val_loader, device)
        stats = model.stats()
        logging.info(train_line(epoch + 1, train_loss, train_acc, lr, stats["sparsity"], stats["mpl"]))
        logging.info(validate_line(epoch + 1, val_loss, val_acc, stats))
        csv_log.append(epoch, val_acc, train_acc, time.time() - epoch_started)
        epoch_started = time.time()
        if scalars is not None:
            _write_scalars(scalars, epoch + 1, train_loss, train_acc, val_loss, val_acc)
        if state is not None:
            state.save(model, epoch + 1, loop_state(optimizer, mask_optimizer, schedules, pruner, train_loader),
                       [val_acc, train_acc], csv_log.rows)
        if epoch == start:
            announce_long_stage(stage, model, time.time() - started, recipe.epochs - start - 1)
    if scalars is not None:
        scalars.close()
    return model, val_acc, train_acc


LONG_STAGE_SECONDS = 600


def announce_long_stage(stage, model, first_epoch_seconds, epochs_left):
    """After a stage's first epoch, one console line when the rest will take long (and, for the paper profile on
    a CPU, the way to a CPU-sized model): a run that takes hours says so in the first minutes, not at the end."""
    seconds = first_epoch_seconds * epochs_left
    if seconds < LONG_STAGE_SECONDS:
        return
    hint = "; PROFILE=demo trains a CPU-sized model" if model.profile == "paper" and not torch.cuda.is_available() else ""
    console_info(f"{stage} {model.active_task}: its first epoch took {first_epoch_seconds:.0f} s, so the "
                 f"{epochs_left} epochs left take about {seconds / 60:.0f} min{hint}.")


def _tensorboard_writer(log_dir, start):
    if log_dir is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise UserError("--tensorboard needs the tensorboard package: .venv/bin/python -m pip install -r "
                        "requirements.txt.") from err
    # a resumed stage drops what the killed run wrote after its last saved epoch
    return SummaryWriter(log_dir=str(log_dir), purge_step=start + 1 if start else None)


def _write_scalars(writer, epoch, train_loss, train_acc, val_loss, val_acc):
    for name, value in (("loss/train", train_loss), ("loss/val", val_loss),
                        ("accuracy/train", train_acc), ("accuracy/val", val_acc)):
        writer.add_scalar(name, value, epoch)
    writer.flush()
