"""Statistics of the paper's comparisons: medians, Mood's median test and the stars of Fig. S3.

The paper reports, per dataset, method and metric, the *median* over the test images (Tables
2–5, S3–S5) and compares methods with Mood's median test (Fig. S3 caption: ``***`` p < .001,
``**`` p < .01, ``*`` p < .05, otherwise not significant). Mood's test asks whether two samples
share a median: it counts, in each sample, the values above the pooled (grand) median and runs a
chi-squared test of independence on that 2 x 2 table. It assumes nothing about the shape of the
distributions, which suits per-image scores that are skewed or bounded (MS-SSIM near 1).

We add what the paper did not report: a bootstrap confidence interval for each median, so a
reader can see whether a difference in the second decimal is meaningful, and a *paired* test.
Mood's test treats the two samples as independent, but every method is scored on the same test
images: the per-image differences carry the comparison, and the Wilcoxon signed-rank test
(:func:`wilcoxon_signed_rank`) uses them. Two cautions that no p-value removes: images that are
noise realisations of the same field (the paper's zebrafish test set is 4 sub-FOVs x 50 captures,
Table S1's "200 (4)") are not independent samples, so p-values over them overstate the evidence
(pseudo-replication); and "not significant" means "not shown to differ", never "equivalent".

Everything here is plain Python/NumPy/SciPy (no pandas): a table is a list of flat dicts, one
per method, that ``pandas.DataFrame(rows)`` accepts as is, and :func:`format_markdown` prints it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

PAPER_STARS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
"""Fig. S3's thresholds: p < .001, .01, .05; anything else is "ns" (not significant)."""

FOUR_STARS = ((0.0001, "****"),) + PAPER_STARS
"""The common extension (e.g. statannotations) with ``****`` for p < 1e-4; not used by the paper."""


class StatisticsWarning(UserWarning):
    """A statistic is undefined for these samples and is reported as ``nan``."""


def stars(p_value: float, thresholds: Sequence[tuple[float, str]] = PAPER_STARS) -> str:
    """Star notation of a p-value: ``"***"``, ``"**"``, ``"*"`` or ``"ns"``; ``"n/a"`` for nan.

    Pass ``thresholds=FOUR_STARS`` to also mark p < 1e-4 with ``"****"``.
    """
    if p_value is None or math.isnan(p_value):
        return "n/a"
    for threshold, label in sorted(thresholds):
        if p_value < threshold:
            return label
    return "ns"


@dataclass(frozen=True)
class MoodResult:
    """Result of :func:`mood_median_test`."""

    statistic: float
    """Chi-squared statistic of the 2 x 2 table (with Yates' correction by default)."""
    p_value: float
    grand_median: float
    table: np.ndarray
    """Counts ``[[above_a, above_b], [not_above_a, not_above_b]]`` (``ties="below"``)."""
    median_a: float
    median_b: float

    @property
    def stars(self) -> str:
        return stars(self.p_value)


def mood_median_test(a, b, ties: str = "below", correction: bool = True) -> MoodResult:
    """Mood's median test between two samples (``scipy.stats.median_test``), NaNs dropped.

    ``ties`` says where values equal to the grand median go (scipy's default ``"below"``);
    ``correction`` applies Yates' continuity correction (scipy's default). When the test is
    undefined (a sample is empty, or every value lies on one side of the grand median, e.g. two
    constant samples) the p-value is ``nan`` with a warning, never an error or a silent 1.
    """
    sample_a, sample_b = _drop_nan(a), _drop_nan(b)
    median_a = float(np.median(sample_a)) if sample_a.size else math.nan
    median_b = float(np.median(sample_b)) if sample_b.size else math.nan
    if sample_a.size == 0 or sample_b.size == 0:
        return _undefined_mood("a sample has no values (all NaN or empty)", median_a, median_b)
    try:
        statistic, p_value, grand_median, table = scipy_stats.median_test(
            sample_a, sample_b, ties=ties, correction=correction
        )
    except ValueError as err:  # every value on one side of the grand median
        return _undefined_mood(str(err), median_a, median_b)
    if math.isnan(p_value):
        return _undefined_mood("the contingency table is degenerate", median_a, median_b)
    return MoodResult(float(statistic), float(p_value), float(grand_median), table, median_a, median_b)


@dataclass(frozen=True)
class PairedResult:
    """Result of :func:`wilcoxon_signed_rank`."""

    statistic: float
    """The smaller of the two signed-rank sums (scipy's two-sided statistic)."""
    p_value: float
    median_difference: float
    """Median of the per-item differences ``a - b`` (negative: ``a`` lower)."""
    n: int
    """Pairs used (both values finite)."""

    @property
    def stars(self) -> str:
        return stars(self.p_value)


def wilcoxon_signed_rank(a, b) -> PairedResult:
    r"""Wilcoxon signed-rank test of the paired differences :math:`d_i = a_i - b_i` (two-sided).

    ``a[i]`` and ``b[i]`` must be scores of the same test item (e.g. the MAE of two methods on image
    ``i``). The ranks :math:`R_i` of :math:`|d_i|` are summed separately over positive and negative
    differences, :math:`W^+ = \sum_{d_i > 0} R_i`; under the null hypothesis (differences
    symmetric about 0) every sign pattern is equally likely. ``scipy.stats.wilcoxon`` gives the
    p-value (exact for small samples without ties, else the normal approximation). Pairs with a
    NaN are dropped; zero differences are dropped too (Wilcoxon's convention). With no non-zero
    difference the p-value is 1 (nothing tells the two apart).
    """
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"a paired test needs one value of each method per item; got {a.size} and {b.size} values.")
    keep = np.isfinite(a) & np.isfinite(b)
    differences = a[keep] - b[keep]
    median_difference = float(np.median(differences)) if differences.size else math.nan
    if not np.any(differences != 0):
        return PairedResult(math.nan, 1.0 if differences.size else math.nan, median_difference, int(differences.size))
    result = scipy_stats.wilcoxon(differences)
    return PairedResult(float(result.statistic), float(result.pvalue), median_difference, int(differences.size))


@dataclass(frozen=True)
class MedianCI:
    """A median with its bootstrap confidence interval."""

    median: float
    low: float
    high: float
    n: int
    """Number of values used (NaNs dropped)."""


def median_ci(
    values, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> MedianCI:
    """Median and percentile-bootstrap confidence interval (NaNs dropped; seeded, reproducible).

    The sample is resampled with replacement ``n_resamples`` times; the interval spans the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the resampled medians.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), e.g. 0.95; got {confidence}.")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}.")
    sample = _drop_nan(values)
    if sample.size == 0:
        return MedianCI(math.nan, math.nan, math.nan, 0)
    rng = np.random.default_rng(seed)
    medians = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // sample.size)  # bound memory to ~16 MB of indices per step
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        indices = rng.integers(0, sample.size, size=(stop - start, sample.size))
        medians[start:stop] = np.median(sample[indices], axis=1)
    alpha = 1.0 - confidence
    # Interpolating between resampled medians is undefined when some are infinite (PSNR of a
    # perfect prediction); then the nearest order statistic is taken instead.
    method = "linear" if np.isfinite(medians).all() else "nearest"
    low, high = np.quantile(medians, [alpha / 2, 1 - alpha / 2], method=method)
    return MedianCI(float(np.median(sample)), float(low), float(high), int(sample.size))


Scores = Mapping[str, Mapping[str, Sequence[float]]]
"""Per-image scores: ``scores[method][metric]`` is a sequence with one value per test image."""


def scores_from_rows(rows: Iterable[Mapping[str, object]], metrics: Sequence[str]) -> dict:
    """Group per-image rows (dicts with a ``"method"`` key, e.g. read from the CSV) by method."""
    grouped: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        per_metric = grouped.setdefault(str(row["method"]), {name: [] for name in metrics})
        for name in metrics:
            per_metric[name].append(float(row[name]))
    return grouped


def median_table(
    scores: Scores,
    metrics: Sequence[str] | None = None,
    reference: str | None = None,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> list[dict]:
    """A paper-style table: one flat dict per method with the median of each metric.

    Keys per metric ``m``: ``m`` (median), ``m_low``/``m_high`` (bootstrap CI), and, for every
    method but ``reference``, ``m_p`` (Mood's test against ``reference``) and ``m_stars``.
    ``reference`` defaults to the first method (put DDPM-avg first to reproduce Fig. S3).
    """
    if not scores:
        raise ValueError("no scores to tabulate; pass {method: {metric: values}}.")
    methods = list(scores)
    metrics = list(metrics) if metrics is not None else list(next(iter(scores.values())))
    reference = methods[0] if reference is None else reference
    if reference not in scores:
        raise ValueError(f"reference method {reference!r} is not among the methods {methods}.")
    rows = []
    for method in methods:
        row: dict = {"method": method}
        for name in metrics:
            if name not in scores[method]:
                raise ValueError(f"method {method!r} has no scores for metric {name!r}.")
            summary = median_ci(scores[method][name], confidence, n_resamples, seed)
            row.update({name: summary.median, f"{name}_low": summary.low, f"{name}_high": summary.high})
            row["n"] = max(row.get("n", 0), summary.n)
            if method != reference:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", StatisticsWarning)
                    p_value = mood_median_test(scores[reference][name], scores[method][name]).p_value
                row.update({f"{name}_p": p_value, f"{name}_stars": stars(p_value)})
        rows.append(row)
    return rows


def format_markdown(
    table: Sequence[Mapping],
    metrics: Sequence[str],
    labels: Mapping[str, str] | None = None,
    higher_is_better: Mapping[str, bool | None] | None = None,
    decimals: int = 2,
    show_ci: bool = True,
) -> str:
    """Render :func:`median_table` rows as a markdown table; the best median per metric in bold.

    A cell reads ``median [low, high] stars``; stars compare the method with the reference row.
    """
    labels = dict(labels or {})
    higher_is_better = dict(higher_is_better or {})
    best = {name: _best_median(table, name, higher_is_better.get(name)) for name in metrics}
    header = ["Method"] + [
        labels.get(name, name) + {True: " ↑", False: " ↓"}.get(higher_is_better.get(name), "")
        for name in metrics
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table:
        cells = [str(row["method"])]
        for name in metrics:
            median = row[name]
            text = _number(median, decimals)
            if best[name] is not None and median == best[name]:
                text = f"**{text}**"
            if show_ci and not math.isnan(median):
                low, high = row[f"{name}_low"], row[f"{name}_high"]
                text += f" [{_number(low, decimals)}, {_number(high, decimals)}]"
            if row.get(f"{name}_stars", "n/a") != "n/a":
                text += f" {row[f'{name}_stars']}"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _best_median(table, name: str, higher: bool | None) -> float | None:
    values = [row[name] for row in table if not math.isnan(row[name])]
    if higher is None or len(values) < 2:
        return None
    return max(values) if higher else min(values)


def _number(value: float, decimals: int) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{decimals}f}"


def _drop_nan(values) -> np.ndarray:
    """The values as a flat float array without NaNs (a metric that was undefined for an image)."""
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[~np.isnan(array)]


def _undefined_mood(reason: str, median_a: float, median_b: float) -> MoodResult:
    warnings.warn(f"Mood's median test is undefined: {reason}; p = nan.", StatisticsWarning, stacklevel=3)
    return MoodResult(math.nan, math.nan, math.nan, np.zeros((2, 2), dtype=int), median_a, median_b)
