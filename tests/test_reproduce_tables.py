"""Reproduction tables and figures: fair post-processing, honest resolution cells, readable box
plots (issue 16, items 12 and 13)."""

import math

import numpy as np
import pytest

from teachdiff.evaluation import metrics
from teachdiff.evaluation.reproduce import (
    NO_PEAK,
    _median_table,
    _table_markdown,
    ReproduceConfig,
    comparison_markdown,
    plot_boxplots,
    postprocess,
)


def test_classical_filters_are_rescaled_to_the_gt_training_distribution_like_care():
    """A dim filtered stack (low dose) is mapped onto the GT's mean and spread, as CARE's is;
    the DDPM and pix2pix are only clipped (paper §3.6)."""
    rng = np.random.default_rng(0)
    reference = metrics.IntensityReference.from_images(rng.normal(120, 30, (4, 32, 32)).clip(0, 255))
    dim = rng.normal(12, 3, (3, 32, 32))
    for method in ("care", "n2v", "rcan", "gaussian", "nlm"):
        out = postprocess(method, dim, reference)
        assert out.mean() == pytest.approx(reference.mean, rel=0.02), method
        assert out.std() == pytest.approx(reference.std, rel=0.05), method
    for method in ("ddpm", "ddpm-avg", "pix2pix"):
        np.testing.assert_array_equal(postprocess(method, dim - 20, reference), np.clip(dim - 20, 0, 255))


def _rows(resolution_of):
    rows = []
    for method in ("raw", "ddpm-avg"):
        for i in range(4):
            res = resolution_of(method, i)
            rows.append({"method": method, "image": i, "mae": 5.0 + i, "psnr": 30.0 - i, "ms_ssim": 0.8 + 0.01 * i,
                         "lpips": math.nan, "nrmse": 0.3, "pearson": 0.9, "resolution": res,
                         "resolution_ratio": res / 100.0})
    return rows


def test_resolution_column_says_no_peak_instead_of_a_number_when_decorrelation_finds_none():
    # raw: no image has a decorrelation peak (resolution nan); DDPM-avg: one of four has none
    rows = _rows(lambda method, i: math.nan if method == "raw" or i == 3 else 150.0 + i)
    table = _median_table(rows, "synthetic-microtubules")
    text = comparison_markdown(table, ["mae", "resolution", "resolution_ratio"])
    raw_line = next(line for line in text.splitlines() if line.startswith("| Raw |"))
    assert raw_line.count(f"{NO_PEAK} /") == 2
    avg_line = next(line for line in text.splitlines() if line.startswith("| DDPM-avg |"))
    assert "151 (1/4 no peak)" in avg_line  # median of 150, 151, 152 with the count of the rest
    assert "not a measurement" in text  # the legend says why
    full = _table_markdown(table, ReproduceConfig("synthetic-microtubules"))
    assert NO_PEAK in full and "not a measurement" in full
    defined = comparison_markdown(_median_table(_rows(lambda m, i: 120.0), "synthetic-microtubules"), ["resolution"])
    assert "no peak" not in defined and "| Raw | 120 /" in defined


def test_boxplots_label_every_panel_with_the_methods_and_hide_all_na_metrics():
    rows = _rows(lambda method, i: 100.0 + i)  # LPIPS is nan everywhere
    fig = plot_boxplots(rows, "test")
    assert [ax.get_title() for ax in fig.axes] == ["MAE ↓", "PSNR ↑", "MS-SSIM ↑"]
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["Raw", "DDPM-avg"]
    assert "LPIPS ↓: n/a for every image here, not shown" in fig.get_suptitle()


def test_a_resolution_at_the_first_grid_radius_is_not_reported_as_a_measurement():
    """White noise has no decorrelation peak: k_c is the grid's first radius 1/49 and R = 98
    pixels (2042 nm at 20.8 nm), which the tables must show as n/a, not as a resolution."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    noise = rng.normal(100, 20, (192, 192))
    structure = ndimage.gaussian_filter(rng.random((192, 192)), 2) * 2000
    pixel = 20.83
    analysis = metrics.decorrelation_analysis(noise, pixel_size=pixel)
    assert analysis.kc == pytest.approx(1 / 49) and analysis.resolution == pytest.approx(98 * pixel)
    scores = metrics.evaluate(noise, structure, pixel_size=pixel, lpips=False)
    cleaned = metrics.without_grid_floor(scores, pixel)
    assert math.isnan(cleaned["resolution"]) and math.isnan(cleaned["resolution_ratio"])
    assert cleaned["resolution_gt"] == scores["resolution_gt"] < 10 * pixel  # a real measurement stays
    assert cleaned["mae"] == scores["mae"]
    swapped = metrics.without_grid_floor(metrics.evaluate(structure, noise, pixel_size=pixel, lpips=False), pixel)
    assert np.isfinite(swapped["resolution"]) and math.isnan(swapped["resolution_gt"])


def test_agreement_with_the_paper_counts_pairwise_orders():
    from teachdiff.evaluation.reproduce import agreement_markdown

    nan = float("nan")

    def row(method, mae, mae_paper, psnr, psnr_paper):
        return {"method": method, "mae": mae, "mae_paper": mae_paper, "psnr": psnr, "psnr_paper": psnr_paper}

    table = [row("raw", 9, 9, 20, 20), row("ddpm-avg", 3, 4, 30, 31), row("care", 2, 5, 29, 30),
             row("n2v", 6, 7, 25, 26), row("gaussian", 5, nan, 27, nan)]
    text = agreement_markdown(table, ("mae", "psnr"))
    assert "| CARE | no / yes ✗ | yes / yes |" in text  # CARE has the lower MAE here, not in the paper
    assert "| Noise2Void | yes / yes | yes / yes |" in text
    assert "Gaussian" not in text and "Raw" not in text
    assert "in 3 of 4 comparisons" in text
