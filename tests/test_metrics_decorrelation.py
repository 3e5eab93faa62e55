"""Resolution by decorrelation analysis (Descloux et al. 2019) on images with a known band limit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from teachdiff.evaluation import metrics
from teachdiff.evaluation.metrics.decorrelation import _Spectrum, apodize_rect


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


def test_correlation_curve_equals_getcorrcoef_computed_literally():
    """The cumulative-sum curves against getDcorr.m's loop: one masked getCorrcoef per radius."""
    image = band_limited_noise(0.5, shape=(63, 65), noise=2.0)
    spectrum = _Spectrum(image)
    radii = np.linspace(0, 1, 50)

    transform = np.fft.fftshift(np.fft.fft2(np.fft.fftshift(image)))
    x, y = np.meshgrid(np.linspace(-1, 1, 65), np.linspace(-1, 1, 63))
    radius = np.sqrt(x**2 + y**2)
    phase = np.where(np.abs(transform) > 0, transform / np.abs(transform), 0) * (radius < 1)
    transform = transform * (radius < 1)
    for g in (None, 63 / 4, 2.0, 0.15):
        filtered = transform if g is None else transform * (1 - np.exp(-2 * g * g * radius**2))
        norm = np.sqrt(np.sum(np.abs(filtered) ** 2))
        literal = []
        for r in radii:
            mask = radius**2 < r**2
            with np.errstate(invalid="ignore"):
                cc = np.sum(np.real(filtered[mask] * np.conj(phase[mask]))) / (
                    norm * np.sqrt(np.sum(np.abs(phase[mask]) ** 2))
                )
            literal.append(0.0 if np.isnan(cc) else np.floor(1000 * cc) / 1000)
        fast = spectrum.curve(g, radii)
        assert np.mean(fast == np.array(literal)) > 0.95  # floors agree except within rounding
        np.testing.assert_allclose(fast, literal, atol=1.0001e-3)


def test_apodisation_tapers_the_edges_towards_the_mean():
    image = band_limited_noise(0.5, shape=(96, 80))
    apodised = apodize_rect(image, 20)
    centre = (slice(19, -19), slice(19, -19))
    np.testing.assert_array_equal(apodised[centre], image[centre])
    mean = image.mean()
    assert np.abs(apodised[0] - mean).max() < 1e-9 and np.abs(apodised[:, -1] - mean).max() < 1e-9
    ramp = (apodised[:20, 40] - mean) / (image[:20, 40] - mean)
    assert np.all(np.diff(ramp) > 0) and ramp[-1] == pytest.approx(1.0)
    np.testing.assert_array_equal(apodize_rect(image, 0), image)


FIXTURE = Path(__file__).parent / "data" / "decorr_fixture"
REFERENCE = json.loads((FIXTURE / "getdcorr.json").read_text())["images"]


@pytest.fixture(scope="module")
def fixture_images():
    with np.load(FIXTURE / "images.npz") as images:
        return {name: images[name] for name in images.files}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_kc_and_a0_agree_with_the_authors_matlab_code(name, fixture_images):
    """k_c and A0 of getDcorr.m (run unmodified in GNU Octave, see make_fixture.py)."""
    image = fixture_images[name]
    assert list(image.shape) == REFERENCE[name]["shape"]
    result = metrics.decorrelation_analysis(image)
    assert result.kc == pytest.approx(REFERENCE[name]["kc"], abs=1e-3)
    assert result.amplitude == pytest.approx(REFERENCE[name]["A0"], abs=1e-3)


def test_pure_noise_peaks_at_the_first_radius_because_d0_keeps_the_mean():
    """As getDcorr.m: the DC term makes d0 peak at r = 1/49; no filtered curve has a peak."""
    image = np.random.default_rng(3).normal(100, 10, (96, 96))
    result = metrics.decorrelation_analysis(image)
    assert result.kc == pytest.approx(1 / 49) and result.curves[0].kc == pytest.approx(1 / 49)
    assert all(c.amplitude < 0.05 or c.kc == 0 for c in result.curves[1:] if c.counted)


def test_analysis_exposes_the_curves_for_plotting():
    result = metrics.decorrelation_analysis(band_limited_noise(0.4), n_radii=50, n_filters=10)
    assert len(result.curves) == 1 + 11 + 10  # d0, g = [N/4, 10 log-spaced], 10 refined
    assert sum(c.refined for c in result.curves) == 10
    assert [c.counted for c in result.curves].count(False) == 1  # overwritten in getDcorr.m
    d0 = result.curves[0]
    assert d0.g is None and d0.radii.shape == (50,)
    assert np.all((d0.d >= 0) & (d0.d <= 1))
    assert result.kc == pytest.approx(0.4, rel=0.10) and 0.05 < result.amplitude <= 1
    assert d0.kc == pytest.approx(1 / 49)  # d0 keeps the mean, which dominates its first radii


def test_undefined_resolution_is_nan_with_a_reason():
    constant = np.full((128, 128), 50.0)
    result = metrics.decorrelation_analysis(constant)
    assert math.isnan(result.resolution) and "constant" in result.reason
    with pytest.warns(metrics.MetricWarning, match="undefined"):
        assert math.isnan(metrics.resolution_ratio(band_limited_noise(0.5, shape=(128, 128)), constant))
    with pytest.raises(ValueError, match="n_radii >= 30"):
        metrics.decorrelation_resolution(band_limited_noise(0.5, shape=(64, 64)), n_radii=20)
    with pytest.raises(ValueError, match="too small"):
        metrics.decorrelation_resolution(np.full((4, 4), 100.0))
