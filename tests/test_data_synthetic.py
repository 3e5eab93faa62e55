"""The synthetic microscope: determinism, dose -> quality, and the Poisson-Gaussian noise model."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio

from teachdiff.data.registry import CASES
from teachdiff.data.synthetic import make_synthetic_dataset, microscope_config, simulate_detection, simulate_pair


@pytest.mark.parametrize("case", CASES)
def test_same_seed_same_pair_any_size(case):
    a = simulate_pair(case, (96, 130), seed=3)
    b = simulate_pair(case, (96, 130), seed=3)
    c = simulate_pair(case, (96, 130), seed=4)
    assert a.x.shape == a.y.shape == a.structure.shape == (96, 130)
    assert a.x.dtype == np.uint8 and a.y.dtype == np.uint8
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.structure, b.structure)
    assert not np.array_equal(a.y, c.y)
    assert a.y.std() > 0 and a.x.std() > 0  # not blank


def test_sixteen_bit_uses_the_wider_range():
    p8 = simulate_pair("mitochondria", 128, seed=0, bit_depth=8)
    p16 = simulate_pair("mitochondria", 128, seed=0, bit_depth=16)
    assert p16.y.dtype == np.uint16 and p16.y.max() > 255
    # Same structure, detector units scaled by 2^8.
    np.testing.assert_allclose(p16.expected_y, 256 * p8.expected_y, rtol=1e-5)


def _psnr_to_clean(values, expected, config, dose):
    # Detected ADU back to photons per unit dose; compare with the noise-free image.
    measured = (values.astype(np.float64) - config.offset) / (config.gain * dose)
    clean = (expected.astype(np.float64) - config.offset) / (config.gain * dose)
    return peak_signal_noise_ratio(clean, measured, data_range=clean.max())


@pytest.mark.parametrize("case", ["microtubules", "mitochondria"])
def test_higher_dose_gives_higher_psnr_against_the_clean_image(case):
    low = simulate_pair(case, 256, seed=1, dose_x=3.0, bit_depth=16)
    high = simulate_pair(case, 256, seed=1, dose_x=100.0, bit_depth=16)
    np.testing.assert_array_equal(low.structure, high.structure)  # the dose does not change the sample
    cfg16 = microscope_config(case, gain=low.config.gain * 256, offset=low.config.offset * 256)
    psnr_low = _psnr_to_clean(low.x, low.expected_x, cfg16, 3.0)
    psnr_high = _psnr_to_clean(high.x, high.expected_x, cfg16, 100.0)
    # Shot noise: SNR grows as sqrt(dose), i.e. ~10 log10(100/3) = 15 dB; read noise eats a little.
    assert psnr_high > psnr_low + 10
    # And the default pair: the high-dose target is closer to the clean structure than the input.
    pair = simulate_pair(case, 256, seed=1)
    cfg = pair.config
    assert _psnr_to_clean(pair.y, pair.expected_y, cfg, cfg.dose_y) > _psnr_to_clean(pair.x, pair.expected_x, cfg, cfg.dose_x)


def test_detector_follows_the_poisson_gaussian_model_on_a_flat_field():
    rng = np.random.default_rng(0)
    photons = np.full((400, 400), 20.0)
    gain, offset, read = 3.0 * 256, 2.0 * 256, 1.5 * 256
    v = simulate_detection(photons, rng, gain=gain, offset=offset, read_noise=read, bit_depth=16).astype(np.float64)
    # E[v] = g lambda + o;  Var[v] = g^2 lambda + sigma_r^2 (+1/12 rounding, negligible here).
    assert v.mean() == pytest.approx(gain * 20 + offset, rel=0.005)
    assert v.var() == pytest.approx(gain**2 * 20 + read**2 + 1 / 12, rel=0.03)


def test_image_noise_variance_follows_the_mean_variance_line():
    pair = simulate_pair("zebrafish", 512, seed=2, bit_depth=16)
    cfg, units = pair.config, 256.0
    g, o, s = cfg.gain * units, cfg.offset * units, cfg.read_noise * units
    residual = pair.x.astype(np.float64) - pair.expected_x
    mean = pair.expected_x.astype(np.float64)
    bins = np.quantile(mean, np.linspace(0.05, 0.95, 7))
    for lo, hi in zip(bins[:-1], bins[1:]):
        sel = (mean >= lo) & (mean < hi) & (pair.x < 65535)
        predicted = np.mean(g * (mean[sel] - o) + s**2)
        assert residual[sel].var() == pytest.approx(predicted, rel=0.08)
    # The target is the mean of 50 captures: 50x smaller variance.
    residual_y = pair.y.astype(np.float64) - pair.expected_y
    assert residual.var() / residual_y.var() == pytest.approx(50, rel=0.1)


def test_synapse_input_has_the_wider_psf():
    pair = simulate_pair("synapses", 256, seed=0)
    cfg = pair.config
    assert cfg.psf_sigma_x > cfg.psf_sigma_y

    def sharpness(img):  # high-frequency energy relative to total signal
        img = img - img.mean()
        return np.mean(ndimage.laplace(img) ** 2) / np.mean(img**2)

    assert sharpness(pair.expected_x.astype(np.float64)) < 0.5 * sharpness(pair.expected_y.astype(np.float64))


def test_bad_arguments_say_what_is_valid():
    with pytest.raises(ValueError, match="microtubules, mitochondria, synapses, zebrafish"):
        simulate_pair("neurons")
    with pytest.raises(ValueError, match="bit_depth"):
        simulate_pair("synapses", 64, bit_depth=12)
    with pytest.raises(ValueError, match="positive"):
        simulate_pair("synapses", 64, dose_x=0)
    with pytest.raises(ValueError, match="valid settings"):
        microscope_config("synapses", magnification=60)


def test_make_synthetic_dataset_writes_pairs_and_never_overwrites(tmp_path):
    import tifffile

    pairs = make_synthetic_dataset("synapses", n_fov=3, fov_size=64, seed=5, out_dir=tmp_path)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "raw" / "fov_001.tif"), pairs[1].x)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "gt" / "fov_000.tif"), pairs[0].y)
    before = (tmp_path / "gt" / "fov_000.tif").read_bytes()
    with pytest.raises(FileExistsError, match="nothing was written"):
        make_synthetic_dataset("synapses", n_fov=3, fov_size=64, seed=6, out_dir=tmp_path)
    assert (tmp_path / "gt" / "fov_000.tif").read_bytes() == before
