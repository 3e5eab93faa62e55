"""Image-quality metrics of the paper (§S2, §S4), on the 0..255 scale, per image and batched.

    from teachdiff.evaluation import metrics
    scores = metrics.evaluate(pred, gt, pixel_size=15.0)        # one pair -> dict
    table = metrics.evaluate_batch(preds, gts, pixel_size=15.0)  # stacks -> dict of arrays

Inputs are 2-D NumPy arrays or torch tensors on the 0..255 scale (stacks (N, H, W) for the
batched helpers). Bad input (shape mismatch, NaN/Inf, empty) raises ``ValueError``; a metric that
is undefined for a valid input (NRMSE of an all-zero GT, Pearson or resolution of a constant
image) is ``nan`` with a ``MetricWarning`` saying why; LPIPS is ``nan`` with one warning per
process when torchvision or its weights are unavailable.

Checks of uncertainty maps against the ground truth (rank correlation, sparsification / AUSE,
interval coverage, conformal calibration) are in :mod:`teachdiff.evaluation.metrics.uncertainty`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from teachdiff.evaluation.metrics._checks import MetricWarning, as_image, as_pair
from teachdiff.evaluation.metrics.decorrelation import (
    DecorrelationCurve,
    _decorrelation,
    _resolution,
    DecorrelationResult,
    decorrelation_analysis,
    decorrelation_resolution,
    resolution_ratio,
)
from teachdiff.evaluation.metrics.fidelity import (
    DATA_RANGE,
    MS_SSIM_BETAS,
    _mae,
    _ms_ssim,
    _nrmse,
    _pearson,
    _psnr,
    mae,
    ms_ssim,
    ms_ssim_min_size,
    nrmse,
    pearson,
    psnr,
)
from teachdiff.evaluation.metrics.perceptual import (
    LPIPSUnavailableWarning,
    LpipsNetwork,
    _lpips,
    get_lpips_network,
    lpips,
    lpips_batch,
)
from teachdiff.evaluation.metrics.postprocess import (
    PAPER_RESCALED,
    POSTPROCESSING,
    IntensityReference,
    align_predictions,
    align_to_gt,
    clip_and_rescale,
    postprocess,
)
from teachdiff.evaluation.metrics.uncertainty import (
    ConformalScale,
    SparsificationCurve,
    ause,
    interval_coverage,
    sample_interval,
    samples_for_level,
    sparsification_curve,
    uncertainty_rank_correlation,
)

__all__ = [
    "ConformalScale",
    "DATA_RANGE",
    "METRICS",
    "MS_SSIM_BETAS",
    "DecorrelationCurve",
    "DecorrelationResult",
    "IntensityReference",
    "LPIPSUnavailableWarning",
    "LpipsNetwork",
    "MetricInfo",
    "MetricWarning",
    "SparsificationCurve",
    "align_to_gt",
    "align_predictions",
    "postprocess",
    "POSTPROCESSING",
    "PAPER_RESCALED",
    "as_image",
    "ause",
    "clip_and_rescale",
    "decorrelation_analysis",
    "decorrelation_resolution",
    "evaluate",
    "evaluate_batch",
    "get_lpips_network",
    "interval_coverage",
    "lpips",
    "lpips_batch",
    "mae",
    "ms_ssim",
    "ms_ssim_min_size",
    "nrmse",
    "pearson",
    "per_image",
    "psnr",
    "resolution_ratio",
    "sample_interval",
    "samples_for_level",
    "sparsification_curve",
    "uncertainty_rank_correlation",
    "without_grid_floor",
]


@dataclass(frozen=True)
class MetricInfo:
    """How to read a metric: its label in tables and which direction is better."""

    label: str
    higher_is_better: bool | None
    """``None`` for the resolution ratio, whose ideal is 1."""


METRICS: dict[str, MetricInfo] = {
    "mae": MetricInfo("MAE", False),
    "nrmse": MetricInfo("NRMSE", False),
    "psnr": MetricInfo("PSNR", True),
    "ms_ssim": MetricInfo("MS-SSIM", True),
    "lpips": MetricInfo("LPIPS", False),
    "pearson": MetricInfo("Corr.", True),
    "resolution": MetricInfo("Res.", False),
    "resolution_gt": MetricInfo("Res. GT", False),
    "resolution_ratio": MetricInfo("Res. ratio", None),
}
"""The keys of :func:`evaluate`'s result, in the paper's order."""


def evaluate(
    pred, gt, pixel_size: float = 1.0, lpips: bool = True, lpips_net: LpipsNetwork | None = None,
    ms_ssim_scales: int = 5,
) -> dict[str, float]:
    """All metrics for one (prediction, ground truth) pair, keys as in :data:`METRICS`.

    ``resolution`` is the prediction's decorrelation resolution and ``resolution_gt`` the
    ground truth's, both in the unit of ``pixel_size``; ``resolution_ratio`` is Eq. 14.
    ``lpips=False`` skips LPIPS (reported as ``nan``); ``lpips_net`` injects a network.
    ``ms_ssim_scales`` < 5 scores images under 176 x 176 (:func:`ms_ssim`; not the paper's MS-SSIM).
    """
    pred_array, gt_array = as_pair(pred, gt)
    resolution = _resolution(_decorrelation(pred_array, pixel_size))
    resolution_gt = _resolution(_decorrelation(gt_array, pixel_size))
    return {
        "mae": _mae(pred_array, gt_array),
        "nrmse": _nrmse(pred_array, gt_array),
        "psnr": _psnr(pred_array, gt_array),
        "ms_ssim": _ms_ssim(pred_array, gt_array, scales=ms_ssim_scales),
        "lpips": float(_lpips(pred_array[None], gt_array[None], lpips_net)[0])
        if lpips
        else float("nan"),
        "pearson": _pearson(pred_array, gt_array),
        "resolution": resolution,
        "resolution_gt": resolution_gt,
        "resolution_ratio": resolution / resolution_gt,
    }


def without_grid_floor(scores: dict[str, float], pixel_size: float) -> dict[str, float]:
    """``scores`` with an unmeasured resolution set to ``nan`` (shown as "n/a (no peak)").

    When no curve of the decorrelation analysis has a peak beyond the first nonzero radius of
    its grid, 1 / (n_radii - 1) of Nyquist, k_c is that radius (the unfiltered curve keeps the
    image's mean and always peaks there, as in ``getDcorr.m``) and R = 2 (n_radii - 1) pixels:
    a property of the grid, not of the image. Such values (and ratios involving them) become
    ``nan``; every other score is unchanged.
    """
    n_radii = inspect.signature(decorrelation_analysis).parameters["n_radii"].default
    floor = 2.0 * pixel_size * (n_radii - 1) * (1 - 1e-9)
    scores = dict(scores)
    for key in ("resolution", "resolution_gt"):
        if scores[key] >= floor:
            scores[key] = float("nan")
    scores["resolution_ratio"] = scores["resolution"] / scores["resolution_gt"]
    return scores


def evaluate_batch(
    preds,
    gts,
    pixel_size: float = 1.0,
    lpips: bool = True,
    lpips_net: LpipsNetwork | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """:func:`evaluate` over stacks (N, H, W) (or lists of 2-D images): one array of N per metric."""
    _check_stacks(preds, gts)
    rows = [
        evaluate(pred, gt, pixel_size=pixel_size, lpips=lpips, lpips_net=lpips_net)
        for pred, gt in tqdm(
            zip(preds, gts), total=len(preds), desc="scoring", disable=not progress
        )
    ]
    return {name: np.array([row[name] for row in rows]) for name in METRICS}


def per_image(metric: Callable[..., float], preds, gts, **kwargs) -> np.ndarray:
    """Apply a pairwise metric (e.g. ``psnr``) to each pair of two stacks; returns N values."""
    _check_stacks(preds, gts)
    return np.array([metric(pred, gt, **kwargs) for pred, gt in zip(preds, gts)], dtype=np.float64)


def _check_stacks(preds, gts) -> None:
    if len(preds) != len(gts):
        raise ValueError(
            f"got {len(preds)} predictions but {len(gts)} ground truths; pass one prediction per "
            "ground-truth image, in the same order."
        )
    if len(preds) == 0:
        raise ValueError("no images to score; pass stacks of shape (N, H, W) with N >= 1.")
