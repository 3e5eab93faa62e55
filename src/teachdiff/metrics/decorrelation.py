r"""Image resolution by decorrelation analysis (Descloux, Grußmayer & Radenovic, Nat. Methods 2019).

The paper (§S2, Eqs. 12–14) scores resolution with the authors' ImageJ plugin
*ImageDecorrelationAnalysis*; this is our NumPy re-implementation of the same algorithm, with
the plugin's defaults (50 radii, 10 high-pass filters, 20-pixel edge apodisation).

Frequencies are normalised so that 1 is the Nyquist frequency (half the sampling rate) along
each axis. For an image :math:`I(\mathbf{k}) = \mathcal{F}\{\text{image}\}` with its mean removed,
and its phase-only version :math:`I_n(\mathbf{k}) = I(\mathbf{k}) / |I(\mathbf{k})|`, the
decorrelation curve is the Pearson correlation of :math:`I` with :math:`I_n` restricted to a disc
of radius :math:`r` (Eq. 12):

.. math::
    d(r) = \frac{\sum_{|\mathbf{k}|<1} \mathrm{Re}\{I(\mathbf{k})\, I_n^*(\mathbf{k})\, M(\mathbf{k}; r)\}}
                {\sqrt{\sum_{|\mathbf{k}|<1} |I(\mathbf{k})|^2 \;
                       \sum_{|\mathbf{k}|<1} |I_n(\mathbf{k}) M(\mathbf{k}; r)|^2}},
    \qquad M(\mathbf{k}; r) = [\,|\mathbf{k}| < r\,].

Inside the band that carries signal, widening the disc adds correlated (signal) frequencies and
:math:`d` rises; beyond it, the disc only adds noise, whose phases are random, and :math:`d`
falls. The peak position :math:`r_i` marks the highest frequency that still carries information,
and its amplitude :math:`A_i` is a signal-to-noise proxy. The curve is recomputed for the image
high-pass filtered with ``n_filters`` Gaussian filters (from weak to strong; a strong high-pass
suppresses the dominant low frequencies so that a weak high-frequency band can still produce a
peak), then refined once around the best peak. The cut-off is the largest significant peak
position over all curves and the resolution follows (Eq. 13):

.. math::
    k_c = \max(r_0, \dots, r_{N_g}), \qquad R = \frac{2 \times \text{pixel size}}{k_c}.

``resolution_ratio`` is Eq. 14, :math:`\bar R = R_{\hat y} / R_y`.

Implementation notes and deviations (documented for the book):

- Edge apodisation: a raised-cosine taper over ``apodization`` pixels on each side (the product of
  two 1-D tapers, towards the image mean, as in the authors' MATLAB ``apodImRect``); images
  whose sides are not powers of two are *not* zero-padded (the plugin pads to a power-of-two
  square for its Hartley transform; NumPy's FFT does not need it).
- High-pass filters are applied in Fourier space, :math:`1 - \exp(-2\pi^2\sigma^2 f^2)` (the exact
  transfer function of "image minus its Gaussian blur" with a periodic boundary), with
  :math:`\sigma` log-spaced from :math:`2/r_0` pixels down to 0.15 pixel (MATLAB code).
- Because a real, non-negative filter does not change phases, :math:`I_n` is the same for every
  filtered curve, and :math:`d(r)` for all radii is obtained from one cumulative sum over the
  frequencies sorted by radius instead of one masked sum per radius.
- Peak detection: the highest point of :math:`d(r)` that is not the last sample and stands at least
  0.001 above every later value (the authors' numerical-noise margin). Peaks with amplitude
  below 0.05 are discarded, as in the authors' MATLAB code; when no significant peak is left the
  resolution is undefined and ``nan`` is returned with a reason.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from teachdiff.metrics._checks import MetricWarning, as_image

PEAK_MARGIN = 1e-3
"""A peak must stand this far above every later value of d(r) (numerical-noise margin)."""

MIN_PEAK_AMPLITUDE = 0.05
"""Peaks with a smaller amplitude A are not significant and are ignored."""

SMALLEST_SIGMA = 0.15
"""Width, in pixels, of the strongest high-pass filter (the MATLAB reference's value)."""


@dataclass
class DecorrelationCurve:
    """One decorrelation curve d(r) and its peak."""

    sigma: float | None
    """Width in pixels of the Gaussian high-pass filter; ``None`` for the unfiltered curve d0."""
    radii: np.ndarray
    d: np.ndarray
    kc: float
    """Peak position, normalised frequency (1 = Nyquist); 0 when there is no peak."""
    amplitude: float


@dataclass
class DecorrelationResult:
    """Everything the analysis found; ``resolution`` is ``nan`` when it is undefined (see ``reason``)."""

    resolution: float
    """2 * pixel_size / kc, in the unit of ``pixel_size``."""
    kc: float
    """Cut-off frequency k_c, normalised so that 1 is the Nyquist frequency."""
    amplitude: float
    """A0: peak amplitude of the unfiltered curve d0 (an SNR proxy)."""
    pixel_size: float
    curves: list[DecorrelationCurve] = field(default_factory=list)
    reason: str | None = None
    """Why the resolution is undefined, else ``None``."""


def decorrelation_resolution(
    image, pixel_size: float = 1.0, n_radii: int = 50, n_filters: int = 10, apodization: int = 20
) -> float:
    """Resolution of one 2-D image by decorrelation analysis, in the unit of ``pixel_size``.

    Lower is better (finer detail). Returns ``nan`` with a ``MetricWarning`` giving the reason
    when there is no significant peak (a constant image, pure noise at some settings).
    See :func:`decorrelation_analysis` for the curves.
    """
    return _resolution(decorrelation_analysis(image, pixel_size, n_radii, n_filters, apodization))


def _resolution(result: DecorrelationResult) -> float:
    if result.reason is not None:
        warnings.warn(
            f"decorrelation resolution is undefined: {result.reason}; returning nan.",
            MetricWarning,
            stacklevel=3,
        )
    return result.resolution


def resolution_ratio(pred, gt, pixel_size: float = 1.0) -> float:
    """Eq. 14: R(pred) / R(gt); 1 = same resolution, > 1 worse, < 1 better than the ground truth.

    ``nan`` (with the reason as a warning) when either resolution is undefined.
    """
    return float(
        decorrelation_resolution(pred, pixel_size) / decorrelation_resolution(gt, pixel_size)
    )


def decorrelation_analysis(
    image, pixel_size: float = 1.0, n_radii: int = 50, n_filters: int = 10, apodization: int = 20
) -> DecorrelationResult:
    """Run the full analysis and return the resolution, k_c, A0 and every curve (for plots)."""
    return _decorrelation(as_image(image), pixel_size, n_radii, n_filters, apodization)


def _decorrelation(
    array: np.ndarray, pixel_size: float, n_radii: int = 50, n_filters: int = 10, apodization: int = 20
) -> DecorrelationResult:
    """:func:`decorrelation_analysis` of an already checked float64 array."""
    if not (np.isfinite(pixel_size) and pixel_size > 0):
        raise ValueError(f"pixel_size must be a positive number (e.g. nm per pixel), got {pixel_size}.")
    if n_radii < 10 or n_filters < 1:
        raise ValueError(
            f"need n_radii >= 10 and n_filters >= 1, got {n_radii} and {n_filters}; "
            "the plugin's defaults are 50 and 10."
        )
    if min(array.shape) < 8:
        raise ValueError(
            f"image of shape {array.shape} is too small for a decorrelation analysis; "
            "use at least 8 x 8 pixels (the paper scores 256 x 256 patches)."
        )
    if array.std() == 0.0:
        return _undefined(pixel_size, "the image is constant (it has no spectrum to analyse)")

    spectrum = _Spectrum(_standardise(_apodize(array, apodization)))
    r0 = np.linspace(0.0, 1.0, n_radii)
    d0 = spectrum.curve(spectrum.transform, r0)
    kc0, amplitude0 = _peak(r0, d0)
    curves = [DecorrelationCurve(None, r0, d0, kc0, amplitude0)]

    sigma_max = 2.0 / kc0 if kc0 > 0 else max(array.shape) / 2.0
    sigmas = np.geomspace(sigma_max, SMALLEST_SIGMA, n_filters)
    radii = r0
    for refinement in range(2):
        first_pass = []
        for sigma in sigmas:
            d = spectrum.curve(spectrum.transform * spectrum.high_pass(sigma), radii)
            first_pass.append(DecorrelationCurve(float(sigma), radii, d, *_peak(radii, d)))
        curves.extend(first_pass)
        if refinement == 0:
            sigmas, radii = _refine(first_pass, sigmas, n_radii)

    significant = [c for c in curves if c.amplitude >= MIN_PEAK_AMPLITUDE and c.kc > 0]
    if not significant:
        result = _undefined(
            pixel_size,
            f"no decorrelation curve has a peak of amplitude >= {MIN_PEAK_AMPLITUDE} "
            "(no detectable structure above the noise)",
        )
        result.amplitude, result.curves = amplitude0, curves
        return result
    kc = max(c.kc for c in significant)
    return DecorrelationResult(2.0 * pixel_size / kc, kc, amplitude0, pixel_size, curves)


class _Spectrum:
    """The image's Fourier transform, its phase-only version and the radial bookkeeping of Eq. 12."""

    def __init__(self, image: np.ndarray):
        height, width = image.shape
        fy = np.fft.fftfreq(height)[:, None]  # cycles per pixel, Nyquist = 0.5
        fx = np.fft.fftfreq(width)[None, :]
        self.f_squared = fy**2 + fx**2
        k = np.sqrt((fy / 0.5) ** 2 + (fx / 0.5) ** 2)  # 1 = Nyquist along each axis
        self.inside = k < 1.0
        self.inside[0, 0] = False  # the mean carries no resolution information
        self.order = np.argsort(k[self.inside], kind="stable")
        self.k_sorted = k[self.inside][self.order]
        self.transform = np.fft.fft2(image)
        magnitude = np.abs(self.transform)
        self.phase_only = np.divide(
            self.transform, magnitude, out=np.zeros_like(self.transform), where=magnitude > 0
        )
        self.cumulative_norm = np.cumsum(np.abs(self.phase_only[self.inside][self.order]) ** 2)

    def high_pass(self, sigma: float) -> np.ndarray:
        """Transfer function of ``image - gaussian_blur(image, sigma)``."""
        return 1.0 - np.exp(-2.0 * np.pi**2 * sigma**2 * self.f_squared)

    def curve(self, transform: np.ndarray, radii: np.ndarray) -> np.ndarray:
        """d(r) of Eq. 12 for every radius in ``radii``."""
        inside = transform[self.inside]
        norm = np.sqrt(np.sum(np.abs(inside) ** 2))
        if norm == 0.0:
            return np.zeros_like(radii)
        correlation = np.cumsum(np.real(inside * np.conj(self.phase_only[self.inside]))[self.order])
        count = np.searchsorted(self.k_sorted, radii, side="left")  # frequencies with |k| < r
        d = np.zeros_like(radii, dtype=np.float64)
        has = (count > 0) & (self.cumulative_norm[np.maximum(count - 1, 0)] > 0)
        last = count[has] - 1
        d[has] = correlation[last] / (norm * np.sqrt(self.cumulative_norm[last]))
        return d


def _peak(radii: np.ndarray, d: np.ndarray) -> tuple[float, float]:
    """Position and amplitude of the highest significant local maximum of d(r); (0, 0) if none."""
    later_min = np.minimum.accumulate(d[::-1])[::-1]
    stands_out = np.zeros_like(d, dtype=bool)
    stands_out[:-1] = d[:-1] - later_min[1:] > PEAK_MARGIN
    if not stands_out.any():
        return 0.0, 0.0
    index = int(np.argmax(np.where(stands_out, d, -np.inf)))
    return float(radii[index]), float(d[index])


def _refine(curves, sigmas: np.ndarray, n_radii: int) -> tuple[np.ndarray, np.ndarray]:
    """Second pass: filters between the best-scoring ones, radii finely around the best peak.

    "Best" is judged twice, as in the reference: the largest k_c, and the largest geometric mean
    sqrt(k_c * A) (a peak that is both high-frequency and well above the noise).
    """
    kc = np.array([c.kc for c in curves])
    amplitude = np.array([c.amplitude for c in curves])
    kc[amplitude < MIN_PEAK_AMPLITUDE] = 0.0
    geometric_mean = np.sqrt(kc * amplitude)
    best_gm, best_kc = int(np.argmax(geometric_mean)), int(np.argmax(kc))
    low, high = min(best_gm, best_kc), max(best_gm, best_kc)
    if low == 0:
        high = 0
    elif high == len(sigmas) - 1:
        high = len(sigmas) - 2
    refined_sigmas = np.geomspace(sigmas[low], sigmas[min(high + 1, len(sigmas) - 1)], len(sigmas))
    centre = kc[best_gm]
    refined_radii = np.linspace(max(centre - 0.05, 0.0), min(centre + 0.3, 1.0), n_radii)
    return refined_sigmas, refined_radii


def _apodize(image: np.ndarray, width: int) -> np.ndarray:
    """Raised-cosine taper of the ``width`` outermost pixels towards the mean (kills edge artefacts)."""
    width = int(min(width, min(image.shape) // 4))
    if width < 1:
        return image
    mean = image.mean()

    def taper(n: int) -> np.ndarray:
        weights = np.ones(n)
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(width) + 0.5) / width)
        weights[:width] = ramp
        weights[n - width :] = ramp[::-1]
        return weights

    window = taper(image.shape[0])[:, None] * taper(image.shape[1])[None, :]
    return (image - mean) * window + mean


def _standardise(image: np.ndarray) -> np.ndarray:
    return (image - image.mean()) / image.std()


def _undefined(pixel_size: float, reason: str) -> DecorrelationResult:
    return DecorrelationResult(float("nan"), 0.0, 0.0, pixel_size, [], reason)
