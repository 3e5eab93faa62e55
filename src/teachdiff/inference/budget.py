"""How much fits: memory budgets, batch sizes, a FLOP model and the default tile."""

from __future__ import annotations

import os
from typing import Sequence
import torch
from teachdiff.core.tiling import plan_tiles

__all__ = ["memory_budget", "activation_bytes", "default_batch_size", "default_tile"]


CPU_MAX_BATCH = 8


# ----------------------------------------------------------------------------------------------
# Batched multi-sample inference
# ----------------------------------------------------------------------------------------------


def _size_multiple(model) -> int:
    return int(getattr(getattr(model, "config", None), "size_multiple", 1))


def _target_channels(model) -> int:
    return int(getattr(getattr(model, "config", None), "target_channels", 1))


def _model_device(model, fallback: torch.device) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
    return fallback


def memory_budget(device: torch.device | str) -> int:
    """Bytes of activations one network call may use on ``device``: the batching budget.

    CUDA: a quarter of the free memory. CPU: 1 GiB, or a quarter of the available RAM when that
    is less. MPS: 2 GiB (its memory is shared with the system and not queryable from torch).
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free // 4)
    if device.type == "mps":
        return 2 * 2**30
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        available = 8 * 2**30
    return int(min(2**30, available // 4))


def activation_bytes(model, height: int, width: int) -> int:
    """Estimated activation memory of one (height x width) image in one inference call.

    From the U-Net widths: every block keeps a few feature maps of its width, each level has a
    quarter of the pixels of the one above, and inference stores no gradients:
    ``bytes = 4 * H * W * sum_l(width_l * (2 * num_blocks + 4) / 4**l)`` plus the attention
    matrices ``4 * heads * (H W / 4**(levels - 1))**2``. A model without a ``config`` counts as a
    64-channel network.
    """
    config = getattr(model, "config", None)
    pixels = int(height) * int(width)
    if config is None:
        return 4 * pixels * 64 * 8
    widths = [config.channels * m for m in config.channel_mult]
    per_pixel = sum(w * (2 * config.num_blocks + 4) / 4**level for level, w in enumerate(widths))
    bottom = pixels / 4 ** (len(widths) - 1)
    heads = max(widths) // config.channels_per_head if config.attn_resolutions else 0
    return int(4 * pixels * per_pixel + 4 * heads * bottom**2)


def default_batch_size(model, height: int, width: int, device: torch.device | str | None = None,
                       budget: int | None = None) -> int:
    """Images per network call that fit the device's :func:`memory_budget`: the default ``batch_size``.

    ``budget // activation_bytes(model, height, width)`` images, at least 1. On CUDA at most 64;
    on CPU and MPS at most ``CPU_MAX_BATCH`` = 8 images: on a few cores larger calls stop paying
    off once they leave the caches. For the quick model at 64² (CPU time per pixel, two runs in
    ``benchmarks/results/restore_cpu.md``) one image per call costs 1.5-1.7x what 8 do, 8 are
    within 5-15 % of the best (15-60 images) and 120 are slower again; the paper's network,
    with six times the activations per pixel, leaves the caches sooner.
    ``budget`` (bytes) overrides the device's.
    """
    device = torch.device(device) if device is not None else _model_device(model, torch.device("cpu"))
    budget = memory_budget(device) if budget is None else int(budget)
    cap = 64 if device.type == "cuda" else CPU_MAX_BATCH
    return int(max(1, min(cap, budget // activation_bytes(model, height, width))))


class _EvalMode:
    """Context manager: the model in eval mode (no dropout) while sampling, restored after."""

    def __init__(self, model):
        self.model = model if isinstance(model, torch.nn.Module) else None

    def __enter__(self):
        self.was_training = self.model.training if self.model is not None else False
        if self.model is not None:
            self.model.eval()

    def __exit__(self, *exc):
        if self.model is not None:
            self.model.train(self.was_training)


_FLOP_MODELS: dict = {}


def _flop_model(model) -> tuple[float, float]:
    r"""(a, b) with FLOPs(one image of P pixels) = a P + b P^2 for the MP-U-Net ``model``.

    Convolutions and 1x1 projections cost a fixed amount per pixel: 2 C_in k^2 C_out per output
    pixel, summed over the levels (a P). Self-attention over the N = P / 4^l tokens of its level
    with C channels costs 4 N^2 C (the two matrix products q^T k and w v), so b P^2. FLOPs depend
    only on shapes: one forward pass on zeros at a small side (4 m pixels, m the size multiple)
    with hooks on every :class:`~teachdiff.core.unet.MPConv` and attention block gives both terms
    (they agree with torch's FlopCounterMode). A model without MP-U-Net layers counts pixels: (1, 0).
    """
    from teachdiff.core.unet import Block, MPConv

    config = getattr(model, "config", None)
    key = (type(model), repr(config))
    if key in _FLOP_MODELS:
        return _FLOP_MODELS[key]
    modules = list(model.modules()) if isinstance(model, torch.nn.Module) else []
    totals = {"conv": 0.0, "attention": 0.0}

    def count_conv(module, _inputs, out):
        totals["conv"] += 2.0 * out[0].numel() * module.weight[0].numel()

    def count_attention(module, _inputs, out):
        if module.num_heads:
            n = out.shape[-2] * out.shape[-1]
            totals["attention"] += 4.0 * n * n * out.shape[1]

    hooks = [m.register_forward_hook(count_conv) for m in modules if isinstance(m, MPConv)]
    hooks += [m.register_forward_hook(count_attention) for m in modules if isinstance(m, Block)]
    if not hooks:
        return (1.0, 0.0)
    side = 4 * _size_multiple(model)
    device = _model_device(model, torch.device("cpu"))
    try:
        with _EvalMode(model), torch.inference_mode():
            x = torch.zeros(1, getattr(config, "cond_channels", 1), side, side, device=device)
            y = torch.zeros(1, _target_channels(model), side, side, device=device)
            model(x, y, torch.full((1,), 0.5, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    pixels = side * side
    result = (max(totals["conv"], 1.0) / pixels, totals["attention"] / pixels**2)
    _FLOP_MODELS[key] = result
    return result


def default_tile(model, shape: Sequence[int] | None = None) -> int:
    r"""The tile size for ``model``: its training patch size ``config.image_size``, or a larger
    one (at most twice as large) where that costs fewer FLOPs on an image of ``shape``.

    Why not simply large tiles: a convolution costs the same per pixel at any tile size, but the
    bottleneck self-attention over N tokens costs ~N^2 per tile, and N grows with the tile's
    area, so its cost per tile grows as (tile / s)^4 and per pixel as (tile / s)^2 for training
    size s. With the proportional :func:`default_overlap`, the share of duplicated pixels is the
    same for every tile size, so larger tiles only pay off where they cut the padding of the
    last row and column of tiles. This returns the tile in s, s + m, ..., 2 s (m the size
    multiple) with the fewest FLOPs for the whole image, ``tiles * (a P + b P^2)`` (see
    :func:`_flop_model`), the smallest on ties; with ``shape=None`` the training size. A model
    without ``config.image_size`` gets 256. FLOPs are a fair guide over this range: in two runs
    the quick model's CPU time per pixel at 128² tiles was 0.97x and 1.21x that at 64², its
    FLOPs 1.04x (``benchmarks/results/restore_cpu.md``). The cap at 2 s keeps the attention
    near the token count the network was trained on.
    """
    config = getattr(model, "config", None)
    multiple = _size_multiple(model)
    train = -(-int(getattr(config, "image_size", 256) or 256) // multiple) * multiple
    if shape is None:
        return train
    a, b = _flop_model(model)

    def cost(tile: int) -> float:
        plan = plan_tiles(shape, tile, None, multiple)
        per_tile = plan.tile_h * plan.tile_w
        return plan.n_tiles * (a * per_tile + b * per_tile**2)

    return min(range(train, 2 * train + 1, multiple), key=lambda t: (cost(t), t))
