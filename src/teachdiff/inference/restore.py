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

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from teachdiff.core.diffusion import NoiseSchedule
from teachdiff.core.progress import CallProgress, as_progress
from teachdiff.core.scale import from_model_range, to_model_range
from teachdiff.core.tiling import tiled_apply
from teachdiff.data.io import bit_depth_of
from teachdiff.inference.sampling import Model, sample_tiled
from teachdiff.inference.settings import FAST_SAMPLING, SamplingSetting

__all__ = ["RestorationResult", "uncertainty_maps", "summarize_samples", "restore", "ddpm_avg", "restore_image",
           "restore_deterministic", "draws_samples", "restore_method_image", "restore_with", "DETERMINISTIC_TILE"]


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
      (:func:`teachdiff.evaluation.metrics.sample_interval`), from :func:`restore_image` with ``interval``;
      otherwise None.

    A method that restores once (:func:`restore_method_image` with a regression) gives its one
    restoration as ``mean`` and ``sample``, ``n_samples = 1`` and no maps (``std``, ``entropy`` None).
    """

    mean: torch.Tensor
    sample: torch.Tensor
    std: torch.Tensor | None
    entropy: torch.Tensor | None
    n_samples: int
    samples: torch.Tensor | None = None
    lower: torch.Tensor | None = None
    upper: torch.Tensor | None = None


def _to_levels(samples: torch.Tensor, levels: int = 256) -> torch.Tensor:
    """[-1, 1] -> the 0..levels-1 scale (0..255 for the paper's 8-bit images).

    Not :func:`teachdiff.core.scale.from_model_range`, which clamps to [-1, 1] and takes a bit depth:
    Eq. 15's spread is that of the samples as drawn (a sampler without ``clip`` may leave [-1, 1]),
    and ``levels`` need not be a power of two. Eq. 16 clamps after rounding, in :func:`uncertainty_maps`.
    """
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

    The defaults are the paper's sampler (``sampler="ddpm"``, all T steps of Eq. 7, 15 samples), as
    everywhere at this level, where a network and a schedule are passed: it shows the paper's
    method. Restoring with a trained method (:func:`restore_method_image`, ``teachdiff restore``)
    defaults to the fast setting instead (:data:`teachdiff.inference.settings.FAST_SAMPLING`).

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
    (:func:`teachdiff.evaluation.metrics.sample_interval`; uncalibrated, see that function for the
    coverage to expect), or with ``calibration`` (a :class:`teachdiff.evaluation.metrics.ConformalScale`
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
    if normalization is not None:
        to_model, back = normalization.input_to_model, normalization.from_model
    else:
        to_model, back = partial(to_model_range, bit_depth=bit_depth), partial(from_model_range, bit_depth=bit_depth)
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
                from teachdiff.inference.intervals import sample_interval

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


DETERMINISTIC_TILE = 256
"""The tile of a method that restores once, for ``tile="auto"``: its convolutions cost the same per
pixel at any tile size, so the tile only bounds the memory."""


def restore_deterministic(method, image: np.ndarray, normalization, tile: int | None = DETERMINISTIC_TILE,
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


def draws_samples(method) -> bool:
    """Whether ``method`` draws samples of p(y | x) (``stochastic``: the DDPM) rather than restoring
    once. Anything without the attribute (an object with only ``restore(x)``) restores once."""
    return bool(getattr(method, "stochastic", False))


def restore_method_image(method, image: np.ndarray, *, normalization=None, sampling: SamplingSetting = FAST_SAMPLING,
                         tile: int | str | None = "auto", overlap: int | None = None, seed: int = 0,
                         batch_size: int | None = None, interval: float | None = None, calibration=None,
                         progress: bool | CallProgress = False) -> RestorationResult:
    """Any trained method (``teachdiff.store.resolve.load_method``) on a NumPy image (H, W) or z-stack
    (Z, H, W) of any size and bit depth: a :class:`RestorationResult` of float32 arrays of its shape.

    A method that :func:`draws_samples` gives DDPM-avg of ``sampling.samples`` samples with its maps
    (:func:`restore_image` with the method's ``denoiser``, ``schedule`` and ``sampler_options()``;
    ``sampling`` defaults to the fast setting, :data:`teachdiff.inference.settings.FAST_SAMPLING`),
    and with ``interval`` the ``lower`` and ``upper`` bounds. Any other method restores once
    (:func:`restore_deterministic`; ``tile="auto"`` is :data:`DETERMINISTIC_TILE`) and ignores
    ``sampling`` and ``seed``; it has no samples for an ``interval``.
    ``normalization`` (a :class:`teachdiff.data.folder.Normalization`) maps intensities both ways;
    default: the method's own, from :func:`teachdiff.data.folder.restore_normalization`.
    """
    from teachdiff.data.folder import restore_normalization

    if normalization is None:
        normalization, _ = restore_normalization(getattr(method, "normalization", None), np.asarray(image))
    if draws_samples(method):
        return restore_image(method.denoiser, image, method.schedule, n_samples=sampling.samples,
                             sampler=sampling.sampler, steps=sampling.steps, eta=sampling.eta, tile=tile,
                             overlap=overlap, seed=seed, batch_size=batch_size, progress=progress,
                             normalization=normalization, interval=interval, calibration=calibration,
                             **method.sampler_options())
    if interval is not None:
        raise ValueError(f"an interval needs samples, but this {getattr(method, 'kind', '?')} model restores "
                         "each image once; only a model that samples (the DDPM) gives intervals.")
    restored = restore_deterministic(method, image, normalization, DETERMINISTIC_TILE if tile == "auto" else tile,
                                     overlap, batch_size, progress=bool(progress))
    return RestorationResult(mean=restored, sample=restored, std=None, entropy=None, n_samples=1)


def restore_with(method, image: np.ndarray, n_samples: int = FAST_SAMPLING.samples,
                 sampler: str = FAST_SAMPLING.sampler, steps: int = FAST_SAMPLING.steps,
                 eta: float = FAST_SAMPLING.eta, seed: int = 0, tile: int | str | None = "auto",
                 progress: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`restore_method_image` as ``(restoration, std)``, in the image's own intensity scale:
    a DDPM gives DDPM-avg of ``n_samples`` samples (default: the fast setting) and its Eq. 15
    standard-deviation map; a regression method gives its output and None."""
    result = restore_method_image(method, image, sampling=SamplingSetting(sampler, steps, n_samples, eta),
                                  seed=seed, tile=tile, progress=progress)
    return result.mean, result.std
