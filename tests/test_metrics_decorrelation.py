"""Resolution by decorrelation analysis (Descloux et al. 2019) on images with a known band limit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from teachdiff import metrics
from teachdiff.metrics.decorrelation import _Spectrum


def band_limited_noise(cutoff: float, shape=(256, 256), seed: int = 0, noise: float = 0.0) -> np.ndarray:
    """White noise through an ideal low-pass at ``cutoff`` (fraction of Nyquist), on 0..255."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(shape[0])[:, None] / 0.5
    fx = np.fft.fftfreq(shape[1])[None, :] / 0.5
    spectrum = np.fft.fft2(rng.standard_normal(shape)) * (np.sqrt(fy**2 + fx**2) < cutoff)
    image = np.real(np.fft.ifft2(spectrum))
    image = image / image.std() * 20 + 100
    return image + rng.standard_normal(shape) * noise


@pytest.mark.parametrize("cutoff", [0.15, 0.3, 0.5, 0.7, 0.9])
def test_cutoff_of_band_limited_noise_is_found_within_10_percent(cutoff):
    result = metrics.decorrelation_analysis(band_limited_noise(cutoff, seed=int(cutoff * 100)))
    assert result.reason is None
    assert result.kc == pytest.approx(cutoff, rel=0.10)
    assert result.resolution == pytest.approx(2.0 / result.kc)


def test_cutoff_on_a_non_square_image():
    result = metrics.decorrelation_analysis(band_limited_noise(0.4, shape=(192, 256)))
    assert result.kc == pytest.approx(0.4, rel=0.10)


def test_blurring_never_improves_the_resolution():
    image = band_limited_noise(0.6, noise=5.0)
    resolutions = [
        metrics.decorrelation_resolution(ndimage.gaussian_filter(image, sigma) if sigma else image)
        for sigma in (0, 0.75, 1.5, 2.5, 4.0)
    ]
    assert all(later >= earlier for earlier, later in zip(resolutions, resolutions[1:]))
    assert resolutions[-1] > 2 * resolutions[0]  # and strong blur is clearly detected


def test_pixel_size_scales_the_result_linearly():
    image = band_limited_noise(0.5)
    in_pixels = metrics.decorrelation_resolution(image)
    assert metrics.decorrelation_resolution(image, pixel_size=15.0) == pytest.approx(15.0 * in_pixels, rel=1e-12)
    assert metrics.decorrelation_resolution(image, pixel_size=2.5) == pytest.approx(2.5 * in_pixels, rel=1e-12)
    with pytest.raises(ValueError, match="pixel_size"):
        metrics.decorrelation_resolution(image, pixel_size=0.0)


def test_resolution_ratio_is_eq_14():
    sharp = band_limited_noise(0.8)
    blurred = ndimage.gaussian_filter(sharp, 2.0)
    ratio = metrics.resolution_ratio(blurred, sharp, pixel_size=30.0)
    assert ratio == pytest.approx(
        metrics.decorrelation_resolution(blurred) / metrics.decorrelation_resolution(sharp)
    )
    assert ratio > 1.0  # worse than the reference


def test_correlation_curve_equals_eq_12_computed_literally():
    """The fast cumulative-sum curve against Eq. 12 with one explicit masked sum per radius."""
    image = band_limited_noise(0.5, shape=(64, 64), noise=2.0)
    image = (image - image.mean()) / image.std()
    spectrum = _Spectrum(image)
    high_pass = spectrum.high_pass(1.5)
    radii = np.linspace(0, 1, 20)
    fast = spectrum.curve(spectrum.transform * high_pass, radii)

    transform = np.fft.fft2(image) * high_pass
    transform[0, 0] = 0
    unfiltered = np.fft.fft2(image)
    phase = np.where(np.abs(unfiltered) > 0, unfiltered / np.abs(unfiltered), 0)
    fy = np.fft.fftfreq(64)[:, None] / 0.5
    fx = np.fft.fftfreq(64)[None, :] / 0.5
    k = np.sqrt(fy**2 + fx**2)
    inside = (k < 1) & (k > 0)
    literal = []
    for r in radii:
        mask = inside & (k < r)
        numerator = np.sum(np.real(transform * np.conj(phase))[mask])
        denominator = np.sqrt(np.sum(np.abs(transform[inside]) ** 2) * np.sum(np.abs(phase[mask]) ** 2))
        literal.append(numerator / denominator if mask.any() else 0.0)
    np.testing.assert_allclose(fast, literal, rtol=1e-10, atol=1e-12)


def test_analysis_exposes_the_curves_for_plotting():
    result = metrics.decorrelation_analysis(band_limited_noise(0.4), n_radii=50, n_filters=10)
    assert len(result.curves) == 1 + 2 * 10
    d0 = result.curves[0]
    assert d0.sigma is None and d0.radii.shape == (50,)
    assert np.all((d0.d >= 0) & (d0.d <= 1))
    assert d0.kc == pytest.approx(0.4, rel=0.10) and 0.05 < result.amplitude <= 1


def test_undefined_resolution_is_nan_with_a_reason():
    constant = np.full((128, 128), 50.0)
    result = metrics.decorrelation_analysis(constant)
    assert math.isnan(result.resolution) and "constant" in result.reason
    with pytest.warns(metrics.MetricWarning, match="undefined"):
        assert math.isnan(metrics.resolution_ratio(band_limited_noise(0.5, shape=(128, 128)), constant))
    with pytest.raises(ValueError, match="too small"):
        metrics.decorrelation_resolution(np.full((4, 4), 100.0))
