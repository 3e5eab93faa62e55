"""Benchmark post-processing before scoring, as in the paper (§3.6).

The paper: "for [N2V, CARE, UNet-RCAN] we first clipped the pixel values to the range [0, 255],
and then rescaled them to the ground truth pixel distribution of the training set using a linear
transformation"; DDPM and pix2pix outputs were only clipped to [0, 255] and cast to 8 bit. The
paper does not say which linear map; we match the first two moments (mean and standard
deviation), the least-squares choice for a linear map between two distributions, and offer
matching two percentiles (robust to a few hot pixels) as an option. The map's parameters are
fitted on whatever ``pred`` is given: pass one method's whole stack of test predictions to fit one
map per method (the reading we follow), or a single image to fit it per image.

Here this map is a free per-method fit that DDPM-avg and pix2pix do not get: when CARE or UNet-RCAN
are trained against the GT's scale like the DDPM, it is worth about as much as their lead. So the
post-processing is a stated choice, :data:`POSTPROCESSING`, with one owner, :func:`postprocess`:
``paper`` as §3.6 (and the two classical filters rescaled like CARE), ``none`` (every output only
clipped) and ``all`` (every output, DDPM-avg, pix2pix and the raw input included, clipped and
mapped the same way). Tables should show ``paper`` beside one that treats every method alike.

Predictions were also re-aligned to the ground truth before scoring (§4.1: "we re-aligned the
predictions to the GT for all models"); see :func:`align_to_gt` (sub-pixel phase correlation) and
:func:`align_predictions`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from teachdiff.evaluation.metrics._checks import finite_array
from teachdiff.core.paper import PAPER_RESCALED, POSTPROCESSING

RESCALE_METHODS = ("mean_std", "percentile")


@dataclass(frozen=True)
class IntensityReference:
    """Summary of the ground-truth training pixel distribution that predictions are mapped onto."""

    mean: float
    std: float
    low: float
    """Value at ``percentiles[0]`` (used by ``method="percentile"``)."""
    high: float
    percentiles: tuple[float, float] = (1.0, 99.9)

    @classmethod
    def from_images(cls, images, percentiles: tuple[float, float] = (1.0, 99.9)) -> IntensityReference:
        """Statistics of all pixels of ``images`` (an array or a list of arrays, 0..255 scale)."""
        pixels = _all_pixels(images, "gt_train_reference")
        low, high = np.percentile(pixels, percentiles)
        return cls(float(pixels.mean()), float(pixels.std()), float(low), float(high), tuple(percentiles))


def clip_and_rescale(
    pred,
    gt_train_reference,
    method: str = "mean_std",
    clip_output: bool = True,
) -> np.ndarray:
    r"""Clip ``pred`` to [0, 255], then map it linearly onto the GT training distribution.

    ``method="mean_std"``: :math:`\hat y' = (\hat y - \mu_{\hat y}) \, \sigma_y / \sigma_{\hat y} + \mu_y`.
    ``method="percentile"``: the ``reference.percentiles`` of ``pred`` go to those of the GT.

    ``pred`` may be one image or a stack (the map is fitted on all of it). ``gt_train_reference``
    is an :class:`IntensityReference` or the GT training images themselves. ``clip_output`` clips
    the result to [0, 255] again, so that it stays on the scale the metrics are defined on
    (the paper does not say; without it, PSNR's L = 255 would no longer be the peak).
    A constant prediction cannot be stretched: it is moved to the reference mean.
    """
    if method not in RESCALE_METHODS:
        raise ValueError(f"unknown rescale method {method!r}; choose one of {RESCALE_METHODS}.")
    reference = (
        gt_train_reference
        if isinstance(gt_train_reference, IntensityReference)
        else IntensityReference.from_images(gt_train_reference)
    )
    clipped = np.clip(_as_float_array(pred, "pred"), 0.0, 255.0)
    if method == "mean_std":
        source_centre, source_spread = clipped.mean(), clipped.std()
        target_centre, target_spread = reference.mean, reference.std
    else:
        source_low, source_high = np.percentile(clipped, reference.percentiles)
        source_centre, source_spread = source_low, source_high - source_low
        target_centre, target_spread = reference.low, reference.high - reference.low
    if source_spread > 0:
        rescaled = (clipped - source_centre) * (target_spread / source_spread) + target_centre
    else:
        rescaled = np.full_like(clipped, reference.mean)
    return np.clip(rescaled, 0.0, 255.0) if clip_output else rescaled


def postprocess(method: str, pred, reference: IntensityReference, mode: str = "paper") -> np.ndarray:
    """One method's stack of predictions (0..255 scale) made ready for scoring under ``mode``.

    ``paper``: the methods in :data:`PAPER_RESCALED` are clipped and mapped onto the GT training
    distribution ``reference`` (:func:`clip_and_rescale`, one map fitted on the whole stack), the
    rest only clipped to [0, 255]. ``none``: every method only clipped. ``all``: every method
    clipped and mapped, whatever its name.
    """
    if mode not in POSTPROCESSING:
        raise ValueError(f"unknown post-processing {mode!r}; choose one of {', '.join(POSTPROCESSING)}.")
    rescaled = method in PAPER_RESCALED if mode == "paper" else mode == "all"
    return clip_and_rescale(pred, reference) if rescaled else np.clip(_as_float_array(pred, "pred"), 0.0, 255.0)


def align_predictions(predictions: dict, gt) -> tuple[dict, dict]:
    """Every stack of ``predictions`` (``{method: (N, H, W)}``) re-aligned image by image onto ``gt``
    (N, H, W) with :func:`align_to_gt`; returns ``(aligned, shifts)`` with ``shifts[method]`` an
    (N, 2) array of the (dy, dx) applied. An image that cannot be registered (constant, or offset by
    more than ``align_to_gt``'s ``max_shift``) is left as it is, with a NaN shift."""
    aligned, shifts = {}, {}
    for method, stack in predictions.items():
        out, applied = [], []
        for pred, target in zip(stack, gt):
            try:
                moved, shift = align_to_gt(pred, target)
            except ValueError:
                moved, shift = np.asarray(pred, dtype=float), (np.nan, np.nan)
            out.append(np.clip(moved, 0.0, 255.0))
            applied.append(shift)
        aligned[method], shifts[method] = np.stack(out), np.array(applied, dtype=float)
    return aligned, shifts


def align_to_gt(pred, gt, upsample_factor: int = 20, max_shift: float | None = 10.0):
    """Shift ``pred`` by the sub-pixel offset that best registers it onto ``gt``.

    The offset is the peak of the cross-correlation of the two images
    (``skimage.registration.phase_cross_correlation`` with ``normalization=None``, refined to
    1 / ``upsample_factor`` pixel), computed on mean-free, Hann-windowed copies: without the
    window the image borders, which do not wrap around, pull the peak to zero shift, and the
    phase-only ("phase") normalisation amplifies the numerically empty high frequencies of
    smooth images. The shift is applied to the original prediction with cubic-spline
    interpolation (``scipy.ndimage.shift``, edges continued with the nearest value). Returns
    ``(aligned, shift)`` where ``shift = (dy, dx)`` in pixels was applied to ``pred``. A found
    offset larger than ``max_shift`` pixels means the images do not show the same field of view
    and raises ``ValueError`` (pass ``max_shift=None`` to accept any shift).
    """
    from scipy import ndimage
    from skimage.registration import phase_cross_correlation

    pred_array = _as_float_array(pred, "pred")
    gt_array = _as_float_array(gt, "gt")
    if pred_array.ndim != 2 or pred_array.shape != gt_array.shape:
        raise ValueError(
            f"align_to_gt needs two 2-D images of the same shape, got {pred_array.shape} and "
            f"{gt_array.shape}."
        )
    if pred_array.std() == 0 or gt_array.std() == 0:
        raise ValueError("cannot align a constant image (no structure to register); skip alignment.")
    window = np.outer(np.hanning(gt_array.shape[0]), np.hanning(gt_array.shape[1]))
    shift, _, _ = phase_cross_correlation(
        (gt_array - gt_array.mean()) * window,
        (pred_array - pred_array.mean()) * window,
        upsample_factor=upsample_factor,
        normalization=None,
    )
    shift = tuple(float(s) for s in shift)
    if max_shift is not None and max(abs(s) for s in shift) > max_shift:
        raise ValueError(
            f"the prediction is offset by {shift} pixels from the ground truth, more than "
            f"max_shift={max_shift}; check that the files are paired correctly, or raise max_shift."
        )
    aligned = ndimage.shift(pred_array, shift, order=3, mode="nearest")
    return aligned, shift


def _as_float_array(images, name: str) -> np.ndarray:
    return finite_array(images, name, "fix the model output before post-processing")


def _all_pixels(images, name: str) -> np.ndarray:
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError(f"{name} is empty; pass the ground-truth training images.")
        return np.concatenate([_as_float_array(image, name).ravel() for image in images])
    return _as_float_array(images, name).ravel()
