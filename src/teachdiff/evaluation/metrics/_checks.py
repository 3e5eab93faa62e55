"""Input checks shared by all metrics: one clear error (or warning) instead of silent garbage."""

from __future__ import annotations

import warnings

import numpy as np
import torch


class MetricWarning(UserWarning):
    """A metric is undefined for this input (returned as ``nan``) or the input looks mis-scaled."""


def warn_undefined(metric: str, reason: str) -> float:
    """Warn that ``metric`` is undefined here and return ``nan`` (never a silent 0)."""
    warnings.warn(f"{metric} is undefined: {reason}; returning nan.", MetricWarning, stacklevel=3)
    return float("nan")


def finite_array(values, name: str, fix: str) -> np.ndarray:
    """``values`` (NumPy array, tensor or nested sequence) as a non-empty, finite float64 array;
    otherwise a ``ValueError`` naming ``name`` and, for NaN/Inf, the ``fix``."""
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu").double().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError(f"{name} is empty; pass non-empty data.")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN/Inf values; {fix}.")
    return array


def as_image(image, name: str = "image") -> np.ndarray:
    """Return ``image`` (NumPy array or torch tensor) as a finite 2-D float64 array.

    Raises ``ValueError`` naming the problem and the fix for: a non-2-D shape, an empty image,
    complex or boolean data, and NaN/Inf values. Warns (``MetricWarning``) when the values do
    not look like the paper's 0..255 scale, the classic silent mistake of scoring [-1, 1] or
    [0, 1] images (the message carries no per-image numbers, so Python shows it once).
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().to("cpu")
        if image.is_complex():
            raise ValueError(f"{name} is a complex tensor; pass a real image on the 0..255 scale.")
        image = image.double().numpy()
    array = np.asarray(image)
    if array.dtype == bool or np.iscomplexobj(array) or not np.issubdtype(array.dtype, np.number):
        raise ValueError(
            f"{name} has dtype {array.dtype}; pass a real-valued image on the 0..255 scale."
        )
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a single 2-D image (H, W), got shape {tuple(array.shape)}; "
            "squeeze channel axes (x.squeeze()) or use the batched helpers "
            "(teachdiff.evaluation.metrics.evaluate_batch / per_image) for a stack of images."
        )
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {tuple(array.shape)}); pass a non-empty image.")
    array = array.astype(np.float64, copy=False)
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(
            f"{name} contains {int(bad.sum())} NaN/Inf value(s); the metrics are undefined. "
            "Check the model output (a diverged sampler gives NaN) or replace them before scoring."
        )
    low, high = float(array.min()), float(array.max())
    if low < -1e-6:
        warnings.warn(
            f"{name} has negative values; the metrics expect the 0..255 scale. "
            "Map [-1, 1] network outputs with (x + 1) * 127.5 and clip to [0, 255] "
            "(teachdiff.evaluation.metrics.clip_and_rescale).",
            MetricWarning,
            stacklevel=3,
        )
    elif 0 < high <= 1.0:
        warnings.warn(
            f"{name} lies in [0, 1]; the metrics expect the 0..255 scale. "
            "Multiply by 255 first.",
            MetricWarning,
            stacklevel=3,
        )
    return array


def as_pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert a (prediction, ground truth) pair of equally shaped 2-D images."""
    pred_array = as_image(pred, "pred")
    gt_array = as_image(gt, "gt")
    if pred_array.shape != gt_array.shape:
        raise ValueError(
            f"pred has shape {pred_array.shape} but gt has shape {gt_array.shape}; "
            "score images of the same size (crop both to the same region, or re-run the "
            "restoration on the ground truth's field of view)."
        )
    return pred_array, gt_array
