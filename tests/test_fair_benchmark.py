"""The benchmark treats every method alike where it says so: post-processing modes, re-alignment
and paired statistics (issue: a fair benchmark)."""

import itertools

import numpy as np
import pytest
from scipy import ndimage
from scipy import stats as scipy_stats

from teachdiff.evaluation import metrics, stats
from teachdiff.data import get_dataset_info
from teachdiff.evaluation.reproduce import ReproduceConfig, _aligned_dataset, _median_table

# Every row a reproduce table can hold, plus a name no list knows (a future method).
EVERY_ROW = ("raw", "ddpm", "ddpm-avg", *ReproduceConfig("x").models, "gaussian", "nlm", "a-new-method")


@pytest.fixture
def dim_stack():
    rng = np.random.default_rng(0)
    return rng.uniform(10, 60, (3, 24, 24)), metrics.IntensityReference.from_images(rng.uniform(0, 255, (2, 24, 24)))


def test_under_all_the_same_map_reaches_every_method(dim_stack):
    pred, reference = dim_stack
    mapped = metrics.clip_and_rescale(pred, reference)
    assert not np.allclose(mapped, np.clip(pred, 0, 255))  # the map does something here
    for method in EVERY_ROW:
        np.testing.assert_allclose(metrics.postprocess(method, pred, reference, "all"), mapped,
                                   err_msg=f"{method} is exempt from the map under 'all'")
        np.testing.assert_allclose(metrics.postprocess(method, pred, reference, "none"), np.clip(pred, 0, 255),
                                   err_msg=f"{method} is rescaled under 'none'")


def test_the_paper_mode_rescales_only_what_section_3_6_names(dim_stack):
    pred, reference = dim_stack
    mapped = metrics.clip_and_rescale(pred, reference)
    rescaled = {m for m in EVERY_ROW if np.allclose(metrics.postprocess(m, pred, reference, "paper"), mapped)}
    assert rescaled == {"care", "n2v", "rcan", "gaussian", "nlm"}
    with pytest.raises(ValueError, match="paper, none, all"):
        metrics.postprocess("care", pred, reference, "some")


def test_alignment_recovers_a_known_subpixel_shift():
    rng = np.random.default_rng(1)
    gt = ndimage.gaussian_filter(rng.uniform(0, 255, (96, 96)), 2.0) * 3
    gt = np.clip(gt - gt.mean() + 100, 0, 255)
    applied = [(0.4, -1.3), (-2.25, 0.6)]
    stack = np.stack([ndimage.shift(gt, s, order=3, mode="nearest") for s in applied])
    aligned, shifts = metrics.align_predictions({"care": stack}, np.stack([gt, gt]))
    np.testing.assert_allclose(shifts["care"], -np.array(applied), atol=0.06)
    inner = (slice(8, -8), slice(8, -8))
    before = np.abs(stack[0] - gt)[inner].mean()
    assert np.abs(aligned["care"][0] - gt)[inner].mean() < 0.2 * before


def test_alignment_is_a_step_for_the_registered_datasets_only():
    aligned = {name: _aligned_dataset(get_dataset_info(name)) for name in
               ("microtubules", "synapses", "zebrafish", "mitochondria", "synthetic-microtubules",
                "synthetic-synapses", "synthetic-zebrafish", "synthetic-mitochondria")}
    assert aligned == {"microtubules": True, "synapses": True, "zebrafish": False, "mitochondria": False,
                       "synthetic-microtubules": True, "synthetic-synapses": True,
                       "synthetic-zebrafish": False, "synthetic-mitochondria": False}


def _exact_signed_rank_p(d):
    """Two-sided exact p-value by enumerating all 2^n sign patterns (no ties, no zeros)."""
    ranks = scipy_stats.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    centre = ranks.sum() / 2
    sums = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product((0, 1), repeat=len(d))]
    return np.mean(np.abs(np.array(sums) - centre) >= abs(observed - centre) - 1e-12)


def test_the_paired_test_agrees_with_scipy_and_an_exact_enumeration():
    rng = np.random.default_rng(2)
    a = rng.normal(5.0, 1.0, 12)
    b = a + rng.normal(0.4, 0.5, 12)  # b worse on most images
    result = stats.wilcoxon_signed_rank(a, b)
    assert result.p_value == pytest.approx(scipy_stats.wilcoxon(a - b).pvalue)
    assert result.p_value == pytest.approx(_exact_signed_rank_p(a - b))
    assert result.median_difference == pytest.approx(np.median(a - b)) and result.n == 12
    # pairing matters: the same values in another order are another test
    shuffled = stats.wilcoxon_signed_rank(a, rng.permutation(b))
    assert shuffled.p_value != pytest.approx(result.p_value)
    # NaN pairs are dropped; identical scores give p = 1
    assert stats.wilcoxon_signed_rank(np.r_[a, np.nan], np.r_[b, 1.0]).n == 12
    assert stats.wilcoxon_signed_rank(a, a).p_value == 1.0
    with pytest.raises(ValueError, match="one value of each method per item"):
        stats.wilcoxon_signed_rank(a, b[:5])


def test_tables_carry_bootstrap_intervals_and_the_paired_test_against_ddpm_avg():
    rng = np.random.default_rng(3)
    base = rng.uniform(4, 8, 16)
    rows = []
    for method, offset in (("ddpm-avg", 0.0), ("care", -0.3), ("raw", 6.0)):
        for i, v in enumerate(base + offset + rng.normal(0, 0.05, 16)):
            rows.append({"method": method, "image": i, **{m: float(v) for m in
                         ("mae", "psnr", "ms_ssim", "lpips", "nrmse", "pearson", "resolution", "resolution_ratio")}})
    table = {r["method"]: r for r in _median_table(rows, "synthetic-microtubules")}
    care = table["care"]
    maes = [r["mae"] for r in rows if r["method"] == "care"]
    assert care["mae_low"] <= np.median(maes) <= care["mae_high"]
    reference = [r["mae"] for r in rows if r["method"] == "ddpm-avg"]
    assert care["mae_wilcoxon_p"] == pytest.approx(scipy_stats.wilcoxon(np.subtract(maes, reference)).pvalue)
    assert care["mae_wilcoxon_p"] < 0.001 and care["mae_median_difference"] < 0
    assert "mae_wilcoxon_p" not in table["ddpm-avg"]
