"""CPGModel: the one model object every pipeline step uses, so every step trains, prunes, grows and
evaluates tasks the same way.

It wraps one architecture body (`lenet5` or `perceiver_io`) whose maskable weights carry a
`models.masking.TaskMask`, and keeps the rest of CPG's bookkeeping:

* Tasks are registered in order (task index t = position + 1). `add_task` gives the new task its
  head (and, for Perceiver IO, its input adapter), a piggymask over every maskable weight (t >= 2),
  and ownership of every free weight; it becomes the active task.
* Per-task private state: the head and adapter (ModuleDicts by task name), and every body tensor
  that is not a maskable weight (biases, LayerNorm / BatchNorm parameters and running statistics).
  The active task's private state lives in the body; the others are snapshots taken at the task's
  own width and restored on `set_active_task`. A new task starts from the previously active
  task's private values (its backbone's).
* Width: every task records the width multiplier it was added at. `grown(m)` copies the model to a
  wider body (old entries to the top-left of each fused block, new entries freshly initialised and
  free: the next task added claims them). Grow first, then add the task (the original retrains
  the target from its backbone at each width).
* `task_view(name)` is how any task is evaluated: a plain (unparametrised) eval-mode body at the
  task's own width with that task's effective weights baked in. It is bit-identical whatever
  later tasks did, because earlier tasks' weights, owner entries, piggymasks and private state
  never change after the task (gradients of non-own weights are zero, pruning only touches the
  active task's own weights, growing keeps old entries in place).
* Optimiser contract: `parameter_groups` gives the maskable weights with weight_decay 0, because
  `mask_gradients` adds L2 decay to the active task's own entries only (as the original's manual
  decay; every other entry's gradient is zero from the masks' backward); build a fresh optimiser per task so no momentum
  from another task moves a frozen weight.
"""
import copy
import math
from dataclasses import dataclass, asdict

import torch
from torch import nn

from models.lenet import LeNet5
from models.lenet import PROFILES as LENET_PROFILES
from models.masking import (PIGGYMASK_INIT, PIGGYMASK_THRESHOLD, OWNER_DTYPE, attach_masks, place,
                            raw_weight, shrink)
from models.perceiver_io import PROFILES as PERCEIVER_PROFILES
from models.perceiver_io import PerceiverIO
from utils.errors import UserError

ARCHS = {"lenet5": (LeNet5, tuple(LENET_PROFILES)), "perceiver_io": (PerceiverIO, tuple(PERCEIVER_PROFILES))}
STATE_FORMAT = "cpg-model-1"


@dataclass
class TaskInfo:
    name: str
    modality: str
    num_classes: int
    width_mult: float
    adapter_config: dict    # image_size, vocab_size, max_text_length of the task's dataset config


def build_body(arch, profile, width_mult, device=None):
    """A plain (unmasked) architecture body; `device="meta"` builds shapes only."""
    if arch not in ARCHS:
        raise UserError(f"Unknown architecture '{arch}'; valid ones are: {', '.join(ARCHS)}.")
    cls, profiles = ARCHS[arch]
    if profile not in profiles:
        raise UserError(f"Unknown model profile '{profile}'; valid ones are: {', '.join(profiles)}.")
    if not (isinstance(width_mult, (int, float)) and width_mult > 0):
        raise UserError(f"The network width multiplier must be a positive number, got {width_mult!r}.")
    with torch.device(device or "cpu"):
        return cls(profile, float(width_mult))


def _module_path(state_name):
    return state_name.rsplit(".", 1)[0]


def _is_private_body_state(name):
    return ".parametrizations." not in name and not name.startswith(("heads.", "adapters."))


class TaskView(nn.Module):
    """A plain eval model of one task: forward(x) -> logits."""

    def __init__(self, body, task, modality):
        super().__init__()
        self.body, self.task, self.modality = body, task, modality

    def forward(self, x):
        return self.body(x, self.task)


class CPGModel(nn.Module):
    def __init__(self, arch, profile, width_mult=1.0):
        super().__init__()
        self.arch, self.profile, self.width_mult = arch, profile, float(width_mult)
        self.body = build_body(arch, profile, width_mult)
        self._maskable = self.body.maskable_modules()
        self._masks = attach_masks(self._maskable, self.body.dim0_blocks)
        self.tasks: dict[str, TaskInfo] = {}
        self.task_names: list[str] = []
        self.active_task = None
        self._private = {}          # inactive task -> {body state name: tensor at its own width}
        self._shape_cache = {}

    # ----- construction -----------------------------------------------------------------------
    @classmethod
    def create(cls, arch, profile, width_mult=1.0) -> "CPGModel":
        return cls(arch, profile, width_mult)

    def add_task(self, task, cfg) -> None:
        """Register `task` (a TaskSpec) with its head/adapter/piggymasks; it claims every free weight."""
        if task.name in self.tasks:
            raise UserError(f"Task '{task.name}' is already registered in this model.")
        if task.modality not in self.body.modalities:
            raise UserError(f"Architecture {self.arch} cannot take {task.modality} input "
                            f"(task '{task.name}'); use perceiver_io for text tasks.")
        info = TaskInfo(task.name, task.modality, int(task.num_classes), self.width_mult,
                        {"image_size": int(cfg.image_size), "vocab_size": int(cfg.vocab_size),
                         "max_text_length": int(cfg.max_text_length)})
        self._register_task(info)
        t = len(self.task_names)
        with torch.no_grad():
            for mask in self._masks.values():
                mask.owner[mask.owner == 0] = t
                if t >= 2:
                    mask.piggymasks[str(t)] = nn.Parameter(torch.full_like(mask.owner, PIGGYMASK_INIT,
                                                                           dtype=torch.float32))
        self._switch_to(info.name)

    def _register_task(self, info):
        self.body.add_task_modules(info.name, info.modality, info.num_classes, info.adapter_config,
                                  info.width_mult)
        device = self._device()
        for module in self.body.task_modules(info.name).values():
            module.to(device)
        self.tasks[info.name] = info
        self.task_names.append(info.name)

    @torch.no_grad()
    def claim_free_weights(self) -> None:
        """The active task (the newest) takes every free weight, e.g. the new entries after growing.

        It then owns entries beyond the width it was registered at, so it takes the model's width:
        its views, snapshots and checkpoints must keep the units it grew.
        """
        t = self.task_index(self.active_task)
        if t != len(self.task_names):
            raise UserError(f"Only the newest task ({self.task_names[-1]}) can claim free weights.")
        for mask in self._masks.values():
            mask.owner[mask.owner == 0] = t
            mask.invalidate()
        self._widen_task(self.active_task)

    @torch.no_grad()
    def _widen_task(self, name):
        """Rebuild task `name`'s head and adapter at the model's width, old entries in place (no output changes)."""
        info = self.tasks[name]
        if info.width_mult == self.width_mult:
            return
        old = {prefix: module.state_dict() for prefix, module in self.body.task_modules(name).items()}
        info.width_mult = self.width_mult
        self.body.add_task_modules(name, info.modality, info.num_classes, info.adapter_config, info.width_mult)
        for prefix, module in self.body.task_modules(name).items():
            module.to(self._device())
            for key, value in module.state_dict().items():
                value.copy_(place(old[prefix][key], torch.zeros_like(value)))
            module.requires_grad_(name == self.active_task)

    @torch.no_grad()
    def install_adapter(self, name, source, source_task) -> None:
        """Copy `source_task`'s input adapter (key/value projection, text embeddings) of model `source` into task `name`."""
        mine, theirs = self.body.task_modules(name).get("adapters"), source.body.task_modules(source_task).get("adapters")
        if mine is None or theirs is None:
            raise UserError(f"Architecture {self.arch} has no input adapter to transfer.")
        try:
            mine.load_state_dict(theirs.state_dict(), strict=True)
        except RuntimeError as err:
            raise UserError(f"The input adapter of {source_task} does not fit task {name} of this model "
                            f"({str(err).splitlines()[0]}).") from err

    @torch.no_grad()
    def reinitialise_earlier_tasks(self) -> None:
        """Fresh initial values for every weight an earlier task owns and for the active task's private body
        state: the backbone's structure (ownership, pruning, width) without what it learned. The transfer
        control trains a target on such an untrained backbone to measure what the backbone's knowledge adds."""
        t = self.task_index(self.active_task)
        fresh = build_body(self.arch, self.profile, self.width_mult).state_dict()
        for layer, module in self._maskable.items():
            owner = self._masks[layer].owner
            earlier = (owner > 0) & (owner < t)
            weight = raw_weight(module)
            weight.copy_(torch.where(earlier, fresh[f"{layer}.weight"].to(weight.device), weight))
        for name, live in self._live_private().items():
            live.copy_(fresh[name])

    # ----- active task and private state -------------------------------------------------------
    def task_index(self, name):
        return self.task_names.index(name) + 1

    def set_active_task(self, name) -> None:
        if name not in self.tasks:
            raise UserError(f"Unknown task '{name}'; this model has: {', '.join(self.task_names)}.")
        self._switch_to(name)

    def _switch_to(self, name):
        """Snapshot the active task's private state, restore `name`'s, point the masks at it."""
        if self.active_task is not None and self.active_task != name:
            self._private[self.active_task] = self._snapshot_private(self.active_task)
        if name in self._private:
            self._restore_private(self._private.pop(name))
        self.active_task = name
        t = self.task_index(name)
        for mask in self._masks.values():
            mask.task = t
            mask.invalidate()
            for key, piggy in mask.piggymasks.items():
                piggy.requires_grad_(key == str(t))
        for task in self.task_names:   # other tasks' heads/adapters stay out of any optimiser
            for module in self.body.task_modules(task).values():
                module.requires_grad_(task == name)

    def _live_private(self):
        return {k: v for k, v in self.body.state_dict(keep_vars=True).items() if _is_private_body_state(k)}

    def _shapes_at(self, width_mult):
        if width_mult not in self._shape_cache:
            body = build_body(self.arch, self.profile, width_mult, device="meta")
            self._shape_cache[width_mult] = {k: tuple(v.shape) for k, v in body.state_dict().items()}
        return self._shape_cache[width_mult]

    def _snapshot_private(self, name):
        shapes = self._shapes_at(self.tasks[name].width_mult)
        return {k: shrink(v.detach(), shapes[k], self.body.dim0_blocks(_module_path(k)))
                for k, v in self._live_private().items()}

    def _private_state(self, name):
        return self._snapshot_private(name) if name == self.active_task else self._private[name]

    @torch.no_grad()
    def _restore_private(self, snapshot):
        for k, live in self._live_private().items():
            live.copy_(place(snapshot[k].to(live.device), live.detach(), self.body.dim0_blocks(_module_path(k))))

    def _device(self):
        return next(self.body.parameters()).device

    # ----- forward and views ------------------------------------------------------------------
    def forward(self, x):
        """Logits of the active task, B x num_classes."""
        return self.body(x, self.active_task)

    @torch.no_grad()
    def task_view(self, name) -> nn.Module:
        """Plain eval-mode model of task `name` at its own width, its effective weights baked in."""
        if name not in self.tasks:
            raise UserError(f"Unknown task '{name}'; this model has: {', '.join(self.task_names)}.")
        info, t = self.tasks[name], self.task_index(name)
        body = build_body(self.arch, self.profile, info.width_mult, device="meta")
        body.add_task_modules(name, info.modality, info.num_classes, info.adapter_config, info.width_mult)
        shapes = {k: v.shape for k, v in body.state_dict().items()}
        state = dict(self._private_state(name))
        for layer, module in self._maskable.items():
            mask = self._masks[layer]
            effective = mask.effective_for(raw_weight(module), t)
            state[f"{layer}.weight"] = shrink(effective, shapes[f"{layer}.weight"], mask.dim0_blocks)
        for prefix, module in self.body.task_modules(name).items():
            for k, v in module.state_dict().items():
                state[f"{prefix}.{name}.{k}"] = v.detach().clone()
        body.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True, assign=True)
        view = TaskView(body, name, info.modality).to(self._device()).eval()
        return view.requires_grad_(False)

    # ----- growing ------------------------------------------------------------------------------
    @torch.no_grad()
    def grown(self, width_mult) -> "CPGModel":
        """A copy at a larger width; every task, owner map, piggymask and private state carried over."""
        if width_mult < self.width_mult:
            raise UserError(f"Cannot shrink the network from width {self.width_mult} to {width_mult}.")
        new = CPGModel(self.arch, self.profile, width_mult).to(self._device())
        for name in self.task_names:
            new._register_task(copy.deepcopy(self.tasks[name]))
            for prefix, module in self.body.task_modules(name).items():
                new.body.task_modules(name)[prefix].load_state_dict(module.state_dict())
        for layer, module in self._maskable.items():
            old, fresh = self._masks[layer], new._masks[layer]
            blocks = old.dim0_blocks
            raw_weight(new._maskable[layer]).copy_(place(raw_weight(module), raw_weight(new._maskable[layer]), blocks))
            fresh.owner.copy_(place(old.owner, fresh.owner, blocks))
            for key, piggy in old.piggymasks.items():
                wide = torch.full_like(fresh.owner, PIGGYMASK_INIT, dtype=torch.float32)
                fresh.piggymasks[key] = nn.Parameter(place(piggy.detach(), wide, blocks))
        new._restore_private({k: v.detach() for k, v in self._live_private().items()})
        new._private = {k: {n: v.clone() for n, v in snap.items()} for k, snap in self._private.items()}
        if self.active_task is not None:
            new.active_task = None
            new._switch_to(self.active_task)
        return new

    # ----- CPG training hooks -------------------------------------------------------------------
    @torch.no_grad()
    def prune_active_task(self, sparsity: float) -> None:
        """Per layer: free the smallest-magnitude own weights until #free / #(own + free) = sparsity.

        Exact count (round(sparsity * pool)); pruned weights get owner 0 and value 0. Weights of
        other tasks are never candidates.
        """
        if not 0.0 <= sparsity < 1.0:
            raise UserError(f"The pruning ratio must be in [0, 1), got {sparsity}.")
        t = self.task_index(self.active_task)
        for layer, module in self._maskable.items():
            mask, weight = self._masks[layer], raw_weight(module)
            owner = mask.owner.view(-1)
            own_idx = (owner == t).nonzero().squeeze(1)
            n_free = int((owner == 0).sum())
            k = min(round(sparsity * (own_idx.numel() + n_free)) - n_free, own_idx.numel())
            if k <= 0:
                continue
            magnitudes = weight.detach().view(-1)[own_idx].abs()
            pruned = own_idx[torch.topk(magnitudes, k, largest=False, sorted=False).indices]
            owner[pruned] = 0
            weight.view(-1)[pruned] = 0.0
            mask.invalidate()

    @torch.no_grad()
    def zero_free_weights(self) -> None:
        """Set every free weight to 0: SGD momentum would otherwise keep moving weights pruned mid-run."""
        for layer, module in self._maskable.items():
            raw_weight(module).masked_fill_(self._masks[layer].owner == 0, 0.0)

    @torch.no_grad()
    def mask_gradients(self, weight_decay: float) -> None:
        """After backward: L2 decay on the active task's own weights. The effective weight's backward
        already gave every other entry (and every piggymask entry outside earlier tasks') a zero gradient."""
        if not weight_decay:
            return
        for layer, module in self._maskable.items():
            weight = raw_weight(module)
            if weight.grad is not None:
                own = self._masks[layer].active_masks().own_float(weight.dtype)
                weight.grad.addcmul_(weight, own, value=weight_decay)

    def parameter_groups(self, lr, lr_mask, weight_decay) -> list[dict]:
        """Optimiser groups, each with a "name": "shared" (maskable weights, weight_decay 0: applied
        by mask_gradients), "private_decay" (the active head/adapter >= 2-D weights), "private"
        (biases, norms: no decay) for SGD; "piggymask" (the active task's masks) for Adam at lr_mask."""
        shared = [raw_weight(m) for m in self._maskable.values()]
        private = [v for v in self._live_private().values() if isinstance(v, nn.Parameter)]
        own_modules = self.body.task_modules(self.active_task).values()
        own_params = [p for m in own_modules for p in m.parameters()]
        t = str(self.task_index(self.active_task))
        piggy = [m.piggymasks[t] for m in self._masks.values() if t in m.piggymasks]
        groups = [
            {"name": "shared", "params": shared, "lr": lr, "weight_decay": 0.0},
            {"name": "private_decay", "params": [p for p in own_params if p.dim() >= 2],
             "lr": lr, "weight_decay": weight_decay},
            {"name": "private", "params": private + [p for p in own_params if p.dim() < 2],
             "lr": lr, "weight_decay": 0.0},
            {"name": "piggymask", "params": piggy, "lr": lr_mask, "weight_decay": 0.0},
        ]
        return [g for g in groups if g["params"]]

    # ----- metrics ------------------------------------------------------------------------------
    @torch.no_grad()
    def stats(self) -> dict:
        """The numbers of the original's validate line, over maskable weights only.

        With i = active task index, M = all owner-map entries (summed over layers), m = width_mult:
          sparsity     = #(owner == 0) / #(owner == i or owner == 0)   (pruned among own + free)
          task_ratio   = #(owner == i) / M * m      ("task<i> ratio"; m = mpl^2, as the original)
          zero_ratio   = #(owner == 0) / M * m
          shared_ratio = #(0 < owner < i and piggy_i > 5e-3) / #(0 < owner < i)
                         (earlier weights the piggymask currently selects; 0.0 for task 1)
          mpl          = sqrt(m)
        """
        i = self.task_index(self.active_task)
        total = own = free = earlier = selected = 0
        for mask in self._masks.values():
            owner = mask.owner
            total += owner.numel()
            own += int((owner == i).sum())
            free += int((owner == 0).sum())
            before = (owner > 0) & (owner < i)
            earlier += int(before.sum())
            if str(i) in mask.piggymasks:
                selected += int((before & (mask.piggymasks[str(i)] > PIGGYMASK_THRESHOLD)).sum())
        m = self.width_mult
        return {"task_index": i,
                "sparsity": free / (own + free) if own + free else 0.0,
                "task_ratio": own / total * m,
                "zero_ratio": free / total * m,
                "shared_ratio": selected / earlier if earlier else 0.0,
                "mpl": math.sqrt(m)}

    # ----- checkpoint state ---------------------------------------------------------------------
    def checkpoint_state(self) -> dict:
        """Plain dict (tensors/str/int/float/list/dict only) from which `from_checkpoint_state` rebuilds."""
        def cpu(t):
            return t.detach().cpu().clone()
        private = {name: {k: cpu(v) for k, v in self._private_state(name).items()} for name in self.task_names}
        return {
            "format": STATE_FORMAT, "arch": self.arch, "profile": self.profile, "width_mult": self.width_mult,
            "widths": dict(self.body.widths),
            "tasks": [asdict(self.tasks[name]) for name in self.task_names],
            "active_task": self.active_task,
            "weights": {layer: cpu(raw_weight(m)) for layer, m in self._maskable.items()},
            "owners": {layer: cpu(mask.owner) for layer, mask in self._masks.items()},
            "piggymasks": {name: {layer: cpu(mask.piggymasks[str(t)]) for layer, mask in self._masks.items()}
                           for t, name in enumerate(self.task_names, 1) if t >= 2},
            "private": private,
            "live_private": {k: cpu(v) for k, v in self._live_private().items()},
            "task_modules": {name: {f"{prefix}.{k}": cpu(v) for prefix, module in self.body.task_modules(name).items()
                                    for k, v in module.state_dict().items()} for name in self.task_names},
        }

    @classmethod
    def from_checkpoint_state(cls, state: dict) -> "CPGModel":
        """Rebuild a model exactly; UserError when the state is incomplete or does not fit the architecture."""
        try:
            return cls._rebuild(state)
        except UserError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UserError(f"The saved model state does not fit the architecture it names ({reason}).") from err

    @classmethod
    @torch.no_grad()
    def _rebuild(cls, state):
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise UserError(f"The saved model state is not in format '{STATE_FORMAT}'.")
        model = cls(state["arch"], state["profile"], state["width_mult"])
        if dict(model.body.widths) != dict(state["widths"]):
            raise UserError(f"The saved layer widths {state['widths']} do not match {model.body.widths}.")
        for entry in state["tasks"]:
            info = TaskInfo(**entry)
            model._register_task(info)
            for prefix, module in model.body.task_modules(info.name).items():
                sub = {k[len(prefix) + 1:]: v for k, v in state["task_modules"][info.name].items()
                       if k.startswith(prefix + ".")}
                module.load_state_dict(sub, strict=True)
        for layer, module in model._maskable.items():
            mask = model._masks[layer]
            _copy_exact(raw_weight(module), state["weights"][layer], layer)
            _copy_exact(mask.owner, state["owners"][layer].to(OWNER_DTYPE), layer)
        for t, name in enumerate(model.task_names, 1):
            if t >= 2:
                for layer, mask in model._masks.items():
                    piggy = state["piggymasks"][name][layer]
                    if piggy.shape != mask.owner.shape:
                        raise UserError(f"The saved piggymask of layer {layer} has the wrong shape.")
                    mask.piggymasks[str(t)] = nn.Parameter(piggy.clone().float())
        live = model._live_private()
        if set(live) != set(state["live_private"]):
            raise UserError("The saved per-task state names do not match the architecture.")
        for k, v in live.items():
            _copy_exact(v, state["live_private"][k], k)
        active = state["active_task"]
        model._private = {name: {k: v.clone() for k, v in state["private"][name].items()}
                          for name in model.task_names if name != active}
        if active is not None:
            model._switch_to(active)
        return model


def _copy_exact(dest, src, name):
    if not torch.is_tensor(src) or tuple(src.shape) != tuple(dest.shape):
        raise UserError(f"The saved tensor '{name}' does not have the model's shape {tuple(dest.shape)}.")
    dest.data.copy_(src)
