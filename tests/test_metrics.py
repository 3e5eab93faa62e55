"""Pixel, structural and perceptual metrics, batching, bad input and post-processing.

Every number that is a fact is checked against an independent computation: a NumPy formula,
scikit-image or torchmetrics called directly.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import normalized_root_mse, peak_signal_noise_ratio, structural_similarity
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

from teachdiff.evaluation import metrics
from teachdiff.evaluation.metrics import perceptual


def structured_image(seed: int = 0, shape=(256, 256)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.random(shape), 3)
    return (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 200 + 20


@pytest.fixture
def pair():
    gt = structured_image()
    pred = np.clip(gt + np.random.default_rng(1).normal(0, 8, gt.shape), 0, 255)
    return pred, gt


# --- agreement with independent computations ---------------------------------------------


def test_mae_nrmse_pearson_match_numpy_formulas(pair):
    pred, gt = pair
    assert metrics.mae(pred, gt) == pytest.approx(np.mean(np.abs(pred - gt)), rel=1e-12)
    assert metrics.nrmse(pred, gt) == pytest.approx(np.sqrt(np.mean((pred - gt) ** 2)) / gt.mean(), rel=1e-12)
    assert metrics.nrmse(pred, gt) == pytest.approx(normalized_root_mse(gt, pred, normalization="mean"), rel=1e-10)
    assert metrics.pearson(pred, gt) == pytest.approx(np.corrcoef(pred.ravel(), gt.ravel())[0, 1], rel=1e-12)


def test_psnr_uses_fixed_data_range_255(pair):
    pred, gt = pair
    assert metrics.psnr(pred, gt) == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=255), rel=1e-12)
    # The authors' defect: the range taken from a (here dim) prediction changes the score.
    dim = pred * 0.5
    from_prediction = peak_signal_noise_ratio(gt, dim, data_range=dim.max() - dim.min())
    assert metrics.psnr(dim, gt) == pytest.approx(10 * np.log10(255**2 / np.mean((dim - gt) ** 2)))
    assert abs(metrics.psnr(dim, gt) - from_prediction) > 1.0


def test_ms_ssim_matches_torchmetrics_on_256_pairs(pair):
    pred, gt = pair
    settings = dict(
        gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=255.0,
        betas=(0.0448, 0.2856, 0.3001, 0.2363, 0.1333), normalize="relu",
    )
    as_tensor = lambda image, dtype: torch.tensor(image, dtype=dtype)[None, None]  # noqa: E731
    float32 = multiscale_structural_similarity_index_measure(as_tensor(pred, torch.float32), as_tensor(gt, torch.float32), **settings)
    float64 = multiscale_structural_similarity_index_measure(as_tensor(pred, torch.float64), as_tensor(gt, torch.float64), **settings)
    assert metrics.ms_ssim(pred, gt) == pytest.approx(float(float32), rel=1e-7)
    assert metrics.ms_ssim(pred, gt) == pytest.approx(float(float64), rel=1e-5)
    assert 0.5 < metrics.ms_ssim(pred, gt) < 1.0


def test_single_scale_ms_ssim_is_ssim_of_scikit_image(pair):
    pred, gt = pair
    reference = structural_similarity(
        gt, pred, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    # Same formula; only the handling of the image border differs slightly.
    assert metrics.ms_ssim(pred, gt, scales=1) == pytest.approx(reference, abs=5e-3)


def test_ms_ssim_negative_contrast_terms_give_zero_not_nan():
    gt = structured_image()
    anti_correlated = 255 - gt
    raw = multiscale_structural_similarity_index_measure(
        torch.from_numpy(anti_correlated)[None, None], torch.from_numpy(gt)[None, None],
        data_range=255.0, normalize=None,
    )
    assert math.isnan(float(raw))  # the problem torchmetrics' normalize="relu" avoids
    assert metrics.ms_ssim(anti_correlated, gt) == 0.0


def test_ms_ssim_size_limit_is_a_clear_error():
    small = structured_image(shape=(128, 128))
    with pytest.raises(ValueError, match="at least 176x176"):
        metrics.ms_ssim(small, small)
    assert metrics.ms_ssim_min_size(5) == 176
    assert metrics.ms_ssim(small, small, scales=3) == pytest.approx(1.0)


def test_identical_images_give_ideal_values(pair):
    _, gt = pair
    assert metrics.mae(gt, gt) == 0.0
    assert metrics.nrmse(gt, gt) == 0.0
    assert metrics.psnr(gt, gt) == math.inf
    assert metrics.ms_ssim(gt, gt) == pytest.approx(1.0, abs=1e-12)
    assert metrics.pearson(gt, gt) == pytest.approx(1.0, abs=1e-12)
    assert metrics.lpips(gt, gt, net=StandInLpips()) == pytest.approx(0.0, abs=1e-12)
    assert metrics.resolution_ratio(gt, gt) == 1.0


def test_torch_tensors_give_the_same_scores_as_numpy(pair):
    pred, gt = pair
    for metric in (metrics.mae, metrics.nrmse, metrics.psnr, metrics.pearson, metrics.ms_ssim):
        assert metric(torch.from_numpy(pred).float(), torch.from_numpy(gt).float()) == pytest.approx(
            metric(pred.astype(np.float32), gt.astype(np.float32)), rel=1e-9
        )


# --- LPIPS ------------------------------------------------------------------------------


class StandInLpips(torch.nn.Module):
    """A tiny LPIPS-shaped network: unit-normalised conv features, squared difference, mean."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Conv2d(3, 8, 3, padding=1)
        torch.nn.init.normal_(self.features.weight, generator=torch.Generator().manual_seed(0))
        self.seen_ranges = []

    def forward(self, a, b):
        self.seen_ranges.append((a.shape, float(a.min()), float(a.max())))
        fa, fb = (torch.nn.functional.normalize(self.features(x), dim=1) for x in (a, b))
        return ((fa - fb) ** 2).sum(1).mean((1, 2))


@pytest.fixture
def lpips_unavailable(monkeypatch):
    def fail():
        raise ModuleNotFoundError("No module named 'torchvision'")

    perceptual._reset_for_tests()
    monkeypatch.setattr(perceptual, "_load_alexnet_lpips", fail)
    yield
    perceptual._reset_for_tests()


def test_lpips_without_network_is_nan_with_exactly_one_warning(pair, lpips_unavailable):
    pred, gt = pair
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = [metrics.lpips(pred, gt) for _ in range(3)]
        values.append(metrics.evaluate(pred, gt)["lpips"])
    assert all(math.isnan(v) for v in values)
    lpips_warnings = [w for w in caught if issubclass(w.category, metrics.LPIPSUnavailableWarning)]
    assert len(lpips_warnings) == 1
    assert "pip install torchvision lpips" in str(lpips_warnings[0].message)


def test_lpips_with_injected_network_is_finite_and_sees_3_channels_in_minus1_1(pair):
    pred, gt = pair
    net = StandInLpips()
    score = metrics.lpips(pred, gt, net=net)
    assert math.isfinite(score) and score > 0
    shape, low, high = net.seen_ranges[0]
    assert tuple(shape) == (1, 3, 256, 256)
    assert -1.0 <= low < high <= 1.0
    assert metrics.lpips(np.clip(pred + 30, 0, 255), gt, net=net) > score  # worse image, larger distance
    batch = metrics.lpips_batch(np.stack([pred, gt]), np.stack([gt, gt]), net=net)
    assert batch[0] == pytest.approx(score, rel=1e-6) and batch[1] == pytest.approx(0.0, abs=1e-9)


def test_default_lpips_network_is_built_once_and_used(pair, monkeypatch):
    pred, gt = pair
    builds = []

    def build():
        builds.append(1)
        return StandInLpips()

    perceptual._reset_for_tests()
    monkeypatch.setattr(perceptual, "_load_alexnet_lpips", build)
    try:
        first, second = metrics.lpips(pred, gt), metrics.lpips(pred, gt)
    finally:
        perceptual._reset_for_tests()
    assert len(builds) == 1 and math.isfinite(first) and first == second


# --- evaluate and batching -------------------------------------------------------------------


def test_evaluate_returns_every_metric_consistent_with_the_single_functions(pair):
    pred, gt = pair
    net = StandInLpips()
    scores = metrics.evaluate(pred, gt, pixel_size=20.0, lpips_net=net)
    assert list(scores) == list(metrics.METRICS)
    assert scores["mae"] == metrics.mae(pred, gt)
    assert scores["psnr"] == metrics.psnr(pred, gt)
    assert scores["ms_ssim"] == metrics.ms_ssim(pred, gt)
    assert scores["lpips"] == pytest.approx(metrics.lpips(pred, gt, net=net))
    assert scores["resolution"] == metrics.decorrelation_resolution(pred, 20.0)
    assert scores["resolution_ratio"] == pytest.approx(scores["resolution"] / scores["resolution_gt"])
    assert math.isnan(metrics.evaluate(pred, gt, lpips=False)["lpips"])


def test_batched_helpers_map_over_a_stack(pair):
    pred, gt = pair
    preds = np.stack([pred, gt, np.clip(pred + 5, 0, 255)])
    gts = np.stack([gt, gt, gt])
    psnrs = metrics.per_image(metrics.psnr, preds, gts)
    assert psnrs.shape == (3,) and psnrs[1] == math.inf
    assert psnrs[0] == metrics.psnr(pred, gt)
    table = metrics.evaluate_batch(preds, gts, lpips=False, progress=False)
    assert set(table) == set(metrics.METRICS) and table["mae"].shape == (3,)
    np.testing.assert_array_equal(table["psnr"], psnrs)
    with pytest.raises(ValueError, match="3 predictions but 2 ground truths"):
        metrics.per_image(metrics.mae, preds, gts[:2])


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", [metrics.mae, metrics.nrmse, metrics.psnr, metrics.pearson, metrics.ms_ssim])
def test_bad_inputs_raise_clear_errors(metric, pair):
    pred, gt = pair
    with pytest.raises(ValueError, match="same size"):
        metric(pred[:200], gt)
    bad = pred.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN/Inf"):
        metric(bad, gt)
    bad[3, 4] = np.inf
    with pytest.raises(ValueError, match="NaN/Inf"):
        metric(pred, bad)
    with pytest.raises(ValueError, match="empty"):
        metric(np.zeros((0, 0)), np.zeros((0, 0)))
    with pytest.raises(ValueError, match="2-D"):
        metric(pred[None], gt[None])


def test_undefined_metrics_are_nan_with_a_reason():
    constant = np.full((256, 256), 100.0)
    image = structured_image()
    with pytest.warns(metrics.MetricWarning, match="constant"):
        assert math.isnan(metrics.pearson(image, constant))
    with pytest.warns(metrics.MetricWarning, match="mean 0"):
        assert math.isnan(metrics.nrmse(image, np.zeros((256, 256))))
    with pytest.warns(metrics.MetricWarning, match="constant"):
        assert math.isnan(metrics.decorrelation_resolution(constant))
    assert metrics.mae(constant, constant) == 0.0  # defined metrics stay defined


def test_wrong_scale_is_flagged():
    image = structured_image()
    with pytest.warns(metrics.MetricWarning, match="0..255"):
        metrics.mae(image / 127.5 - 1, image)
    with pytest.warns(metrics.MetricWarning, match="0..255"):
        metrics.mae(image / 255, image)


# --- post-processing (§3.6) --------------------------------------------------------------------


def test_clip_and_rescale_matches_the_gt_training_distribution():
    rng = np.random.default_rng(2)
    gt_train = [rng.normal(60, 15, (64, 64)).clip(0, 255) for _ in range(4)]
    reference = metrics.IntensityReference.from_images(gt_train)
    pixels = np.concatenate([g.ravel() for g in gt_train])
    assert reference.mean == pytest.approx(pixels.mean()) and reference.std == pytest.approx(pixels.std())

    pred = rng.normal(150, 40, (64, 64))
    pred[0, :5] = 400.0  # out of range: clipped before the statistics are taken
    out = metrics.clip_and_rescale(pred, reference, clip_output=False)
    clipped = np.clip(pred, 0, 255)
    expected = (clipped - clipped.mean()) / clipped.std() * reference.std + reference.mean
    np.testing.assert_allclose(out, expected)
    assert out.mean() == pytest.approx(reference.mean) and out.std() == pytest.approx(reference.std)
    # passing the images instead of the reference gives the same result
    np.testing.assert_allclose(metrics.clip_and_rescale(pred, gt_train, clip_output=False), out)
    assert metrics.clip_and_rescale(pred * 10, reference).max() <= 255.0


def test_clip_and_rescale_percentile_and_constant_inputs():
    rng = np.random.default_rng(3)
    reference = metrics.IntensityReference.from_images(rng.uniform(10, 200, (128, 128)))
    pred = rng.uniform(0, 50, (128, 128))
    out = metrics.clip_and_rescale(pred, reference, method="percentile", clip_output=False)
    np.testing.assert_allclose(np.percentile(out, reference.percentiles), [reference.low, reference.high])
    flat = metrics.clip_and_rescale(np.full((8, 8), 7.0), reference)
    np.testing.assert_allclose(flat, reference.mean)
    with pytest.raises(ValueError, match="unknown rescale method"):
        metrics.clip_and_rescale(pred, reference, method="minmax")


def test_align_to_gt_recovers_a_subpixel_shift():
    gt = structured_image(4)
    pred = ndimage.shift(gt, (2.3, -1.6), order=3, mode="nearest")
    aligned, shift = metrics.align_to_gt(pred, gt, upsample_factor=20)
    assert shift == pytest.approx((-2.3, 1.6), abs=0.1)
    inner = (slice(10, -10), slice(10, -10))
    assert metrics.mae(aligned[inner], gt[inner]) < 0.1 * metrics.mae(pred[inner], gt[inner])
    with pytest.raises(ValueError, match="max_shift"):
        metrics.align_to_gt(np.roll(gt, 40, axis=0), gt, max_shift=10)
