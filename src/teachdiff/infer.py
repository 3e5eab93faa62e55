"""Sampling and inference: DDPM-avg, uncertainty maps and full-field-of-view restoration.

The trained network restores a patch; a user has whole images of any size, 8- or 16-bit, and
wants the paper's DDPM-avg (the mean of N = 15 samples, §S5) together with its uncertainty maps
(§S5.1, Eqs. 15-16). This module turns one into the other:

- :func:`sample` draws ``n_samples`` restorations per input with DDPM (Eq. 7), DDIM or
  DPM-Solver++(2M), in chunks
  of at most ``batch_size`` images per network call;
- :func:`summarize_samples` / :func:`uncertainty_maps` compute the mean, the standard-deviation
  map (Eq. 15) and the entropy map (Eq. 16); :func:`restore` does both steps;
- :func:`tiled_apply` runs any patch-wise function over a large image in overlapping tiles with
  smooth blending (our addition: the authors only scored 256 x 256 patches);
- :func:`restore_image` does everything for a NumPy image or z-stack of any size, 8- or 16-bit,
  and returns the results in the input's own intensity scale.

**Noise that belongs to a pixel, not to a tile.** Every Gaussian draw of the samplers (y_T and the
noise added at each DDPM step) comes from a :class:`NoiseField`: a fixed function of
(seed, image, sample, step, channel, row, column) computed by hashing those integers. A tile
therefore sees exactly the crop of the noise the whole image would have seen, so overlapping
tiles agree wherever the network sees enough context, and the result does not depend on
``batch_size`` or on the tile size. With independent noise per tile, a *stochastic* sampler
would give two different samples in each overlap and the blend of the two would be visibly
smoother there (a seam in every sample and a band of low values in the std map). What remains
different between tiled and whole-image inference is only the network's view near a tile edge
*inside* the image, where convolutions see zero padding instead of the neighbouring pixels: the
outputs within the ``halo`` of such an edge are dropped and the next band is blended.

**Tiles stay inside the image.** At the image border a tile sees exactly what the whole-image pass
sees (the same size-multiple padding at the bottom and right, the network's own zero padding, the
same pooling grid), so tiling changes nothing there. For a network with a finite receptive field
(CARE, Noise2Void: their ``halo``), tiled and whole-image outputs agree to float precision.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import teachdiff
from teachdiff.data import from_model_range, to_model_range
from teachdiff.data.io import bit_depth_of
from teachdiff.diffusion import NoiseSchedule, ddim_sample, ddim_timesteps, ddpm_sample, dpm_solver_pp_sample
from teachdiff.progress import CallProgress, as_progress
from teachdiff.sampling import FAST_SAMPLING, PAPER_SAMPLING, SamplingSetting

__all__ = [
    "FAST_SAMPLING",
    "NoiseField",
    "PAPER_SAMPLING",
    "RestorationResult",
    "SamplingSetting",
    "sample",
    "sample_tiled",
    "summarize_samples",
    "uncertainty_maps",
    "ddpm_avg",
    "restore",
    "tiled_apply",
    "blend_window",
    "pad_reflect",
    "default_batch_size",
    "memory_budget",
    "activation_bytes",
    "TilePlan",
    "plan_tiles",
    "default_halo",
    "default_overlap",
    "default_tile",
    "restore_image",
    "restore_deterministic",
    "restore_with",
]

SAMPLERS = ("ddpm", "ddim", "dpm++")
CPU_MAX_BATCH = 8
OVERLAP_FRACTION = 1 / 8


Model = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------------------------
# Position-keyed Gaussian noise
# ----------------------------------------------------------------------------------------------

_MASK32 = 0xFFFFFFFF


def _mul32(h: torch.Tensor, c: int) -> torch.Tensor:
    """(h * c) mod 2**32 for int64 tensors holding 32-bit values, without int64 overflow."""
    low = h * (c & 0xFFFF)
    high = ((h * (c >> 16)) & 0xFFFF) << 16
    return (low + high) & _MASK32


def _mix32(h: torch.Tensor) -> torch.Tensor:
    """A bijective 32-bit integer hash (the "lowbias32" xor-shift-multiply finaliser)."""
    h = h ^ (h >> 16)
    h = _mul32(h, 0x7FEB352D)
    h = h ^ (h >> 15)
    h = _mul32(h, 0x846CA68B)
    return h ^ (h >> 16)


class NoiseField:
    r"""Standard normal noise that is a fixed function of where and when it is used.

    ``z = BoxMuller(hash(seed, image, sample, step, channel, row, col))``: the value at a pixel
    does not depend on the tile, the batch or the device that asks for it, so tiled and
    whole-image sampling see the same noise. Each key is folded in with a bijective 32-bit hash,
    so two keys that differ in one coordinate never share a value along that coordinate. Step 0
    holds the initial y_T; step t >= 1 the noise added when leaving step t.

    Two 24-bit uniforms feed the Box-Muller transform
    :math:`z = \sqrt{-2 \ln u_1}\, \cos(2 \pi u_2)`, so |z| < 5.9.
    """

    def __init__(self, seed: int = 0):
        self.seed = int(seed) & _MASK32

    def __repr__(self) -> str:
        return f"NoiseField(seed={self.seed})"

    @classmethod
    def from_generator(cls, generator: torch.Generator | None) -> "NoiseField":
        """A field seeded by one draw from ``generator`` (or from torch's global RNG)."""
        seed = torch.randint(0, 2**31 - 1, (1,), generator=generator,
                             device=generator.device if generator is not None else "cpu")
        return cls(int(seed.item()))

    def keys(self, images: torch.Tensor, samples: torch.Tensor, channels: int, tops: torch.Tensor,
             lefts: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Per-pixel hash of everything but the step: int64 tensor (B, channels, height, width).

        ``images``, ``samples``, ``tops`` and ``lefts`` are int tensors of shape (B,): which
        image and sample each batch element is, and where its crop starts in the full image.
        """
        device = images.device
        rows = tops.reshape(-1, 1, 1, 1) + torch.arange(height, device=device).reshape(1, 1, -1, 1)
        cols = lefts.reshape(-1, 1, 1, 1) + torch.arange(width, device=device).reshape(1, 1, 1, -1)
        chans = torch.arange(channels, device=device).reshape(1, -1, 1, 1)
        h = _mix32(torch.full((1,), self.seed, dtype=torch.int64, device=device) ^ images.reshape(-1, 1, 1, 1))
        h = _mix32(h ^ samples.reshape(-1, 1, 1, 1))
        h = _mix32(h ^ chans)
        h = _mix32(h ^ (rows & _MASK32))
        return _mix32(h ^ (cols & _MASK32))

    @staticmethod
    def normal(keys: torch.Tensor, step: int, dtype=torch.float32) -> torch.Tensor:
        """The standard normal values of ``keys`` (from :meth:`keys`) at diffusion step ``step``."""
        h1 = _mix32(keys ^ (int(step) & _MASK32))
        h2 = _mix32(h1 ^ 0x5BD1E995)
        u1 = ((h1 >> 8).to(torch.float32) + 0.5) / 2**24
        u2 = (h2 >> 8).to(torch.float32) / 2**24
        return (torch.sqrt(-2 * torch.log(u1)) * torch.cos(2 * math.pi * u2)).to(dtype)

    def crop(self, step: int, height: int, width: int, top: int = 0, left: int = 0, image: int = 0,
             sample: int = 0, channels: int = 1) -> torch.Tensor:
        """The (channels, height, width) crop of the field at ``step`` starting at (top, left)."""
        one = torch.ones(1, dtype=torch.int64)
        keys = self.keys(one * image, one * sample, channels, one * top, one * left, height, width)
        return self.normal(keys, step)[0]


# ----------------------------------------------------------------------------------------------
# Samplers with injected noise
# ----------------------------------------------------------------------------------------------


def _check_sampler(sampler: str, steps: int, schedule: NoiseSchedule) -> None:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be 'ddpm' (the paper's Eq. 7), 'ddim' or 'dpm++' (DPM-Solver++(2M), "
                         f"both with fewer steps), got {sampler!r}.")
    if sampler != "ddpm" and (int(steps) != steps or not 1 <= steps <= schedule.T):
        raise ValueError(f"steps must be an integer in 1..T={schedule.T} for {sampler}, got {steps!r}.")


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


def _pad_amounts(size: int, multiple: int) -> int:
    return (-size) % multiple


def pad_reflect(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Mirror-pad the last two axes by any amount (repeated reflection, ``d c b | a b c d``).

    torch's "reflect" mode needs pads smaller than the image; this applies it repeatedly so a
    small image can be padded up to a large tile. A side of length 1 is replicated.
    """
    while top or bottom or left or right:
        h, w = x.shape[-2:]
        cap_h, cap_w = max(h - 1, 0), max(w - 1, 0)
        step = [min(left, cap_w), min(right, cap_w), min(top, cap_h), min(bottom, cap_h)]
        if cap_h == 0 and (top or bottom) or cap_w == 0 and (left or right):
            return F.pad(x, (left, right, top, bottom), mode="replicate")
        x = F.pad(x, tuple(step), mode="reflect")
        left, right, top, bottom = left - step[0], right - step[1], top - step[2], bottom - step[3]
    return x


def _check_images(x, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ValueError(f"{name} must be a tensor of shape (N, C, H, W) in [-1, 1], got {shape}; "
                         "use img[None, None] for one 2-D image, or teachdiff.infer.restore_image for NumPy arrays.")
    if not x.is_floating_point():
        raise ValueError(f"{name} has integer dtype {x.dtype}; scale it to [-1, 1] first with "
                         "teachdiff.data.to_model_range(image, bit_depth).")


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _calls_per_run(sampler: str, steps: int, schedule: NoiseSchedule) -> int:
    """Network calls of one sampler run: T for DDPM, the number of DDIM timesteps for DDIM."""
    return schedule.T if sampler == "ddpm" else len(ddim_timesteps(schedule, steps))


class _CountedModel:
    """The model, reporting every call to a :class:`CallProgress` (for the per-call bar and ETA)."""

    def __init__(self, model, meter: CallProgress):
        self.model, self.meter = model, meter
        self.config = getattr(model, "config", None)

    def __call__(self, *args):
        out = self.model(*args)
        self.meter.step()
        return out


@torch.no_grad()
def _sample_items(model, x: torch.Tensor, images: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor,
                  schedule: NoiseSchedule, n_samples: int, field: NoiseField, batch_size: int,
                  sampler: str, steps: int, eta: float, clip: bool, variance: str,
                  meter: CallProgress | None) -> torch.Tensor:
    """n_samples runs for each of the B inputs in x, in chunks of <= batch_size network inputs.

    ``images``, ``tops`` and ``lefts`` (int tensors of shape (B,)) locate each input in its
    full image, for the noise field. Returns (B, n_samples, C_target, h, w) on x's device. The
    network runs under ``torch.inference_mode`` (no autograd bookkeeping at all); the result is
    an ordinary tensor.
    """
    device = _model_device(model, x.device)
    net = _CountedModel(model, meter) if meter is not None else model
    b, _, h, w = x.shape
    c_target = _target_channels(model)
    item_input = torch.arange(b).repeat_interleave(n_samples)
    item_sample = torch.arange(n_samples).repeat(b)
    out = torch.empty(b * n_samples, c_target, h, w, dtype=x.dtype, device=x.device)
    chunks = torch.split(torch.arange(b * n_samples), batch_size)
    # CI's capped run (teachdiff.capped_mode): two sampler steps (the DDPM's on a schedule of two
    # steps), and the first chunk stands in for all.
    steps = teachdiff.capped(steps, 2)
    if teachdiff.capped(schedule.T, 2) < schedule.T:
        schedule = NoiseSchedule(T=2, s=schedule.s, kind=schedule.kind)
    for k, chunk in enumerate(chunks):
        if k >= teachdiff.capped(len(chunks), 1):
            out[chunk] = out[chunks[0][: len(chunk)]]
            continue
        which = item_input[chunk]
        with torch.inference_mode():
            keys = field.keys(images[which].to(device), item_sample[chunk].to(device), c_target,
                              tops[which].to(device), lefts[which].to(device), h, w)
            xs = x[which].to(device)
            noise = lambda step: NoiseField.normal(keys, step, xs.dtype)  # noqa: B023, E731
            if sampler == "ddpm":
                y0 = ddpm_sample(net, xs, schedule, clip=clip, variance=variance, noise=noise)[:, 0]
            elif sampler == "ddim":
                y0 = ddim_sample(net, xs, schedule, steps=steps, eta=eta, clip=clip, noise=noise)[:, 0]
            else:
                y0 = dpm_solver_pp_sample(net, xs, schedule, steps=steps, clip=clip, noise=noise)[:, 0]
            out[chunk] = y0.to(x.device)
    return out.reshape(b, n_samples, c_target, h, w)


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


def _noise_field(seed: int | None, generator: torch.Generator | None) -> NoiseField:
    if seed is not None and generator is not None:
        raise ValueError("pass either seed or generator, not both.")
    return NoiseField(seed) if seed is not None else NoiseField.from_generator(generator)


@torch.no_grad()
def sample(model: Model, x: torch.Tensor, schedule: NoiseSchedule, n_samples: int = 1, sampler: str = "ddpm",
           steps: int = 20, batch_size: int | None = None, generator: torch.Generator | None = None,
           progress: bool = True, *, seed: int | None = None, eta: float = 0.0, clip: bool = True,
           variance: str = "beta") -> torch.Tensor:
    """``n_samples`` restorations of each input: a tensor (N, n_samples, C, H, W) in [-1, 1].

    x: (N, C, H, W) in [-1, 1], any height and width (reflection-padded to the network's size
    multiple, cropped back). ``sampler="ddpm"`` is the paper's ancestral sampler over all T
    steps (Eq. 7); ``"ddim"`` uses ``steps`` network calls (``eta=0`` deterministic given y_T), and
    ``"dpm++"`` (:func:`teachdiff.diffusion.dpm_solver_pp_sample`) as many, deterministic.

    The N * n_samples runs are made in chunks of at most ``batch_size`` images per network call
    (default :func:`default_batch_size`). The noise comes from a :class:`NoiseField` seeded by
    ``seed`` or by one draw from ``generator``, so the result is reproducible and independent of
    ``batch_size``. The model is put in eval mode (no dropout) while sampling. ``progress``:
    a bar over network calls with an ETA and a warning when the run will take long (``True``),
    nothing (``False``), or a :class:`teachdiff.progress.CallProgress` to report to.
    """
    _check_images(x)
    _check_sampler(sampler, steps, schedule)
    n_samples = _check_positive_int(n_samples, "n_samples")
    n, _, h, w = x.shape
    m = _size_multiple(model)
    xp = pad_reflect(x, 0, _pad_amounts(h, m), 0, _pad_amounts(w, m))
    if batch_size is None:
        batch_size = default_batch_size(model, *xp.shape[2:])
    batch_size = _check_positive_int(batch_size, "batch_size")
    field = _noise_field(seed, generator)
    zeros = torch.zeros(n, dtype=torch.int64)
    meter, owned = as_progress(progress)
    if meter is not None:
        calls = math.ceil(n * n_samples / batch_size) * _calls_per_run(sampler, steps, schedule)
        meter.start(calls, f"{sampler.upper()} {n_samples} sample(s)")
    try:
        with _EvalMode(model):
            out = _sample_items(model, xp, torch.arange(n), zeros, zeros, schedule, n_samples, field, batch_size,
                                sampler, steps, eta, clip, variance, meter)
    finally:
        if owned:
            meter.close()
    return out[..., :h, :w]


# ----------------------------------------------------------------------------------------------
# DDPM-avg and uncertainty maps (§S5, §S5.1)
# ----------------------------------------------------------------------------------------------


@dataclass
class RestorationResult:
    """What :func:`restore` returns: tensors (N, C, H, W) except ``samples``.

(:func:`restore_image` returns the same fields as NumPy arrays of the input image's shape.)

    - ``mean``: DDPM-avg, the pixel-wise mean of the samples (§S5), in [-1, 1];
    - ``sample``: the first sample (the paper's single-sample "DDPM"), in [-1, 1];
    - ``std``: Eq. 15, the pixel-wise standard deviation on the 0..255 scale divided by 255,
      so values lie in [0, 0.5];
    - ``entropy``: Eq. 16, the pixel-wise entropy (natural log, nats) of the values a pixel
      takes across samples after quantisation to 0..255, between 0 and ln N;
    - ``samples``: all samples (N, n_samples, C, H, W), or None when not kept;
    - ``lower``, ``upper``: the per-pixel interval of the samples' quantiles
      (:func:`teachdiff.metrics.sample_interval`), from :func:`restore_image` with ``interval``;
      otherwise None.
    """

    mean: torch.Tensor
    sample: torch.Tensor
    std: torch.Tensor
    entropy: torch.Tensor
    n_samples: int
    samples: torch.Tensor | None = None
    lower: torch.Tensor | None = None
    upper: torch.Tensor | None = None


def _to_levels(samples: torch.Tensor, levels: int = 256) -> torch.Tensor:
    """[-1, 1] -> the 0..levels-1 scale (0..255 for the paper's 8-bit images)."""
    return (samples.float() + 1) / 2 * (levels - 1)


def uncertainty_maps(samples: torch.Tensor, levels: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The two uncertainty maps of §S5.1 from samples (N, n_samples, C, H, W) in [-1, 1].

    Standard deviation, Eq. 15, with \hat y^i on the 0..255 scale (population std, 1/N):

    .. math:: \sigma_{jk} = \sqrt{\frac{\sum_{i=1}^N (\hat y^i_{jk} - \bar{\hat y}_{jk})^2}{255^2 N}}

    The 1/N makes it biased low for few samples: its square has expectation (N - 1)/N times the
    variance of the samples (0.5 at N = 2, 0.93 at the paper's N = 15), and the std itself is
    lower still (for Gaussian samples its median at N = 2 is 0.48 of the true spread). Do not
    read std maps from very few samples.

    Entropy, Eq. 16, over the M distinct values a pixel takes among the N samples once they are
    rounded to integers 0..255, with p_m the fraction of samples taking the m-th value:

    .. math:: s_{jk} = -\sum_{m=1}^{M} p_m \ln p_m

    The paper writes "log" without a base; we use the natural log (nats), so a pixel whose N
    samples are all different scores ln N (ln 15 = 2.71) and one with identical samples 0.
    Computed as -(1/N) sum_i ln(c_i / N), where c_i counts the samples equal to sample i: each
    distinct value m appears c_m = N p_m times in that sum, which gives Eq. 16 without building
    a histogram per pixel. ``levels`` changes the quantisation (256 = the paper's 8 bits).
    Returns (std, entropy), each (N, C, H, W) float32.
    """
    if not isinstance(samples, torch.Tensor) or samples.ndim != 5:
        shape = tuple(samples.shape) if hasattr(samples, "shape") else type(samples).__name__
        raise ValueError(f"samples must have shape (N, n_samples, C, H, W), got {shape}; "
                         "add the sample axis with samples[:, None] for a single sample.")
    values = _to_levels(samples, levels)
    std = values.std(dim=1, correction=0) / (levels - 1)
    quantised = values.round().clamp(0, levels - 1)
    n = quantised.shape[1]
    entropy = torch.zeros_like(std)
    for i in range(n):
        counts = (quantised == quantised[:, i : i + 1]).sum(dim=1).float()
        entropy -= torch.log(counts / n) / n
    return std, entropy


def summarize_samples(samples: torch.Tensor, keep_samples: bool = False, levels: int = 256) -> RestorationResult:
    """DDPM-avg (the mean over the sample axis), the first sample and both uncertainty maps."""
    std, entropy = uncertainty_maps(samples, levels)
    return RestorationResult(mean=samples.float().mean(dim=1), sample=samples[:, 0].float(), std=std,
                             entropy=entropy, n_samples=samples.shape[1],
                             samples=samples if keep_samples else None)


@torch.no_grad()
def restore(model: Model, x: torch.Tensor, schedule: NoiseSchedule, n_samples: int = 15, sampler: str = "ddpm",
            steps: int = 20, tile: int | str | None = None, overlap: int | None = None,
            batch_size: int | None = None, generator: torch.Generator | None = None,
            progress: bool | CallProgress = True, keep_samples: bool = False, *,
            seed: int | None = None, eta: float = 0.0, clip: bool = True, variance: str = "beta",
            levels: int = 256) -> RestorationResult:
    """DDPM-avg of ``n_samples`` samples (default 15, §S5) with its uncertainty maps (§S5.1).

    x: (N, C, H, W) in [-1, 1], any size. With ``tile=None`` the whole image goes through the
    network at once (padded to its size multiple); with ``tile=64`` (say) it is processed in
    overlapping tiles blended by :func:`tiled_apply`, so memory does not grow with the image;
    ``tile="auto"`` picks the tile from the model (:func:`default_tile`), ``overlap=None`` is
    :func:`default_overlap` (1/8 of the tile). Every tile draws its samples from the same
    position-keyed :class:`NoiseField`, so the samples stay consistent across tiles (see the
    module docstring).
    """
    samples = sample_tiled(model, x, schedule, n_samples=n_samples, sampler=sampler, steps=steps, tile=tile,
                           overlap=overlap, batch_size=batch_size, generator=generator, progress=progress,
                           seed=seed, eta=eta, clip=clip, variance=variance)
    return summarize_samples(samples, keep_samples=keep_samples, levels=levels)


def ddpm_avg(model: Model, x: torch.Tensor, schedule: NoiseSchedule, n_samples: int = 15, **kwargs) -> torch.Tensor:
    """DDPM-avg (§S5): the pixel-wise mean of ``n_samples`` DDPM samples, (N, C, H, W) in [-1, 1].

    Keyword arguments are those of :func:`restore`.
    """
    return restore(model, x, schedule, n_samples=n_samples, **kwargs).mean


@torch.no_grad()
def sample_tiled(model: Model, x: torch.Tensor, schedule: NoiseSchedule, n_samples: int = 1,
                 sampler: str = "ddpm", steps: int = 20, tile: int | str | None = "auto", overlap: int | None = None,
                 batch_size: int | None = None, generator: torch.Generator | None = None,
                 progress: bool | CallProgress = True, *, seed: int | None = None, eta: float = 0.0,
                 clip: bool = True, variance: str = "beta", halo: int | None = None) -> torch.Tensor:
    """Like :func:`sample`, but tile by tile (``tile=None``: the whole image in one piece).

    Returns (N, n_samples, C, H, W). ``tile="auto"`` (the default) is :func:`default_tile`: the
    training patch size, or a somewhat larger tile where that costs fewer FLOPs for this image;
    ``overlap=None`` is :func:`default_overlap`, 1/8 of the tile; ``halo`` (default
    :func:`default_halo`, a quarter of the overlap) the outputs each tile drops at an edge inside
    the image (:func:`tiled_apply`).

    Batching: the (tile, sample) pairs of all tiles are packed into network calls of exactly
    ``batch_size`` images (default :func:`default_batch_size`, from the device's memory
    budget) wherever possible -- groups of ``batch_size / gcd(batch_size, n_samples)`` tiles,
    so that every call of a group is full -- giving about ``tiles * n_samples / batch_size``
    calls per sampler step. The noise is keyed by position, so the result does not depend on
    ``batch_size``.
    """
    if tile is None:
        return sample(model, x, schedule, n_samples=n_samples, sampler=sampler, steps=steps,
                      batch_size=batch_size, generator=generator, progress=progress, seed=seed, eta=eta,
                      clip=clip, variance=variance)
    _check_images(x)
    _check_sampler(sampler, steps, schedule)
    n_samples = _check_positive_int(n_samples, "n_samples")
    multiple = _size_multiple(model)
    if tile == "auto":
        tile = default_tile(model, x.shape[-2:])
    plan = plan_tiles(x.shape[-2:], tile, overlap, multiple, halo)
    if batch_size is None:
        batch_size = default_batch_size(model, plan.tile_h, plan.tile_w)
    batch_size = _check_positive_int(batch_size, "batch_size")
    field = _noise_field(seed, generator)
    group = batch_size // math.gcd(batch_size, n_samples)
    tiles = x.shape[0] * plan.n_tiles
    groups = [min(group, tiles - first) for first in range(0, tiles, group)]
    calls = sum(math.ceil(k * n_samples / batch_size) for k in groups) * _calls_per_run(sampler, steps, schedule)
    meter, owned = as_progress(progress)
    if meter is not None:
        meter.device = meter.device or str(_model_device(model, x.device))
        meter.start(calls, f"{sampler.upper()} {n_samples} sample(s), {tiles} tile(s) of "
                           f"{plan.tile_h}x{plan.tile_w}")

    def run_tiles(tiles: torch.Tensor, origins: torch.Tensor) -> torch.Tensor:
        return _sample_items(model, tiles, origins[:, 0], origins[:, 1], origins[:, 2], schedule, n_samples,
                             field, batch_size, sampler, steps, eta, clip, variance, meter)

    try:
        with _EvalMode(model):
            return tiled_apply(run_tiles, x, tile=tile, overlap=plan.overlap, batch_size=group, progress=False,
                               multiple=multiple, with_origins=True, halo=plan.halo)
    finally:
        if owned:
            meter.close()


# ----------------------------------------------------------------------------------------------
# Tiled inference with smooth blending
# ----------------------------------------------------------------------------------------------


def blend_window(size: int, overlap: int, taper_start: bool = True, taper_end: bool = True,
                 halo: int = 0) -> torch.Tensor:
    r"""1-D blending weights of a tile: 0 over the ``halo`` pixels at a tapered end, then a
    raised-cosine ramp over the next ``overlap - 2 halo`` pixels, 1 in between.

    .. math:: w_{\text{halo} + i} = \sin^2\left(\frac{\pi}{2} \cdot \frac{i + 1/2}{\text{overlap} - 2\,\text{halo}}\right),
              \quad 0 \le i < \text{overlap} - 2\,\text{halo}

    mirrored at the far end. Two neighbouring tiles that overlap by exactly ``overlap`` pixels
    then have ramps that are sin^2 and cos^2 of the same angle over the middle of the overlap,
    and 0 against 1 over its ends: their weights sum to 1 (a partition of unity), a function
    that is the same in both tiles comes out unchanged, and one that differs crosses over
    smoothly. The outputs within ``halo`` of a tile edge get no weight at all (the network saw
    zero padding there); the half-pixel offset keeps every ramp weight above 0.
    """
    if not 0 <= 2 * halo <= overlap:
        raise ValueError(f"halo must be in 0..overlap/2 = 0..{overlap // 2}, got {halo}.")
    w = torch.ones(size, dtype=torch.float64)
    ramp_length = overlap - 2 * halo
    ramp = torch.sin(math.pi / 2 * (torch.arange(ramp_length, dtype=torch.float64) + 0.5) / max(ramp_length, 1)) ** 2
    start = torch.cat([torch.zeros(halo, dtype=torch.float64), ramp])
    if overlap > 0:
        if taper_start:
            w[:overlap - halo] = start
        if taper_end:
            w[size - overlap + halo:] = torch.minimum(w[size - overlap + halo:], start.flip(0))
    return w.float()


def default_overlap(tile: int) -> int:
    """The default overlap of neighbouring tiles: 1/8 of the tile, rounded to an even number
    (8 pixels for 64-pixel tiles, 32 for 256). Proportional, so that the share of pixels
    computed twice, about ``1 - (7/8)^2`` = 23 %, is the same for every tile size."""
    return 2 * round(int(tile) * OVERLAP_FRACTION / 2)


def default_halo(overlap: int) -> int:
    """The halo of a model that states none (one whose receptive field covers any tile, such as
    the DDPM's U-Net with self-attention): a quarter of the overlap, so that each tile drops its
    outputs nearest an inner edge and the middle half of the overlap is blended."""
    return int(overlap) // 4


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of one (height, width) image go: the geometry of :func:`tiled_apply`.

    The image is padded at the bottom and right to a multiple of the network's size multiple,
    exactly as the whole-image pass pads it, to ``padded_h x padded_w``. Tiles of
    ``tile_h x tile_w`` lie inside that image: they start at every (starts_y, starts_x) pair,
    spread evenly from 0 to the far border, at multiples of the size multiple (the pooling grid of
    the whole image), and neighbours overlap by at least ``overlap`` pixels. An output pixel within
    ``halo`` of a tile edge that is inside the image gets no weight; image borders are never cut.
    """

    height: int
    width: int
    tile_h: int
    tile_w: int
    overlap: int
    halo: int
    starts_y: tuple[int, ...]
    starts_x: tuple[int, ...]
    padded_h: int
    padded_w: int

    @property
    def n_tiles(self) -> int:
        """Tiles per image."""
        return len(self.starts_y) * len(self.starts_x)

    @property
    def pixels(self) -> int:
        """Pixels the network processes per image (overlaps and padding included)."""
        return self.n_tiles * self.tile_h * self.tile_w


def plan_tiles(shape: Sequence[int], tile: int, overlap: int | None = None, multiple: int = 1,
               halo: int | None = None) -> TilePlan:
    """The :class:`TilePlan` of an image of ``shape`` (..., H, W).

    ``halo``: how far the network's output depends on its input (its receptive-field radius,
    e.g. ``Noise2Void.halo``); ``None`` for a model that states none (:func:`default_halo` of
    the overlap). ``overlap=None`` is :func:`default_overlap`, widened to ``2 * halo`` where the
    tile allows it: then every kept output saw all of its receptive field, and the tiled result
    equals the whole-image one. An axis no longer than the tile gets one tile of its padded
    length; ``tile`` must be a multiple of ``multiple``.
    """
    tile = _check_positive_int(tile, "tile")
    multiple = _check_positive_int(multiple, "multiple")
    if tile % multiple:
        raise ValueError(f"tile={tile} is not divisible by {multiple}, the model's size multiple; "
                         f"use a multiple of {multiple}, e.g. {max(multiple, tile // multiple * multiple)}.")
    if halo is not None and (isinstance(halo, bool) or int(halo) != halo or halo < 0):
        raise ValueError(f"halo must be a non-negative integer (pixels), got {halo!r}.")
    if overlap is None:
        overlap = default_overlap(tile)
        if halo is not None:
            overlap = min(max(overlap, 2 * int(halo)), tile - multiple)
    if isinstance(overlap, bool) or int(overlap) != overlap or not 0 <= overlap < tile:
        raise ValueError(f"overlap must be an integer in 0..tile-1 = 0..{tile - 1}, got {overlap!r}.")
    overlap = int(overlap)
    halo = default_halo(overlap) if halo is None else min(int(halo), overlap // 2)
    h, w = (int(s) for s in shape[-2:])
    padded_h, padded_w = h + _pad_amounts(h, multiple), w + _pad_amounts(w, multiple)
    # Origins on the pooling grid, unless the stride cannot hold one step of it (a network that
    # takes a single input size, whose tile is its size multiple: pix2pix).
    align = multiple if tile - overlap >= multiple else 1
    tile_h, tile_w = min(tile, padded_h), min(tile, padded_w)
    return TilePlan(h, w, tile_h, tile_w, overlap, halo, _tile_starts(padded_h, tile_h, overlap, align),
                    _tile_starts(padded_w, tile_w, overlap, align), padded_h, padded_w)


def _tile_starts(size: int, tile: int, overlap: int, align: int) -> tuple[int, ...]:
    """Tile origins along an axis of ``size`` pixels: the first at 0, the last ending at ``size``,
    the fewest tiles whose origins, spread evenly and rounded down to multiples of ``align``,
    overlap their neighbours by at least ``overlap`` pixels."""
    if size <= tile:
        return (0,)
    last = size - tile
    n = max(2, math.ceil((size - overlap) / (tile - overlap)))
    while True:
        starts = tuple(sorted({align * (i * last // ((n - 1) * align)) for i in range(n - 1)} | {last}))
        if all(b - a <= tile - overlap for a, b in zip(starts, starts[1:])):
            return starts
        n += 1


_FLOP_MODELS: dict = {}


def _flop_model(model) -> tuple[float, float]:
    r"""(a, b) with FLOPs(one image of P pixels) = a P + b P^2 for the MP-U-Net ``model``.

    Convolutions and 1x1 projections cost a fixed amount per pixel: 2 C_in k^2 C_out per output
    pixel, summed over the levels (a P). Self-attention over the N = P / 4^l tokens of its level
    with C channels costs 4 N^2 C (the two matrix products q^T k and w v), so b P^2. FLOPs depend
    only on shapes: one forward pass on zeros at a small side (4 m pixels, m the size multiple)
    with hooks on every :class:`~teachdiff.unet.MPConv` and attention block gives both terms
    (they agree with torch's FlopCounterMode). A model without MP-U-Net layers counts pixels: (1, 0).
    """
    from teachdiff.unet import Block, MPConv

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


@torch.no_grad()
def tiled_apply(fn: Callable, image: torch.Tensor, tile: int = 256, overlap: int | None = None, batch_size: int = 4,
                progress: bool = True, multiple: int = 1, with_origins: bool = False,
                halo: int | None = None) -> torch.Tensor:
    """Apply a patch-wise ``fn`` to a large image in overlapping tiles and blend them seamlessly.

    image: (N, C, H, W), any H and W. ``fn`` maps a batch of tiles (B, C, th, tw) to a tensor
    (B, ..., th, tw) (any axes between the batch and the spatial ones, e.g. samples), so
    baselines and the diffusion sampler can share it. With ``with_origins=True`` it is called as
    ``fn(tiles, origins)`` with ``origins`` an int64 tensor (B, 3) of (image index, top, left) of
    each tile in the coordinates of the image, for position-dependent work such as the noise field.

    Geometry (:func:`plan_tiles`): the image is padded at the bottom and right to a multiple of
    ``multiple`` (the network's size multiple) by reflection, as the whole-image pass pads it, and
    covered by tiles that lie inside it, start on the pooling grid and overlap by at least
    ``overlap`` (default :func:`default_overlap`, 1/8 of the tile, widened to ``2 * halo``).
    Each tile's output is weighted by the separable :func:`blend_window`: 0 within ``halo`` of an
    edge inside the image, a ramp over the rest of the overlap, no taper at the image border. The
    weighted sum is divided by the sum of weights and the padding cropped off. A network whose
    output at a pixel depends only on inputs within ``halo`` pixels (its receptive field; e.g.
    ``Noise2Void.halo``) therefore gives the whole-image output exactly. Returns (N, ..., H, W)
    on the image's device. ``tile`` must be a multiple of ``multiple``.
    """
    _check_images(image, "image")
    n, _, h, w = image.shape
    plan = plan_tiles((h, w), tile, overlap, multiple, halo)
    batch_size = _check_positive_int(batch_size, "batch_size")
    tile_h, tile_w, padded_h, padded_w = plan.tile_h, plan.tile_w, plan.padded_h, plan.padded_w
    padded = pad_reflect(image, 0, padded_h - h, 0, padded_w - w)

    origins = [(i, y, x) for i in range(n) for y in plan.starts_y for x in plan.starts_x]
    out = weight_sum = None
    bar = tqdm(total=len(origins), desc="tiles", unit="tile", disable=not progress or len(origins) < 2)
    for first in range(0, len(origins), batch_size):
        batch = origins[first:first + batch_size]
        tiles = torch.stack([padded[i, :, y:y + tile_h, x:x + tile_w] for i, y, x in batch])
        result = fn(tiles, torch.tensor(batch, dtype=torch.int64)) if with_origins else fn(tiles)
        if not isinstance(result, torch.Tensor) or result.shape[0] != len(batch) or \
                tuple(result.shape[-2:]) != (tile_h, tile_w):
            got = tuple(result.shape) if isinstance(result, torch.Tensor) else type(result).__name__
            raise ValueError(f"fn must map tiles {tuple(tiles.shape)} to a tensor (B, ..., {tile_h}, {tile_w}) "
                             f"with the same batch size and tile size, got {got}.")
        result = result.to(image.device, torch.float32)
        if out is None:
            out = torch.zeros(n, *result.shape[1:-2], padded_h, padded_w, device=image.device)
            weight_sum = torch.zeros(n, padded_h, padded_w, device=image.device)
        extra = (1,) * (result.ndim - 3)
        for k, (i, y, x) in enumerate(batch):
            wy = blend_window(tile_h, plan.overlap, taper_start=y > 0, taper_end=y + tile_h < padded_h,
                              halo=plan.halo)
            wx = blend_window(tile_w, plan.overlap, taper_start=x > 0, taper_end=x + tile_w < padded_w,
                              halo=plan.halo)
            window = (wy[:, None] * wx[None, :]).to(image.device)
            out[i, ..., y:y + tile_h, x:x + tile_w] += result[k] * window.reshape(*extra, tile_h, tile_w)
            weight_sum[i, y:y + tile_h, x:x + tile_w] += window
        bar.update(len(batch))
    bar.close()
    out = out / weight_sum.reshape(n, *(1,) * (out.ndim - 3), padded_h, padded_w)
    return out[..., :h, :w]


# ----------------------------------------------------------------------------------------------
# NumPy images of any size and bit depth
# ----------------------------------------------------------------------------------------------


def restore_image(model: Model, image: np.ndarray, schedule: NoiseSchedule, n_samples: int = 15,
                  bit_depth: int | None = None, tile: int | str | None = "auto", overlap: int | None = None,
                  seed: int = 0, progress: bool | CallProgress = True, normalization=None,
                  interval: float | None = None, calibration=None, **kwargs) -> RestorationResult:
    """Restore a NumPy image (H, W) or z-stack (Z, H, W) of any size, 8- or 16-bit.

    Intensities are scaled with :func:`teachdiff.data.to_model_range` (``2 v / (2^B - 1) - 1``,
    the scaling used in training; ``bit_depth`` B defaults to the pixel type's) and back with
    :func:`teachdiff.data.from_model_range`. Stacks are restored slice by slice (slice z uses
    seed ``seed + z``, so slices get independent noise). Returns a :class:`RestorationResult` of
    NumPy float32 arrays of the input's shape: ``mean`` and ``sample`` in the input's own
    intensity scale (0..2^B - 1), ``std`` (Eq. 15, in [0, 0.5]) and ``entropy`` (Eq. 16, nats).
    ``normalization`` (a :class:`teachdiff.data.folder.Normalization`, e.g. the one a model trained
    on your folder carries) replaces the bit-depth scaling in both directions.
    With ``interval`` (a level such as 0.9) also ``lower`` and ``upper``, in the input's scale:
    the samples' (1 - level)/2 and (1 + level)/2 quantiles per pixel
    (:func:`teachdiff.metrics.sample_interval`; uncalibrated, see that function for the
    coverage to expect), or with ``calibration`` (a :class:`teachdiff.metrics.ConformalScale`
    fitted on the 0..255 scale) the conformal interval mean -+ scale * std.
    ``tile="auto"``: tiles of about the training patch size (:func:`default_tile`), overlapping
    by 1/8; ``tile=None``: the whole image at once. One progress bar counts the network calls
    of all slices. Other keyword arguments go to :func:`restore`.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be 2-D (H, W) or a z-stack (Z, H, W), got shape {image.shape}; "
                         "RGB images must be converted to grayscale first.")
    if image.ndim == 3 and image.shape[-1] in (3, 4) and min(image.shape[:2]) > 4:
        raise ValueError(f"image of shape {image.shape} looks like an RGB(A) colour image (H, W, {image.shape[-1]}), "
                         "not a z-stack (Z, H, W); convert it to grayscale first (e.g. skimage.color.rgb2gray), "
                         "or pass a stack with the slices along the first axis.")
    bit_depth = bit_depth if bit_depth is not None else bit_depth_of(image.dtype)
    to_model = normalization.input_to_model if normalization is not None else partial(to_model_range, bit_depth=bit_depth)
    back = normalization.from_model if normalization is not None else partial(from_model_range, bit_depth=bit_depth)
    stack = image[None] if image.ndim == 2 else image
    meter, owned = as_progress(progress)
    if meter is not None and meter.bar is None:
        meter.jobs = len(stack)
    parts = []
    try:
        for z, plane in enumerate(stack):
            x = torch.as_tensor(to_model(plane))[None, None]
            part = restore(model, x, schedule, n_samples=n_samples, tile=tile, overlap=overlap, seed=seed + z,
                           progress=meter if meter is not None else False,
                           keep_samples=interval is not None and calibration is None, **kwargs)
            if interval is not None and calibration is None:
                from teachdiff.metrics import sample_interval

                part.lower, part.upper = (torch.as_tensor(q) for q in sample_interval(part.samples[0, :, 0], interval))
                part.samples = None
            elif interval is not None:  # conformal, on the 0..255 scale of the calibration
                bounds = calibration.interval((part.mean[0, 0] + 1) * 127.5, 255 * part.std[0, 0])
                part.lower, part.upper = (torch.as_tensor(q / 127.5 - 1).clamp(-1, 1) for q in bounds)
            parts.append(part)
    finally:
        if owned:
            meter.close()
    fields = {
        "mean": [back(p.mean[0, 0]).numpy() for p in parts],
        "sample": [back(p.sample[0, 0]).numpy() for p in parts],
        "std": [p.std[0, 0].numpy() for p in parts],
        "entropy": [p.entropy[0, 0].numpy() for p in parts],
    }
    if interval is not None:
        fields["lower"] = [back(p.lower.float()).numpy() for p in parts]
        fields["upper"] = [back(p.upper.float()).numpy() for p in parts]
    arrays = {k: (np.stack(v) if image.ndim == 3 else v[0]).astype(np.float32) for k, v in fields.items()}
    return RestorationResult(**arrays, n_samples=n_samples)


def restore_deterministic(method, image: np.ndarray, normalization, tile: int | None = 256,
                          overlap: int | None = None, batch_size: int | None = None,
                          progress: bool = False) -> np.ndarray:
    """A regression method (CARE, Noise2Void, pix2pix, UNet-RCAN: anything with ``.restore(x)`` from
    (N, 1, H, W) in [-1, 1] to the same) on a NumPy image (H, W) or stack (Z, H, W), slice by slice,
    whole (``tile=None``) or in tiles (:func:`tiled_apply`); float32 of the input's shape in its
    intensity scale (``normalization``, a :class:`teachdiff.data.folder.Normalization`, both ways)."""
    image = np.asarray(image)
    stack = image[None] if image.ndim == 2 else image
    device = next((p.device for p in method.parameters()), torch.device("cpu")) \
        if isinstance(method, torch.nn.Module) else torch.device("cpu")
    slices = []
    for plane in stack:
        x = torch.as_tensor(normalization.input_to_model(plane))[None, None]
        with torch.no_grad():
            if tile is None:
                y = method.restore(x.to(device)).cpu()
            else:
                y = tiled_apply(lambda t: method.restore(t.to(device)).cpu(), x, tile=tile, overlap=overlap,
                                batch_size=batch_size or 4, progress=progress,
                                multiple=int(getattr(method, "size_multiple", 1)), halo=getattr(method, "halo", None))
        slices.append(normalization.from_model(y[0, 0]).numpy())
    out = np.stack(slices).astype(np.float32)
    return out[0] if image.ndim == 2 else out


def restore_with(method, image: np.ndarray, n_samples: int = FAST_SAMPLING.samples,
                 sampler: str = FAST_SAMPLING.sampler, steps: int = FAST_SAMPLING.steps,
                 eta: float = FAST_SAMPLING.eta, seed: int = 0, tile: int | str | None = "auto",
                 progress: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Any trained method (``teachdiff.train.load_method``) on a NumPy image, in the image's own
    intensity scale, with the normalisation the method was trained with: ``(restoration, std)``.
    A DDPM gives DDPM-avg of ``n_samples`` samples (default: the fast setting) and its Eq. 15
    standard-deviation map; a regression method gives its output and None."""
    from teachdiff.data.folder import restore_normalization

    scaling, _ = restore_normalization(getattr(method, "normalization", None), np.asarray(image))
    if getattr(method, "kind", None) == "ddpm":
        config = getattr(method, "config", None)
        result = restore_image(method.unet, image, method.schedule, n_samples=n_samples, sampler=sampler,
                               steps=steps, eta=eta, seed=seed, tile=tile, progress=progress, normalization=scaling,
                               clip=getattr(config, "clip", True), variance=getattr(config, "variance", "beta"))
        return result.mean, result.std
    return restore_deterministic(method, image, scaling, 256 if tile == "auto" else tile, progress=progress), None
