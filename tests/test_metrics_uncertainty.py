"""Checks of uncertainty maps (teachdiff.evaluation.metrics.uncertainty) against hand computations."""

import math

import numpy as np
import pytest
import torch

from teachdiff.evaluation import metrics
from teachdiff.evaluation.metrics import (
    ConformalScale,
    ause,
    interval_coverage,
    sample_interval,
    sparsification_curve,
    uncertainty_rank_correlation,
)


def test_posterior_samples_give_the_nominal_coverage():
    """Ground truth and N samples drawn from the same Gaussian per pixel: the ground truth is
    exchangeable with the samples, so [y_(5), y_(95)] of N = 99 covers (95 - 5) / 100 = 0.9."""
    rng = np.random.default_rng(0)
    n_pixels = 20000
    mu, sd = rng.uniform(50, 200, n_pixels), rng.uniform(1, 20, n_pixels)
    gt = rng.normal(mu, sd)
    samples = rng.normal(mu, sd, size=(99, n_pixels))
    lower, upper = sample_interval(samples, 0.9)
    np.testing.assert_allclose(lower, np.sort(samples, axis=0)[4], rtol=1e-12)  # (N + 1) q = 5 exactly
    binomial_sd = math.sqrt(0.9 * 0.1 / n_pixels)
    assert interval_coverage(lower, upper, gt) == pytest.approx(0.9, abs=4 * binomial_sd)
    # With the paper's N = 15 the "90 %" interval is [min, max], which covers 14 / 16.
    lower, upper = sample_interval(samples[:15], 0.9)
    np.testing.assert_allclose(upper, samples[:15].max(axis=0), rtol=1e-12)
    assert interval_coverage(lower, upper, gt) == pytest.approx(14 / 16, abs=4 * math.sqrt(0.875 * 0.125 / n_pixels))


def test_overconfident_samples_undercover():
    rng = np.random.default_rng(1)
    gt = rng.normal(0, 1, 20000)
    samples = rng.normal(0, 0.5, size=(99, 20000))  # half the true spread
    lower, upper = sample_interval(samples, 0.9)
    # The interval is +-0.5 * 1.645 sd: by hand it covers 2 Phi(0.822) - 1 = 0.589.
    assert interval_coverage(lower, upper, gt) == pytest.approx(0.589, abs=0.015)


def test_interval_coverage_by_hand():
    lower, upper = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0, 4.0])
    assert interval_coverage(lower, upper, np.array([0.0, 2.0, 3.5, 5.0])) == 0.5  # ends count as inside
    with pytest.raises(ValueError, match="shapes differ"):
        interval_coverage(lower, upper, np.zeros(3))
    with pytest.raises(ValueError, match="lower exceeds upper"):
        interval_coverage(upper, lower, lower)
    with pytest.raises(ValueError, match="between 0 and 1"):
        sample_interval(np.zeros((5, 3)), 90)


def test_std_equal_to_the_error_has_ause_zero_and_rank_correlation_one():
    rng = np.random.default_rng(2)
    error = rng.normal(0, 10, (32, 32))
    error[:4] = 3.0  # ties do not matter: tied pixels have equal errors
    result = sparsification_curve(np.abs(error), error)
    assert result.ause == 0.0
    np.testing.assert_array_equal(result.curve, result.oracle)
    assert result.curve[0] == pytest.approx(1.0) and np.all(np.diff(result.oracle) <= 1e-12)  # the oracle falls
    assert uncertainty_rank_correlation(np.abs(error), error) == pytest.approx(1.0)


def test_sparsification_curve_by_hand():
    error = np.array([4.0, 3.0, 2.0, 1.0])
    uncertainty = np.array([0.0, 1.0, 2.0, 3.0])  # exactly the wrong order
    result = sparsification_curve(uncertainty, error, fractions=[0.0, 0.25, 0.5, 0.75])
    # Removing by uncertainty drops 1, then 2, then 3; the oracle drops 4, 3, 2. MAE of all = 2.5.
    np.testing.assert_allclose(result.curve, np.array([10 / 4, 9 / 3, 7 / 2, 4 / 1]) / 2.5)
    np.testing.assert_allclose(result.oracle, np.array([10 / 4, 6 / 3, 3 / 2, 1 / 1]) / 2.5)
    gap = result.curve - result.oracle
    assert result.ause == pytest.approx(0.25 * (gap[:-1] + gap[1:]).sum() / 2)


def test_random_std_map_has_rank_correlation_near_zero_and_positive_ause():
    rng = np.random.default_rng(3)
    error = rng.normal(0, 1, (64, 64))
    rho = uncertainty_rank_correlation(rng.uniform(0, 1, (64, 64)), error)
    assert abs(rho) < 4 / math.sqrt(64 * 64)  # the sd of Spearman's rho under independence is 1/sqrt(n-1)
    assert ause(rng.uniform(0, 1, (64, 64)), error) > 0.2


def test_rank_correlation_is_spearman_by_hand_and_takes_tensors():
    u = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    e = torch.tensor([[-1.0, 3.0], [2.0, 4.0]])  # |e| ranks 1, 3, 2, 4
    d = np.array([0, -1, 1, 0])
    assert uncertainty_rank_correlation(u, e) == pytest.approx(1 - 6 * (d**2).sum() / (4 * (16 - 1)))
    with pytest.warns(metrics.MetricWarning, match="constant"):
        assert math.isnan(uncertainty_rank_correlation(np.ones((2, 2)), e))


def test_conformal_scale_fitted_on_one_split_covers_on_another():
    """Errors ~ N(0, (c sigma)^2) with a std map sigma that is off by an unknown factor c = 2.5:
    the scale fitted on one split is the 90 % quantile of |N(0, c^2)|, 1.645 c, and gives 90 %
    on a second split drawn the same way."""
    rng = np.random.default_rng(4)

    def split(n):
        sigma = rng.uniform(2, 10, n)
        gt = rng.normal(100, 30, n)
        return gt + rng.normal(0, 2.5 * sigma), sigma, gt

    calibration = ConformalScale.fit(*split(20000), level=0.9, min_std=0.5)
    assert calibration.scale == pytest.approx(1.645 * 2.5, rel=0.03)
    mean, std, gt = split(20000)
    lower, upper = calibration.interval(mean, std)
    assert interval_coverage(lower, upper, gt) == pytest.approx(0.9, abs=4 * math.sqrt(0.09 / 20000))
    naive = interval_coverage(mean - 1.645 * std, mean + 1.645 * std, gt)
    assert naive < 0.55  # the uncalibrated Gaussian interval: 2 Phi(1.645 / 2.5) - 1 = 0.49


def test_conformal_quantile_by_hand_and_round_trip(tmp_path):
    scores = np.arange(1.0, 11.0)  # |gt - mean| / std for 10 pixels, std 1
    calibration = ConformalScale.fit(np.zeros(10), np.ones(10), scores, level=0.8)
    assert calibration.scale == 9.0  # k = ceil(11 * 0.8) = 9: the 9th smallest score
    assert calibration.n_calibration == 10
    lower, upper = calibration.interval(np.array([5.0]), np.array([0.1]))
    assert (lower[0], upper[0]) == (5.0 - 9 * 0.5, 5.0 + 9 * 0.5)  # std floored at min_std = 0.5
    path = calibration.save(tmp_path / "cal.json")
    assert ConformalScale.load(path) == calibration
    with pytest.raises(ValueError, match="too few"):
        ConformalScale.fit(np.zeros(5), np.ones(5), np.ones(5), level=0.9)
    with pytest.raises(FileNotFoundError, match="ConformalScale"):
        ConformalScale.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{\"level\": 0.9}")
    with pytest.raises(ValueError, match="not a calibration"):
        ConformalScale.load(tmp_path / "bad.json")
