"""The data-consistency check: fitted forward model, and a restoration that invents structure fails it."""

import numpy as np
import pytest
from scipy import ndimage

from teachdiff.evaluation.consistency import ForwardModel, check


def _microscope(seed=0, sigma=1.0, gain=0.4, offset=12.0, alpha=0.5, beta=4.0):
    rng = np.random.default_rng(seed)
    truth = ndimage.gaussian_filter((rng.random((160, 160)) > 0.985).astype(float), 1.5)
    truth = 220 * truth / truth.max() + 10
    mean = gain * ndimage.gaussian_filter(truth, sigma) + offset
    low = mean + rng.normal(size=mean.shape) * np.sqrt(alpha * mean + beta)
    return truth, np.clip(low, 0, 255)


def test_the_fit_recovers_a_known_microscope():
    truth, low = _microscope()
    model = ForwardModel.fit(low, truth)
    assert model.sigma == pytest.approx(1.0, abs=0.25)
    assert model.gain == pytest.approx(0.4, rel=0.05) and model.offset == pytest.approx(12.0, abs=1.0)
    assert model.alpha == pytest.approx(0.5, rel=0.3) and model.beta == pytest.approx(4.0, abs=3.0)


def test_the_truth_is_consistent_and_invented_structure_is_flagged_where_it_is():
    truth, low = _microscope(seed=1)
    model = ForwardModel.fit(*_microscope(seed=2)[::-1])  # fitted on another field of the same microscope
    honest = check(truth, low, model)
    assert honest.chi2 == pytest.approx(1.0, abs=0.15) and honest.fraction_flagged < 0.02
    invented = truth.copy()
    invented[60:76, 60:76] += 120  # a bright object the capture does not show
    result = check(invented, low, model)
    assert result.chi2 > 1.5 * honest.chi2
    assert np.nanmean(result.local[62:74, 62:74]) > 10 * np.nanmean(result.local[120:150, 120:150])
    blurred_away = ndimage.gaussian_filter(truth, 3.0)  # structure removed: also inconsistent
    assert check(blurred_away, low, model).chi2 > 1.5 * honest.chi2


def test_bad_input_gets_a_clear_error():
    truth, low = _microscope()
    with pytest.raises(ValueError, match="same shape"):
        check(truth[:10], low, ForwardModel(1, 1, 0, 1, 1))
    with pytest.raises(ValueError, match="pairs of images of the same shape"):
        ForwardModel.fit(low, truth[:10])
