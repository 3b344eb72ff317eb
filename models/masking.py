"""CPG weight ownership, written once for every maskable weight (nn.Linear, nn.Conv2d, the latent array).

`TaskMask` is registered on a weight with `torch.nn.utils.parametrize`, so the layers stay stock modules
and `module.weight` is what the active task t sees:
    W * (owner == t)  +  W.detach() * (0 < owner < t) * binarise(piggy_t)
`owner` holds 0 (free) or the owning task; `piggymasks[str(t)]` choose which earlier tasks' entries task t
reuses. Earlier tasks' entries enter detached, so no optimiser step moves a weight the active task does
not own. `block_index` maps narrow fused blocks ([k | v], GEGLU's [x | gates]) into wide ones, for growing
and for task views. The fused backward, its cost on CPU and the thresholds: docs/models.md.
"""
import math

import torch
from torch import nn
from torch.nn.utils import parametrize

PIGGYMASK_INIT = 0.01
PIGGYMASK_THRESHOLD = 5e-3
OWNER_DTYPE = torch.int16


class _EffectiveWeight(torch.autograd.Function):
    """W on own entries, W * binarise(piggy) (W detached) on earlier tasks' entries, 0 elsewhere."""

    @staticmethod
    def forward(ctx, weight, piggy, masks):
        selected = torch.gt(piggy, PIGGYMASK_THRESHOLD)
        selected.logical_and_(masks.earlier).logical_or_(masks.own)
        ctx.masks = masks
        ctx.save_for_backward(weight)
        return torch.where(selected, weight, 0.0)

    @staticmethod
    def backward(ctx, grad):
        (weight,), masks = ctx.saved_tensors, ctx.masks
        grad_weight = grad * masks.own_float(grad.dtype) if ctx.needs_input_grad[0] else None
        # straight-through binariser: d binarise(p) / dp = 1, and only earlier tasks' entries see p
        grad_piggy = (torch.mul(grad, weight).mul_(masks.earlier_float(grad.dtype))
                      if ctx.needs_input_grad[1] else None)
        return grad_weight, grad_piggy, None


class _OwnWeight(torch.autograd.Function):
    """W on own entries, 0 elsewhere: the effective weight of a task with no piggymask (task 1)."""

    @staticmethod
    def forward(ctx, weight, masks):
        ctx.masks = masks
        return torch.where(masks.own, weight, 0.0)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.masks.own_float(grad.dtype), None


class ActiveMasks:
    """The active task's boolean maps `own` and `earlier`, with their 0/1 float copies made on first use."""

    def __init__(self, owner, task):
        self.own = owner == task
        self.earlier = (owner > 0) & (owner < task)
        self._floats = {}

    def _float(self, name, dtype):
        if (name, dtype) not in self._floats:
            self._floats[name, dtype] = getattr(self, name).to(dtype)
        return self._floats[name, dtype]

    def own_float(self, dtype):
        return self._float("own", dtype)

    def earlier_float(self, dtype):
        return self._float("earlier", dtype)


class TaskMask(nn.Module):
    """Parametrization holding one weight's owner map and piggymasks; forward = effective weight."""

    def __init__(self, shape, dim0_blocks=1):
        super().__init__()
        self.register_buffer("owner", torch.zeros(shape, dtype=OWNER_DTYPE))
        self.piggymasks = nn.ParameterDict()
        self.dim0_blocks = dim0_blocks
        self.task = 1
        self._cache = None

    def invalidate(self):
        self._cache = None

    def active_masks(self) -> ActiveMasks:
        """The active task's masks, cached until owners or the task change."""
        owner = self.owner
        if self._cache is None or self._cache[0] != (self.task, owner.device):
            self._cache = ((self.task, owner.device), ActiveMasks(owner, self.task))
        return self._cache[1]

    def forward(self, weight):
        masks = self.active_masks()
        piggy = self.piggymasks[str(self.task)] if str(self.task) in self.piggymasks else None
        if piggy is None:
            return _OwnWeight.apply(weight, masks)
        return _EffectiveWeight.apply(weight, piggy, masks)

    @torch.no_grad()
    def effective_for(self, weight, task):
        """The weight task `task` sees (no autograd), without changing the active task."""
        owner = self.owner
        selected = owner == task
        piggy = self.piggymasks[str(task)] if str(task) in self.piggymasks else None
        if piggy is not None:
            selected |= (owner > 0) & (owner < task) & (piggy > PIGGYMASK_THRESHOLD)
        return torch.where(selected, weight, 0.0)


def attach_masks(modules_by_name, dim0_blocks_of):
    """Register a TaskMask on `weight` of every named module; returns {name: TaskMask}."""
    masks = {}
    for name, module in modules_by_name.items():
        mask = TaskMask(module.weight.shape, dim0_blocks_of(name))
        parametrize.register_parametrization(module, "weight", mask)
        masks[name] = mask
    return masks


def raw_weight(module):
    """The stored (unmasked) weight of a parametrised module."""
    return module.parametrizations.weight.original


def block_index(small, big, blocks=1, device=None):
    """Positions in a size-`big` dim that hold a size-`small` dim's entries, block by block.

    With blocks=2 and sizes 3 -> 5: [0, 1, 2, 5, 6, 7] of 10 (each half keeps its old rows on top).
    """
    small_block, big_block = small // blocks, big // blocks
    return torch.cat([torch.arange(small_block, device=device) + b * big_block for b in range(blocks)])


def _grid(small_shape, big_shape, dim0_blocks, device):
    axes = [block_index(s, b, dim0_blocks if d == 0 else 1, device)
            for d, (s, b) in enumerate(zip(small_shape, big_shape))]
    return torch.meshgrid(*axes, indexing="ij") if axes else ()


def shrink(big, small_shape, dim0_blocks=1):
    """The entries of `big` that a tensor of `small_shape` owns (top-left of each block)."""
    if tuple(big.shape) == tuple(small_shape):
        return big.clone()
    return big[_grid(small_shape, big.shape, dim0_blocks, big.device)].clone()


def place(small, big, dim0_blocks=1):
    """Copy of `big` with `small` written into its top-left of each block."""
    out = big.clone()
    if tuple(big.shape) == tuple(small.shape):
        out.copy_(small)
        return out
    out[_grid(small.shape, big.shape, dim0_blocks, big.device)] = small.to(out.dtype)
    return out


@torch.no_grad()
def ownership_stats(masks, task, width_mult) -> dict:
    """The numbers of the original's validate line for task `task`, over maskable weights only.

    With i = task, M = all owner-map entries (summed over layers), m = width_mult:
      sparsity     = #(owner == 0) / #(owner == i or owner == 0)   (pruned among own + free)
      task_ratio   = #(owner == i) / M * m      ("task<i> ratio"; m = mpl^2, as the original)
      zero_ratio   = #(owner == 0) / M * m
      shared_ratio = #(0 < owner < i and piggy_i > 5e-3) / #(0 < owner < i)
                     (earlier weights the piggymask currently selects; 0.0 for task 1)
      mpl          = sqrt(m)
    """
    total = own = free = earlier = selected = 0
    for mask in masks:
        owner = mask.owner
        total += owner.numel()
        own += int((owner == task).sum())
        free += int((owner == 0).sum())
        before = (owner > 0) & (owner < task)
        earlier += int(before.sum())
        if str(task) in mask.piggymasks:
            selected += int((before & (mask.piggymasks[str(task)] > PIGGYMASK_THRESHOLD)).sum())
    return {"task_index": task,
            "sparsity": free / (own + free) if own + free else 0.0,
            "task_ratio": own / total * width_mult,
            "zero_ratio": free / total * width_mult,
            "shared_ratio": selected / earlier if earlier else 0.0,
            "mpl": math.sqrt(width_mult)}
