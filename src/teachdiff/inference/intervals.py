"""Per-pixel intervals from the samples of a stochastic restoration (how wide a DDPM's doubt is).

Scoring them (coverage, calibration) is :mod:`teachdiff.evaluation.metrics.uncertainty`'s job.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["check_level", "sample_interval", "samples_for_level"]


def check_level(level: float) -> float:
    """The coverage level of an interval as a float strictly between 0 and 1, else a clear error."""
    if not 0 < float(level) < 1:
        raise ValueError(f"the coverage level must lie strictly between 0 and 1 (e.g. 0.9), got {level!r}.")
    return float(level)


def sample_interval(samples, level: float = 0.9, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r"""The per-pixel interval between the samples' (1 - level)/2 and (1 + level)/2 quantiles.

    Quantiles by the Weibull plotting position (``np.quantile(..., method="weibull")``): the
    q-quantile of N samples is the order statistic :math:`y_{(k)}` at :math:`k = q (N + 1)`,
    interpolated between neighbours and clipped to [1, N]. The reason: if the ground truth is
    one more draw from the same distribution as the N samples (a model whose samples are exact
    posterior draws), :math:`P(y_{(i)} \le y_0 \le y_{(j)}) = (j - i) / (N + 1)`, so the interval
    has its nominal coverage whenever q (N + 1) is an integer (N = 19, 39, 99, ... for 90 %).
    With few samples it cannot: the widest interval, [min, max], covers (N - 1) / (N + 1), i.e.
    87.5 % for the paper's N = 15, so a "90 %" interval from 15 samples is a 87.5 % interval even
    for a perfect model. ``axis`` is the sample axis. Returns (lower, upper).
    """
    level = check_level(level)
    values = samples.detach().to("cpu").double().numpy() if isinstance(samples, torch.Tensor) else samples
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("samples are empty or contain NaN/Inf values; check the sampler output.")
    if values.shape[axis] < 2:
        raise ValueError(f"an interval needs at least 2 samples per pixel, got {values.shape[axis]}.")
    lower, upper = np.quantile(values, [(1 - level) / 2, (1 + level) / 2], axis=axis, method="weibull")
    return lower, upper


def samples_for_level(level: float) -> int:
    """The fewest samples whose widest interval, [min, max], can cover ``level``: the smallest N
    with (N - 1) / (N + 1) >= level (19 for 90 %, 39 for 95 %; see :func:`sample_interval`)."""
    level = check_level(level)
    n = max(2, math.ceil((1 + level) / (1 - level) - 1e-9))
    return n if (n - 1) / (n + 1) >= level - 1e-12 else n + 1
