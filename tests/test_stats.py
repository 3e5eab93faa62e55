"""Mood's median test, bootstrap medians, Fig. S3 stars and the median table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from teachdiff.evaluation import stats


def test_mood_test_reproduces_scipy_and_the_chi2_of_its_table():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 60), rng.normal(0.4, 1.5, 45)
    result = stats.mood_median_test(a, b)
    statistic, p_value, grand_median, table = scipy_stats.median_test(a, b)
    assert result.statistic == pytest.approx(statistic) and result.p_value == pytest.approx(p_value)
    assert result.grand_median == grand_median
    np.testing.assert_array_equal(result.table, table)

    # by hand: counts above the pooled median, Yates-corrected chi-squared with 1 dof
    pooled = np.median(np.concatenate([a, b]))
    above = np.array([(a > pooled).sum(), (b > pooled).sum()])
    observed = np.array([above, [a.size, b.size] - above], dtype=float)
    expected = observed.sum(1, keepdims=True) * observed.sum(0, keepdims=True) / observed.sum()
    chi2 = np.sum((np.maximum(np.abs(observed - expected) - 0.5, 0)) ** 2 / expected)
    assert result.statistic == pytest.approx(chi2)
    assert result.p_value == pytest.approx(scipy_stats.chi2.sf(chi2, df=1))
    assert result.median_a == pytest.approx(np.median(a))


def test_mood_test_p_values_behave():
    rng = np.random.default_rng(1)
    shifted = stats.mood_median_test(rng.normal(0, 1, 100), rng.normal(1.5, 1, 100))
    assert shifted.p_value < 0.001 and shifted.stars == "***"
    same = stats.mood_median_test(rng.normal(0, 1, 100), rng.normal(0, 1, 100))
    assert same.p_value > 0.05 and same.stars == "ns"


def test_mood_test_drops_nans_and_reports_undefined_cases():
    a, b = np.array([1.0, 2, 3, np.nan, 4, 5]), np.array([6.0, np.nan, 7, 8, 9])
    assert stats.mood_median_test(a, b).p_value == pytest.approx(
        scipy_stats.median_test(a[~np.isnan(a)], b[~np.isnan(b)])[1]
    )
    with pytest.warns(stats.StatisticsWarning, match="undefined"):
        assert math.isnan(stats.mood_median_test([3.0, 3.0, 3.0], [3.0, 3.0]).p_value)
    with pytest.warns(stats.StatisticsWarning, match="no values"):
        assert math.isnan(stats.mood_median_test([np.nan], [1.0, 2.0]).p_value)


@pytest.mark.parametrize(
    "p_value, expected",
    [(0.0005, "***"), (0.001, "**"), (0.005, "**"), (0.01, "*"), (0.03, "*"), (0.05, "ns"), (0.4, "ns"), (math.nan, "n/a")],
)
def test_stars_follow_the_fig_s3_caption(p_value, expected):
    assert stats.stars(p_value) == expected


def test_four_star_extension():
    assert stats.stars(5e-5, stats.FOUR_STARS) == "****"
    assert stats.stars(5e-4, stats.FOUR_STARS) == "***"
    assert stats.stars(5e-5) == "***"


def test_bootstrap_median_ci_is_seeded_and_has_the_expected_width():
    rng = np.random.default_rng(2)
    sample = rng.normal(10, 2, 400)
    ci = stats.median_ci(sample, seed=3)
    assert ci == stats.median_ci(sample, seed=3)
    assert ci.median == np.median(sample) and ci.low < ci.median < ci.high and ci.n == 400
    # large-sample standard error of the median: sqrt(pi/2) * sigma / sqrt(n)
    expected_width = 2 * 1.96 * math.sqrt(math.pi / 2) * 2 / math.sqrt(400)
    assert ci.high - ci.low == pytest.approx(expected_width, rel=0.3)
    reference = scipy_stats.bootstrap(
        (sample,), np.median, method="percentile", n_resamples=10_000, random_state=4
    ).confidence_interval
    assert ci.low == pytest.approx(reference.low, abs=0.05) and ci.high == pytest.approx(reference.high, abs=0.05)
    assert math.isnan(stats.median_ci([np.nan]).median)
    perfect = stats.median_ci([30.0, np.inf, np.inf, 35.0, np.inf], n_resamples=500)
    assert perfect.median == np.inf and perfect.low >= 30.0
    with pytest.raises(ValueError, match="confidence"):
        stats.median_ci(sample, confidence=95)


def test_median_table_and_markdown():
    rng = np.random.default_rng(5)
    scores = {
        "DDPM-avg": {"mae": rng.normal(4.0, 0.5, 80), "psnr": rng.normal(32.8, 1, 80)},
        "CARE": {"mae": rng.normal(4.1, 0.5, 80), "psnr": rng.normal(32.6, 1, 80)},
        "N2V": {"mae": rng.normal(6.0, 0.5, 80), "psnr": rng.normal(29.0, 1, 80)},
    }
    table = stats.median_table(scores, n_resamples=2000)
    assert [row["method"] for row in table] == ["DDPM-avg", "CARE", "N2V"]
    assert "mae_p" not in table[0]
    assert table[2]["mae"] == pytest.approx(np.median(scores["N2V"]["mae"]))
    assert table[2]["mae_p"] == pytest.approx(stats.mood_median_test(scores["DDPM-avg"]["mae"], scores["N2V"]["mae"]).p_value)
    assert table[2]["mae_stars"] == "***"
    markdown = stats.format_markdown(
        table, ["mae", "psnr"], labels={"mae": "MAE", "psnr": "PSNR"},
        higher_is_better={"mae": False, "psnr": True},
    )
    lines = markdown.splitlines()
    assert lines[0] == "| Method | MAE ↓ | PSNR ↑ |" and len(lines) == 5
    assert lines[2].startswith(f"| DDPM-avg | **{table[0]['mae']:.2f}** [")
    assert "***" in lines[4]
    with pytest.raises(ValueError, match="reference"):
        stats.median_table(scores, reference="pix2pix")


def test_scores_from_rows_groups_by_method():
    rows = [
        {"method": "A", "image": "1", "mae": "1.0"},
        {"method": "B", "image": "1", "mae": "3.0"},
        {"method": "A", "image": "2", "mae": "nan"},
    ]
    grouped = stats.scores_from_rows(rows, ["mae"])
    assert list(grouped) == ["A", "B"]
    assert grouped["A"]["mae"][0] == 1.0 and math.isnan(grouped["A"]["mae"][1])
