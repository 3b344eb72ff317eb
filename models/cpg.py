"""CPGModel: the one model object every pipeline step uses, so every step trains, prunes, grows and
evaluates tasks the same way.

It wraps one architecture body (`lenet5` or `perceiver_io`) whose maskable weights carry a
`models.masking.TaskMask`, and keeps CPG's bookkeeping: tasks in order (`add_task`), each task's private
state at its own width (`set_active_task` switches without copying), growing (`grown`), and
`task_view`, a task's bit-identical evaluation whatever later tasks did. Build a fresh optimiser per task
from `parameter_groups`: `mask_gradients` applies the weight decay to the active task's own entries only.
The invariants and why they hold: docs/models.md, "The CPG model". Saving and loading a model is
`utils.checkpoint`.
"""
import copy
from dataclasses import asdict, dataclass

import torch
from torch import nn

from models.lenet import LeNet5
from models.lenet import PROFILES as LENET_PROFILES
from models.masking import PIGGYMASK_INIT, attach_masks, ownership_stats, place, raw_weight, shrink
from models.perceiver_io import PROFILES as PERCEIVER_PROFILES
from models.perceiver_io import PerceiverIO
from utils.errors import UserError

ARCHS = {"lenet5": (LeNet5, tuple(LENET_PROFILES)), "perceiver_io": (PerceiverIO, tuple(PERCEIVER_PROFILES))}


def profile_sizes(arch, profile) -> dict:
    """The sizes a profile's name stands for (LeNet-5 has one size), so a run's provenance changes with them."""
    sizes = PERCEIVER_PROFILES.get(profile) if arch == "perceiver_io" else None
    return asdict(sizes) if sizes is not None else {}


@dataclass
class TaskInfo:
    name: str
    modality: str
    num_classes: int
    width_mult: float
    adapter_config: dict    # image_size, vocab_size, max_text_length of its config; a Perceiver image task's image_patch


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


class TaskPrivate(nn.Module):
    """One task's private body state (by body state name), parameters and buffers as the body has them."""

    def __init__(self, tensors, parameter_names):
        super().__init__()
        self.names = list(tensors)
        for name, tensor in tensors.items():
            if name in parameter_names:
                self.register_parameter(_slot(name), nn.Parameter(tensor.detach().clone()))
            else:
                self.register_buffer(_slot(name), tensor.detach().clone())

    def tensors(self):
        return {name: getattr(self, _slot(name)) for name in self.names}


def _slot(state_name):
    return state_name.replace(".", "__")    # a module attribute name may not hold a dot


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
        self.maskable = self.body.maskable_modules()
        self.masks = attach_masks(self.maskable, self.body.dim0_blocks)
        self.tasks: dict[str, TaskInfo] = {}
        self.task_names: list[str] = []
        self.active_task = None
        self.private = nn.ModuleDict()      # task name -> TaskPrivate at the task's own width
        initial = self.live_private()
        self._private_parameters = {k for k, v in initial.items() if isinstance(v, nn.Parameter)}
        self.fresh_private = TaskPrivate(initial, ())

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
        adapter_config = {"image_size": int(cfg.image_size), "vocab_size": int(cfg.vocab_size),
                          "max_text_length": int(cfg.max_text_length)}
        if task.modality == "image" and self.arch == "perceiver_io":
            # the patch the adapter reads with, saved so that a checkpoint rebuilds it whatever a later profile says
            adapter_config["image_patch"] = int(self.body.p.patch_for(cfg.image_patch, cfg.image_size))
        info = TaskInfo(task.name, task.modality, int(task.num_classes), self.width_mult, adapter_config)
        start = (self.fresh_private.tensors() if self.active_task is None
                 else self._placed_private(self.active_task, self.fresh_private.tensors()))
        self.register_task(info)
        self.private[info.name] = TaskPrivate(start, self._private_parameters)
        t = len(self.task_names)
        with torch.no_grad():
            for mask in self.masks.values():
                mask.owner[mask.owner == 0] = t
                if t >= 2:
                    mask.piggymasks[str(t)] = nn.Parameter(torch.full_like(mask.owner, PIGGYMASK_INIT,
                                                                           dtype=torch.float32))
        self._switch_to(info.name)

    def register_task(self, info):
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
        for mask in self.masks.values():
            mask.owner[mask.owner == 0] = t
            mask.invalidate()
        self._widen_task(self.active_task)

    @torch.no_grad()
    def _widen_task(self, name):
        """Rebuild task `name`'s head, adapter and private state at the model's width, old entries in place."""
        info = self.tasks[name]
        if info.width_mult == self.width_mult:
            return
        old = {prefix: module.state_dict() for prefix, module in self.body.task_modules(name).items()}
        self.private[name] = TaskPrivate(self._placed_private(name, self.fresh_private.tensors()),
                                         self._private_parameters)
        info.width_mult = self.width_mult
        self.body.add_task_modules(name, info.modality, info.num_classes, info.adapter_config, info.width_mult)
        for prefix, module in self.body.task_modules(name).items():
            module.to(self._device())
            for key, value in module.state_dict().items():
                value.copy_(place(old[prefix][key], torch.zeros_like(value)))
        self._switch_to(self.active_task)     # the body takes the task's new tensors

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
        for layer, module in self.maskable.items():
            owner = self.masks[layer].owner
            earlier = (owner > 0) & (owner < t)
            weight = raw_weight(module)
            weight.copy_(torch.where(earlier, fresh[f"{layer}.weight"].to(weight.device), weight))
        for name, own in self.private[self.active_task].tensors().items():
            own.copy_(shrink(fresh[name], own.shape, self.body.dim0_blocks(_module_path(name))))

    # ----- active task and private state -------------------------------------------------------
    def task_index(self, name):
        return self.task_names.index(name) + 1

    def set_active_task(self, name) -> None:
        if name not in self.tasks:
            raise UserError(f"Unknown task '{name}'; this model has: {', '.join(self.task_names)}.")
        self._switch_to(name)

    def _switch_to(self, name):
        """Point the body at task `name`'s private tensors and the masks at its weights; only its own tensors
        take gradients."""
        self.active_task = name
        zeros = {k: torch.zeros_like(v) for k, v in self.fresh_private.tensors().items()}
        for k, tensor in self._placed_private(name, zeros).items():
            path, _, leaf = k.rpartition(".")
            setattr(self.body.get_submodule(path), leaf, tensor)
        t = self.task_index(name)
        for mask in self.masks.values():
            mask.task = t
            mask.invalidate()
            for key, piggy in mask.piggymasks.items():
                piggy.requires_grad_(key == str(t))
        for task in self.task_names:   # other tasks' heads/adapters/private state stay out of any optimiser
            for module in [*self.body.task_modules(task).values(), self.private[task]]:
                module.requires_grad_(task == name)

    def _placed_private(self, name, fill):
        """Task `name`'s private tensors at the model's width: its own ones, or (an earlier, narrower task) placed
        into copies of `fill`."""
        own = self.private[name].tensors()
        if self.tasks[name].width_mult == self.width_mult:
            return own
        placed = {k: place(v.detach(), fill[k].detach(), self.body.dim0_blocks(_module_path(k))) for k, v in own.items()}
        return {k: nn.Parameter(v, requires_grad=False) if k in self._private_parameters else v
                for k, v in placed.items()}

    def live_private(self):
        """The private tensors the body holds (the active task's at the model's width), by body state name."""
        return {k: v for k, v in self.body.state_dict(keep_vars=True).items() if _is_private_body_state(k)}

    def private_state(self, name):
        """Task `name`'s private body state at its own width, detached."""
        return {k: v.detach() for k, v in self.private[name].tensors().items()}

    def load_private(self, states) -> None:
        """Every task's private state from `states` (task -> {body state name: tensor at its own width})."""
        for name, state in states.items():
            self.private[name] = TaskPrivate(state, self._private_parameters)

    def _device(self):
        return next(self.body.parameters()).device

    # ----- forward and views ------------------------------------------------------------------
    def _apply(self, fn, *args, **kwargs):
        # .to() / .double() make new buffer objects: point the body at the active task's moved ones again
        super()._apply(fn, *args, **kwargs)
        if self.active_task is not None:
            self._switch_to(self.active_task)
        return self

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
        state = dict(self.private_state(name))
        for layer, module in self.maskable.items():
            mask = self.masks[layer]
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
            new.register_task(copy.deepcopy(self.tasks[name]))
            for prefix, module in self.body.task_modules(name).items():
                new.body.task_modules(name)[prefix].load_state_dict(module.state_dict())
        for layer, module in self.maskable.items():
            old, fresh = self.masks[layer], new.masks[layer]
            blocks = old.dim0_blocks
            raw_weight(new.maskable[layer]).copy_(place(raw_weight(module), raw_weight(new.maskable[layer]), blocks))
            fresh.owner.copy_(place(old.owner, fresh.owner, blocks))
            for key, piggy in old.piggymasks.items():
                wide = torch.full_like(fresh.owner, PIGGYMASK_INIT, dtype=torch.float32)
                fresh.piggymasks[key] = nn.Parameter(place(piggy.detach(), wide, blocks))
        new.load_private({name: self.private_state(name) for name in self.task_names})
        if self.active_task is not None:
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
        for layer, module in self.maskable.items():
            mask, weight = self.masks[layer], raw_weight(module)
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
        for layer, module in self.maskable.items():
            raw_weight(module).masked_fill_(self.masks[layer].owner == 0, 0.0)

    @torch.no_grad()
    def mask_gradients(self, weight_decay: float) -> None:
        """After backward: L2 decay on the active task's own weights. The effective weight's backward
        already gave every other entry (and every piggymask entry outside earlier tasks') a zero gradient."""
        if not weight_decay:
            return
        for layer, module in self.maskable.items():
            weight = raw_weight(module)
            if weight.grad is not None:
                own = self.masks[layer].active_masks().own_float(weight.dtype)
                weight.grad.addcmul_(weight, own, value=weight_decay)

    def parameter_groups(self, lr, lr_mask, weight_decay) -> list[dict]:
        """Optimiser groups, each with a "name": "shared" (maskable weights, weight_decay 0: applied
        by mask_gradients), "private_decay" (the active head/adapter >= 2-D weights), "private"
        (biases, norms: no decay) for SGD; "piggymask" (the active task's masks) for Adam at lr_mask."""
        shared = [raw_weight(m) for m in self.maskable.values()]
        private = [v for v in self.private[self.active_task].tensors().values() if isinstance(v, nn.Parameter)]
        own_modules = self.body.task_modules(self.active_task).values()
        own_params = [p for m in own_modules for p in m.parameters()]
        t = str(self.task_index(self.active_task))
        piggy = [m.piggymasks[t] for m in self.masks.values() if t in m.piggymasks]
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
    def stats(self) -> dict:
        """The numbers of the original's validate line for the active task (models.masking.ownership_stats)."""
        return ownership_stats(self.masks.values(), self.task_index(self.active_task), self.width_mult)
