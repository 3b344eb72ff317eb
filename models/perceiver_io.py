"""Multimodal Perceiver IO for CPG, assembled from perceiver-pytorch's blocks, as MM-Pick-a-back's model.

    input adapter (per task) -> [k ; v] context
    latents (N x D) -> one cross-attention block -> depth x latent self-attention blocks
    -> mean over latents -> per-task head

Each task has its own input adapter (image: pixels + Fourier position features; text: hashed-word
embeddings + positions), ending in the task's key/value projection. The cross-attention reads that
projection as is, which is what lets a target of either modality run on a backbone of the other (step 4
hands over the adapter). `PROFILES` holds the original's sizes (`paper`) and a CPU size (`demo`); CPG's
width multiplier grows the latent heads and feed-forward widths. Maskable weights are the latent array
and the Linear weights of the blocks; adapters, heads, norms and biases are private per task.
Shapes, sizes and the reasons for them: docs/models.md.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from perceiver_pytorch.perceiver_pytorch import Attention, FeedForward, PreNorm, fourier_encode
from torch import nn


@dataclass(frozen=True)
class PerceiverProfile:
    num_latents: int
    latent_dim: int
    depth: int
    cross_heads: int
    cross_dim_head: int
    latent_heads: int
    latent_dim_head: int
    ff_mult: int
    dropout: float
    text_dim: int
    num_freq_bands: int = 6
    max_freq: float = 10.0
    image_patch: int = 1    # side of the square of pixels one image token holds
    image_grid: int | None = None   # the most patches along an image's side (None: no limit)

    def patch_for(self, config_patch, image_size):
        """The image patch a task reads with: its dataset config's `image_patch` when set, else the profile's,
        made larger for a large image until its side holds at most `image_grid` patches."""
        if config_patch is not None:
            return config_patch
        if self.image_grid is None:
            return self.image_patch
        return max(self.image_patch, math.ceil(image_size / self.image_grid))


PROFILES = {
    "paper": PerceiverProfile(num_latents=256, latent_dim=512, depth=3, cross_heads=1, cross_dim_head=64,
                              latent_heads=8, latent_dim_head=64, ff_mult=4, dropout=0.1, text_dim=256),
    "demo": PerceiverProfile(num_latents=32, latent_dim=96, depth=2, cross_heads=1, cross_dim_head=64,
                             latent_heads=4, latent_dim_head=16, ff_mult=2, dropout=0.0, text_dim=32,
                             image_patch=4, image_grid=16),
}


def perceiver_widths(profile: PerceiverProfile, width_mult):
    scale = math.sqrt(width_mult)
    return {"latent_heads": int(math.floor(profile.latent_heads * scale)),
            "ff_hidden": int(math.floor(profile.latent_dim * profile.ff_mult * scale))}


def feed_forward(dim, hidden, dropout):
    """perceiver-pytorch FeedForward with an arbitrary hidden width (GEGLU: first layer is 2*hidden)."""
    ff = FeedForward(dim, mult=1, dropout=dropout)
    ff.net[0] = nn.Linear(dim, 2 * hidden)
    ff.net[2] = nn.Linear(hidden, dim)
    return ff


def mask_padding(k, mask):
    """Keys (b h n d) and SDPA's boolean key mask for perceiver-pytorch's padding mask (True = keep).

    Upstream fills padded similarities with the lowest finite value, so a sequence of nothing but
    padding weighs all its values equally and passes no gradient to queries or keys, where SDPA
    would give zeros (or NaN). Zeroed keys with nothing masked give such a row the same.
    """
    mask = rearrange(mask, "b ... -> b (...)")
    all_padding = ~mask.any(dim=-1)
    k = k.masked_fill(rearrange(all_padding, "b -> b 1 1 1"), 0.0)
    return k, rearrange(mask | all_padding[:, None], "b n -> b 1 1 n")


class SDPAAttention(Attention):
    """perceiver-pytorch's Attention computed by scaled_dot_product_attention (same submodules and result)."""

    def forward(self, x, context=None, mask=None, inverted_attention=False):
        if inverted_attention or self.queries_contribute_kv:
            # upstream options this model never sets (softmax over queries, queries joining the keys)
            return super().forward(x, context, mask, inverted_attention)
        q = self.to_q(x)
        k, v = self.to_kv(x if context is None else context).chunk(2, dim=-1)
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))
        if mask is not None:
            k, mask = mask_padding(k, mask)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale,
                                             dropout_p=self.dropout.p if self.training else 0.0)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


class LatentArray(nn.Module):
    """The learned latent array as a module with a `weight`, so it is masked like any Linear."""

    def __init__(self, num_latents, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_latents, dim))

    def forward(self, batch_size):
        return repeat(self.weight, "n d -> b n d", b=batch_size)


class ImageAdapter(nn.Module):
    """Patches of pixels + Fourier position features -> LayerNorm -> this task's [k ; v] projection.

    `patch` 1 is the original's one token per pixel; a larger patch gives each token a square of pixels
    (zero-padded at the right and bottom edges when the side is not a multiple).
    """

    def __init__(self, kv_dim, num_freq_bands, max_freq, patch=1):
        super().__init__()
        self.num_freq_bands, self.max_freq, self.patch = num_freq_bands, max_freq, patch
        context_dim = 3 * patch * patch + 2 * (2 * num_freq_bands + 1)
        self.norm = nn.LayerNorm(context_dim)
        self.to_kv = nn.Linear(context_dim, kv_dim, bias=False)
        self._positions = {}

    def positions(self, height, width, device, dtype):
        key = (height, width, device, dtype)
        if key not in self._positions:   # the grid depends on the image size only: build it once
            axes = [torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype) for n in (height, width)]
            grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
            enc = fourier_encode(grid, self.max_freq, self.num_freq_bands)
            self._positions[key] = rearrange(enc, "h w a f -> (h w) (a f)")
        return self._positions[key]

    def forward(self, x):
        p = self.patch
        x = F.pad(x, (0, -x.shape[3] % p, 0, -x.shape[2] % p))
        b, _, h, w = x.shape
        pixels = rearrange(x, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=p, p2=p)
        pos = repeat(self.positions(h // p, w // p, x.device, x.dtype), "n f -> b n f", b=b)
        return self.to_kv(self.norm(torch.cat((pixels, pos), dim=-1))), None


class TextAdapter(nn.Module):
    """Token embedding + learned positions -> LayerNorm -> this task's [k ; v] projection; mask = tokens != 0."""

    def __init__(self, kv_dim, vocab_size, max_length, dim):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.positions = nn.Embedding(max_length, dim)
        self.norm = nn.LayerNorm(dim)
        self.to_kv = nn.Linear(dim, kv_dim, bias=False)

    def forward(self, x):
        mask = x != 0
        pos = self.positions(torch.arange(x.shape[1], device=x.device))
        return self.to_kv(self.norm(self.tokens(x) + pos)), mask


class PerceiverIO(nn.Module):
    modalities = ("image", "text")

    def __init__(self, profile="demo", width_mult=1.0):
        super().__init__()
        p = PROFILES[profile]
        self.profile, self.width_mult, self.p = profile, width_mult, p
        self.widths = perceiver_widths(p, width_mult)
        heads, hidden = self.widths["latent_heads"], self.widths["ff_hidden"]
        self.latents = LatentArray(p.num_latents, p.latent_dim)
        cross = SDPAAttention(p.latent_dim, heads=p.cross_heads, dim_head=p.cross_dim_head, dropout=p.dropout)
        cross.to_kv = nn.Identity()   # the task's adapter produces [k ; v]
        self.cross_attn = PreNorm(p.latent_dim, cross)
        self.cross_ff = PreNorm(p.latent_dim, feed_forward(p.latent_dim, hidden, p.dropout))
        self.layers = nn.ModuleList([
            nn.ModuleList([
                PreNorm(p.latent_dim, SDPAAttention(p.latent_dim, heads=heads, dim_head=p.latent_dim_head,
                                                    dropout=p.dropout)),
                PreNorm(p.latent_dim, feed_forward(p.latent_dim, hidden, p.dropout)),
            ]) for _ in range(p.depth)])
        self.adapters = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        self._init_linears(self)

    @staticmethod
    def _init_linears(module):
        for m in module.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def cross_kv_dim(self):
        return 2 * self.p.cross_heads * self.p.cross_dim_head

    def maskable_modules(self):
        names = ["latents", "cross_attn.fn.to_q", "cross_attn.fn.to_out",
                 "cross_ff.fn.net.0", "cross_ff.fn.net.2"]
        for i in range(self.p.depth):
            names += [f"layers.{i}.0.fn.{n}" for n in ("to_q", "to_kv", "to_out")]
            names += [f"layers.{i}.1.fn.net.{n}" for n in (0, 2)]
        return {name: self.get_submodule(name) for name in names}

    @staticmethod
    def dim0_blocks(module_name):
        """Fused rows: latent to_kv is [k | v], the GEGLU first layer is [x | gates]."""
        return 2 if module_name.endswith(("to_kv", "net.0")) else 1

    def add_task_modules(self, name, modality, num_classes, adapter_config, width_mult):
        """The task's adapter and head (neither depends on the width multiplier)."""
        p = self.p
        if modality == "image":
            adapter = ImageAdapter(self.cross_kv_dim, p.num_freq_bands, p.max_freq,
                                   p.patch_for(adapter_config.get("image_patch"), adapter_config["image_size"]))
        elif modality == "text":
            adapter = TextAdapter(self.cross_kv_dim, adapter_config["vocab_size"],
                                  adapter_config["max_text_length"], p.text_dim)
        else:
            raise ValueError(f"unknown modality {modality!r} for task {name!r}")
        self._init_linears(adapter)
        head = nn.Sequential(nn.LayerNorm(p.latent_dim), nn.Linear(p.latent_dim, num_classes))
        nn.init.normal_(head[1].weight, 0.0, 0.01)
        nn.init.zeros_(head[1].bias)
        self.adapters[name] = adapter
        self.heads[name] = head

    def task_modules(self, name):
        """The task's private sub-modules (state-dict prefix -> module)."""
        return {"adapters": self.adapters[name], "heads": self.heads[name]}

    def forward(self, x, task):
        context, mask = self.adapters[task](x)
        z = self.latents(x.shape[0])
        z = self.cross_attn(z, context=context, mask=mask) + z
        z = self.cross_ff(z) + z
        for attn, ff in self.layers:
            z = attn(z) + z
            z = ff(z) + z
        return self.heads[task](z.mean(dim=1))
