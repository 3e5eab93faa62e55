r"""Data consistency: does a restoration explain the raw capture it was made from?

A restoration model can invent structure (hallucinate): it paints what its training data made
likely, not what this capture shows. A pixel metric against a ground truth catches that, but on
your own microscope there is no ground truth for new images. What there always is, is the raw
capture itself. If a restoration :math:`\hat y` is right, then blurring it, dimming it and adding
noise the way the microscope does must give back something the raw input :math:`x` could have
been:

.. math::  x \approx a\, (G_\sigma * \hat y) + b + n, \qquad
           \operatorname{Var}[n] = \alpha\, \mu + \beta, \quad \mu = a\, (G_\sigma * \hat y) + b,

the forward model of chapter 1 (blur, dose, Poisson-Gaussian noise) with its parameters fitted
on a pair of captures of *your* microscope (:meth:`ForwardModel.fit`: a low- and a high-SNR
capture of the same field). The normalised residual :math:`z = (x - \mu) / \sqrt{\alpha \mu +
\beta}` then has unit variance wherever the restoration is consistent with the capture:
:func:`check` reports its mean square :math:`\chi^2` (about 1: consistent; well above 1: the
restoration contradicts the capture) and a smoothed map of :math:`z^2` that shows *where*.

The check is one-sided: a restoration can pass it and still be wrong where the low-SNR capture
carries no information (the noise hides the difference). It catches structure that the capture
rules out, not every error. Pixels at the ends of the grey scale (clipped) are left out of fits
and scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["ForwardModel", "ConsistencyResult", "check"]

SIGMAS = tuple(np.round(np.arange(0.0, 3.01, 0.25), 2))  # blur candidates of the fit, pixels
_NOISE_BINS = 24


def _unclipped(*images: np.ndarray, top: float = 255.0) -> np.ndarray:
    """Pixels that are neither 0 nor the top of the grey scale in any of ``images``."""
    keep = np.ones(images[0].shape, dtype=bool)
    for image in images:
        keep &= (image > 0) & (image < top)
    return keep


@dataclass(frozen=True)
class ForwardModel:
    """The low-SNR capture as a function of the high-quality image: blur, gain, offset, noise."""

    sigma: float  # Gaussian blur of the high-quality image, pixels
    gain: float
    offset: float
    alpha: float  # noise variance per grey level of the mean (shot noise)
    beta: float  # noise variance at zero mean (read noise)

    def expected(self, image: np.ndarray) -> np.ndarray:
        """The mean low-SNR capture that ``image`` (0..255) predicts."""
        blurred = ndimage.gaussian_filter(np.asarray(image, dtype=float), self.sigma) if self.sigma > 0 else image
        return self.gain * np.asarray(blurred, dtype=float) + self.offset

    def noise_std(self, mean: np.ndarray) -> np.ndarray:
        return np.sqrt(np.maximum(self.alpha * mean + self.beta, 1e-6))

    @classmethod
    def fit(cls, low, high, sigmas=SIGMAS) -> "ForwardModel":
        """Fit the model to a low-SNR capture ``low`` and a high-SNR capture ``high`` of the same
        field (0..255, or lists of such pairs): for each blur ``sigma`` the least-squares gain and
        offset, keeping the ``sigma`` with the smallest residual; then the noise variance as a
        straight line in the mean, fitted to the residual variance in bins of the mean."""
        lows = [np.asarray(a, dtype=float) for a in (low if isinstance(low, (list, tuple)) else [low])]
        highs = [np.asarray(a, dtype=float) for a in (high if isinstance(high, (list, tuple)) else [high])]
        if len(lows) != len(highs) or any(a.shape != b.shape for a, b in zip(lows, highs)):
            raise ValueError("ForwardModel.fit needs pairs of images of the same shape (low, high).")
        keep = [_unclipped(a) for a in lows]
        if sum(int(k.sum()) for k in keep) < 100:
            raise ValueError("too few unclipped pixels to fit a forward model (need at least 100).")
        x = np.concatenate([a[k] for a, k in zip(lows, keep)])
        best = None
        for sigma in sigmas:
            blurred = np.concatenate([(ndimage.gaussian_filter(h, sigma) if sigma > 0 else h)[k]
                                      for h, k in zip(highs, keep)])
            design = np.stack([blurred, np.ones_like(blurred)], axis=1)
            (gain, offset), *_ = np.linalg.lstsq(design, x, rcond=None)
            residual = float(np.mean((x - design @ (gain, offset)) ** 2))
            if best is None or residual < best[0]:
                best = (residual, float(sigma), float(gain), float(offset), design @ (gain, offset))
        _, sigma, gain, offset, mean = best
        alpha, beta = _noise_line(mean, x - mean)
        return cls(sigma, gain, offset, alpha, beta)


def _noise_line(mean: np.ndarray, residual: np.ndarray) -> tuple[float, float]:
    """Variance = alpha * mean + beta, fitted to the residual variance in quantile bins of the mean
    (both kept non-negative: variance cannot fall with the signal)."""
    edges = np.unique(np.quantile(mean, np.linspace(0, 1, _NOISE_BINS + 1)))
    index = np.clip(np.searchsorted(edges, mean, side="right") - 1, 0, len(edges) - 2)
    centres, variances = [], []
    for b in range(len(edges) - 1):
        in_bin = index == b
        if in_bin.sum() >= 20:
            centres.append(mean[in_bin].mean())
            variances.append(residual[in_bin].var())
    if len(centres) < 2:
        return 0.0, float(np.var(residual))
    alpha, beta = np.polyfit(centres, variances, 1)
    if alpha < 0:
        return 0.0, float(np.mean(variances))
    return float(alpha), float(max(beta, 1e-3))


@dataclass(frozen=True)
class ConsistencyResult:
    """How well a restoration explains its raw capture (see the module docstring)."""

    chi2: float  # mean of z^2 over the scored pixels: about 1 when consistent
    z: np.ndarray  # normalised residual (raw - predicted) / predicted noise std; NaN where not scored
    local: np.ndarray  # z^2 smoothed over a few pixels: where the restoration contradicts the capture
    fraction_flagged: float  # share of scored pixels whose local z^2 exceeds ``threshold``


def check(restored, raw, model: ForwardModel, smoothing: float = 3.0, threshold: float = 2.0) -> ConsistencyResult:
    """Degrade ``restored`` (0..255) with ``model`` and compare it with the raw capture ``raw``."""
    restored = np.asarray(restored, dtype=float)
    raw = np.asarray(raw, dtype=float)
    if restored.shape != raw.shape or restored.ndim != 2:
        raise ValueError(f"check needs a 2-D restoration and its raw capture of the same shape, got "
                         f"{restored.shape} and {raw.shape}.")
    mean = model.expected(restored)
    keep = _unclipped(raw)
    z = np.where(keep, (raw - mean) / model.noise_std(mean), np.nan)
    squared = np.where(keep, z**2, 0.0)
    weight = ndimage.gaussian_filter(keep.astype(float), smoothing)
    local = np.where(weight > 0.05, ndimage.gaussian_filter(squared, smoothing) / np.maximum(weight, 1e-9), np.nan)
    scored = keep & np.isfinite(local)
    return ConsistencyResult(chi2=float(np.nanmean(z**2)), z=z, local=local,
                             fraction_flagged=float((local[scored] > threshold).mean()) if scored.any() else np.nan)
