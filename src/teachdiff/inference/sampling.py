"""The samplers run in batches: DDPM (Eq. 7), DDIM and DPM-Solver++(2M), whole or tiled."""

from __future__ import annotations

import math
from typing import Callable

import torch

import teachdiff
from teachdiff.core.diffusion import NoiseSchedule, ddim_sample, ddim_timesteps, ddpm_sample, dpm_solver_pp_sample
from teachdiff.core.noise import NoiseField
from teachdiff.core.progress import CallProgress, as_progress
from teachdiff.core.tiling import (check_image_batch, check_positive_int, pad_amount, pad_reflect, plan_tiles,
                                   tiled_apply)
from teachdiff.inference.budget import (_EvalMode, _model_device, _size_multiple, _target_channels,
                                        default_batch_size, default_tile)
from teachdiff.inference.settings import FAST_SAMPLING, PAPER_SAMPLING, SAMPLERS, SamplingSetting

__all__ = ["SamplingSetting", "PAPER_SAMPLING", "FAST_SAMPLING", "sample", "sample_tiled"]


Model = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------------------------
# Samplers with injected noise
# ----------------------------------------------------------------------------------------------


def _check_sampler(sampler: str, steps: int, schedule: NoiseSchedule) -> None:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be 'ddpm' (the paper's Eq. 7), 'ddim' or 'dpm++' (DPM-Solver++(2M), "
                         f"both with fewer steps), got {sampler!r}.")
    if sampler != "ddpm" and (int(steps) != steps or not 1 <= steps <= schedule.T):
        raise ValueError(f"steps must be an integer in 1..T={schedule.T} for {sampler}, got {steps!r}.")


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
    ``"dpm++"`` (:func:`teachdiff.core.diffusion.dpm_solver_pp_sample`) as many, deterministic.

    The N * n_samples runs are made in chunks of at most ``batch_size`` images per network call
    (default :func:`default_batch_size`). The noise comes from a :class:`NoiseField` seeded by
    ``seed`` or by one draw from ``generator``, so the result is reproducible and independent of
    ``batch_size``. The model is put in eval mode (no dropout) while sampling. ``progress``:
    a bar over network calls with an ETA and a warning when the run will take long (``True``),
    nothing (``False``), or a :class:`teachdiff.core.progress.CallProgress` to report to.
    """
    check_image_batch(x)
    _check_sampler(sampler, steps, schedule)
    n_samples = check_positive_int(n_samples, "n_samples")
    n, _, h, w = x.shape
    m = _size_multiple(model)
    xp = pad_reflect(x, 0, pad_amount(h, m), 0, pad_amount(w, m))
    if batch_size is None:
        batch_size = default_batch_size(model, *xp.shape[2:])
    batch_size = check_positive_int(batch_size, "batch_size")
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
    check_image_batch(x)
    _check_sampler(sampler, steps, schedule)
    n_samples = check_positive_int(n_samples, "n_samples")
    multiple = _size_multiple(model)
    if tile == "auto":
        tile = default_tile(model, x.shape[-2:])
    plan = plan_tiles(x.shape[-2:], tile, overlap, multiple, halo)
    if batch_size is None:
        batch_size = default_batch_size(model, plan.tile_h, plan.tile_w)
    batch_size = check_positive_int(batch_size, "batch_size")
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
