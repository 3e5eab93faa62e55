"""Uncertainty maps that are checked against the ground truth, not only looked at.

The paper shows its std and entropy maps (§S6, Eqs. 15-16, Fig. S2) as pictures and reads them
qualitatively: bright where the restoration is uncertain. These functions ask whether that is
true, image by image, with the ground truth at hand:

- :func:`uncertainty_rank_correlation`: does a higher std go with a larger |error| (Spearman)?
- :func:`sparsification_curve` / :func:`ause`: if the most uncertain pixels are removed first,
  does the error of the rest fall as fast as when the truly worst pixels are removed?
- :func:`sample_interval` / :func:`interval_coverage`: does the per-pixel interval spanned by
  the samples' quantiles contain the ground truth as often as it claims?
- :class:`ConformalScale`: split-conformal calibration, a factor on the std map fitted on
  validation images so that ``mean +- q * std`` contains the ground truth at a stated rate.

All inputs are NumPy arrays or torch tensors in one consistent intensity scale; like the other
metrics, the defaults (``min_std``) assume the 0..255 scale.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.stats

from teachdiff.evaluation.metrics._checks import finite_array, warn_undefined
from teachdiff.inference.intervals import check_level, sample_interval, samples_for_level

__all__ = [
    "ConformalScale",
    "SparsificationCurve",
    "ause",
    "interval_coverage",
    "sample_interval",
    "samples_for_level",
    "sparsification_curve",
    "uncertainty_rank_correlation",
]


def _array(values, name: str) -> np.ndarray:
    return finite_array(values, name, "check the sampler output before scoring it")


def _same_shape(**arrays) -> list[np.ndarray]:
    out = [_array(v, k) for k, v in arrays.items()]
    shapes = {k: a.shape for k, a in zip(arrays, out)}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"shapes differ: {shapes}; pass maps of one image (or stacks) with the same shape.")
    return out


def uncertainty_rank_correlation(uncertainty, error) -> float:
    r"""Spearman's rank correlation between an uncertainty map and the absolute error, over pixels.

    .. math:: \rho = \frac{\operatorname{cov}(R(u), R(|e|))}{\sigma_{R(u)}\, \sigma_{R(|e|)}}

    with R the ranks of the pixel values (ties get their average rank), u the uncertainty (e.g.
    the std map of Eq. 15) and e = prediction - ground truth (the sign is dropped). rho = 1: the
    map orders the pixels exactly by their error; 0: it carries no information about which
    pixels are wrong. Computed with ``scipy.stats.spearmanr``. ``nan`` (with a warning) when one
    of the two maps is constant.
    """
    u, e = _same_shape(uncertainty=uncertainty, error=error)
    u, e = u.ravel(), np.abs(e.ravel())
    if np.ptp(u) == 0 or np.ptp(e) == 0:
        return warn_undefined("the rank correlation", "the uncertainty map or the error is constant")
    return float(scipy.stats.spearmanr(u, e).statistic)


@dataclass
class SparsificationCurve:
    """What :func:`sparsification_curve` returns: the curves over ``fractions`` and their AUSE."""

    fractions: np.ndarray
    curve: np.ndarray
    """MAE of the pixels left after removing the most *uncertain* fraction, / MAE of all pixels."""
    oracle: np.ndarray
    """The same when the pixels with the largest *error* are removed first (the best possible)."""
    ause: float


def _remaining_mae(order: np.ndarray, abs_error: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Mean of abs_error over the pixels left after dropping the first round(f * n) of ``order``."""
    sorted_error = abs_error[order]
    tail_sums = np.concatenate([np.cumsum(sorted_error[::-1])[::-1], [0.0]])  # tail_sums[k] = sum after k
    n = abs_error.size
    removed = np.rint(fractions * n).astype(int)
    return tail_sums[removed] / (n - removed)


def sparsification_curve(uncertainty, error, fractions=None) -> SparsificationCurve:
    r"""Sparsification curve of an uncertainty map and its area above the oracle (AUSE).

    Sort the pixels by decreasing uncertainty u, remove the first fraction f and average the
    absolute error of the rest; the oracle does the same sorting by |e| itself (Ilg et al.
    2018). Both are divided by the MAE of all pixels, so they start at 1:

    .. math::
        S(f) = \frac{\operatorname{mean}\{|e_i| : i \notin \text{top}_f(u)\}}{\operatorname{mean}_i |e_i|},\qquad
        O(f) = \frac{\operatorname{mean}\{|e_i| : i \notin \text{top}_f(|e|)\}}{\operatorname{mean}_i |e_i|},\qquad
        \text{AUSE} = \int_0^{f_{max}} \big(S(f) - O(f)\big)\, df

    with top_f the round(f n) pixels of largest value and the integral by the trapezoid rule over
    ``fractions`` (default 0, 0.02, ..., 0.98). AUSE = 0 when the map orders the pixels like the
    error; a map with no information gives S(f) close to 1 for all f. O(f) <= S(f) always.
    """
    u, e = _same_shape(uncertainty=uncertainty, error=error)
    u, e = u.ravel(), np.abs(e.ravel())
    fractions = np.arange(0, 0.99, 0.02) if fractions is None else np.asarray(fractions, dtype=np.float64)
    if fractions.ndim != 1 or (fractions < 0).any() or (fractions >= 1).any() or (np.diff(fractions) <= 0).any():
        raise ValueError("fractions must be increasing values in [0, 1); e.g. np.arange(0, 0.99, 0.02).")
    total = e.mean()
    if total == 0:
        raise ValueError("the error is zero everywhere, so there is nothing to sparsify; check that "
                         "prediction and ground truth are different images.")
    # A stable sort by -u keeps ties in pixel order; the oracle breaks its ties the same way.
    curve = _remaining_mae(np.argsort(-u, kind="stable"), e, fractions) / total
    oracle = _remaining_mae(np.argsort(-e, kind="stable"), e, fractions) / total
    area = float(np.trapezoid(curve - oracle, fractions)) if len(fractions) > 1 else 0.0
    return SparsificationCurve(fractions, curve, oracle, area)


def ause(uncertainty, error, fractions=None) -> float:
    """The area between the sparsification curve and the oracle (:func:`sparsification_curve`)."""
    return sparsification_curve(uncertainty, error, fractions).ause


def interval_coverage(lower, upper, gt) -> float:
    r"""Empirical coverage: the fraction of pixels whose ground truth lies in [lower, upper].

    .. math:: \hat c = \frac{1}{n} \sum_{i=1}^{n} \mathbb{1}[l_i \le y_{0,i} \le u_i]

    Any shape (one image or a stack); the three arrays must have the same shape.
    """
    lo, hi, y = _same_shape(lower=lower, upper=upper, gt=gt)
    if (lo > hi).any():
        raise ValueError("lower exceeds upper at some pixels; pass (lower, upper) in that order.")
    return float(np.mean((lo <= y) & (y <= hi)))


@dataclass
class ConformalScale:
    r"""Split-conformal calibration of a std map: the interval ``mean +- scale * max(std, min_std)``.

    Fitted on calibration (validation) images with ground truth by :meth:`fit`. With the
    normalised residuals of the n calibration pixels,

    .. math::
        s_i = \frac{|y_{0,i} - \bar{\hat y}_i|}{\max(\sigma_i, \sigma_{min})},\qquad
        \hat q = s_{(k)},\quad k = \lceil (n + 1)\, \text{level} \rceil

    (the k-th smallest score; Vovk et al. 2005, Angelopoulos & Bates 2021). For a test pixel
    exchangeable with the calibration pixels, :math:`P(|y_0 - \bar{\hat y}| \le \hat q\,\sigma)
    \ge \text{level}`, and at most level + 1/(n + 1) when there are no ties. Pixels of one image
    are not independent, so with few calibration images the guarantee is about the average over
    images drawn like the calibration ones, not about each image. ``min_std`` (default half a
    grey level on the 0..255 scale) keeps pixels whose samples all agree (std 0) from getting
    an infinite score. ``settings`` records how the std map was made (sampler, steps, samples):
    the scale is valid only for std maps made the same way.
    """

    level: float
    scale: float
    min_std: float = 0.5
    n_calibration: int = 0
    settings: dict = field(default_factory=dict)

    @classmethod
    def fit(cls, mean, std, gt, level: float = 0.9, min_std: float = 0.5,
            settings: dict | None = None) -> "ConformalScale":
        """Fit on calibration images: DDPM-avg ``mean``, ``std`` map and ``gt``, same shapes."""
        level = check_level(level)
        m, s, y = _same_shape(mean=mean, std=std, gt=gt)
        if min_std <= 0:
            raise ValueError(f"min_std must be positive (e.g. 0.5 grey levels), got {min_std!r}.")
        scores = np.sort((np.abs(y - m) / np.maximum(s, min_std)).ravel())
        n = scores.size
        k = math.ceil((n + 1) * level)
        if k > n:
            raise ValueError(f"{n} calibration pixels are too few for a {level:.0%} interval; pass at least "
                             f"{math.ceil(level / (1 - level))}.")
        return cls(level, float(scores[k - 1]), float(min_std), int(n), dict(settings or {}))

    def interval(self, mean, std) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) = mean -+ scale * max(std, min_std)."""
        m, s = _same_shape(mean=mean, std=std)
        half = self.scale * np.maximum(s, self.min_std)
        return m - half, m + half

    def save(self, path: str | Path) -> Path:
        """Write the calibration as JSON (read back with :meth:`load`)."""
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ConformalScale":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"calibration file {path} does not exist; write one with "
                                    "teachdiff.evaluation.metrics.ConformalScale.fit(...).save(path).")
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as err:
            raise ValueError(f"{path} is not a calibration written by ConformalScale.save ({err}).") from None
