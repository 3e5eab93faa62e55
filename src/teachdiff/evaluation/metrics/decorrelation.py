r"""Image resolution by decorrelation analysis (Descloux, Grußmayer & Radenovic, Nat. Methods 2019).

The paper (§S2, Eqs. 12–14) scores resolution with the authors' ImageJ plugin
*ImageDecorrelationAnalysis*. That plugin cannot score sharp images: after its first pass it sets
the upper end of the refined radius range to 0.5 unconditionally (``crmax = 0.5`` in
``ijplugin/src/ImageDecorrelationAnalysis.java``, and the same constant in the released jar), so
whenever the lower end (the smaller of its two first-pass cut-off estimates minus 0.05) is 0.5
or more, its ring index runs past the end of its array (an ``ArrayIndexOutOfBoundsException``):
a cut-off above about 0.55 of Nyquist, the case of most ground-truth images. The reference
implemented here is therefore the authors' MATLAB code (``github.com/Ades91/ImDecorr``, version
1.1.8): ``apodImRect.m`` for the edge apodisation, then ``getDcorr.m`` with its helpers
``getCorrcoef.m`` and ``getDcorrLocalMax.m``, called as in their script ``main_imageDecorr.m``
(``getDcorr(apodImRect(image, 20), linspace(0, 1, 50), 10)``). This module follows that code step
by step, and a regression test compares its k_c with values that the unmodified ``.m`` files
produced in GNU Octave (``tests/data/decorr_fixture``).

**Grid.** ``getDcorr`` first crops the image to odd sides (it drops the last row and/or column of
an even side), then takes the centred Fourier transform :math:`I(\mathbf{k})` of the image *with
its mean* on the grid ``linspace(-1, 1, N)`` along each axis: :math:`k = 1` lies :math:`(N-1)/2`
samples from the centre, on the last sample, i.e. at :math:`(N-1)/(2N)` cycles per pixel, just
below the Nyquist frequency. Everything is restricted to the disc :math:`|\mathbf{k}| < 1`.
:math:`I_n = I / |I|` is the phase-only transform (0 where :math:`I = 0`).

**Curves.** For a filter :math:`w(\mathbf{k})` (:math:`w = 1` for the unfiltered curve
:math:`d_0`, which therefore keeps the DC term), the decorrelation curve is the correlation of
:math:`I w` with :math:`I_n` inside a disc of radius :math:`r` (Eq. 12), floored to a multiple of
0.001 (``getCorrcoef.m``):

.. math::
    d(r) = \frac{\sum_{|\mathbf{k}|<r} \mathrm{Re}\{I(\mathbf{k}) w(\mathbf{k})\, I_n^*(\mathbf{k})\}}
                {\sqrt{\sum_{|\mathbf{k}|<1} |I(\mathbf{k}) w(\mathbf{k})|^2 \;
                       \sum_{|\mathbf{k}|<r} |I_n(\mathbf{k})|^2}}
         = \frac{\sum_{|\mathbf{k}|<r} |I| w}
                {\sqrt{\sum_{|\mathbf{k}|<1} |I w|^2 \; n(r)}},

:math:`n(r)` being the number of frequencies inside the disc with :math:`I \ne 0`.
Inside the band that carries signal, widening the disc adds correlated (signal) frequencies and
:math:`d` rises; beyond it, the disc only adds noise, whose phases are random, and :math:`d`
falls. The high-pass filters are :math:`w = 1 - \exp(-2 g^2 |\mathbf{k}|^2)` on the normalised
grid (so :math:`g` is *not* a width in pixels: large :math:`g` is a weak filter), with
:math:`g = [N_y/4,\ \mathrm{logspace}(2/r_0 \dots 0.15)]` (``n_filters`` log-spaced values,
:math:`r_0` the peak position of :math:`d_0`, or :math:`\max(N_y, N_x)/2` instead of :math:`2/r_0`
when :math:`r_0 = 0`; :math:`N_y`, :math:`N_x` the cropped numbers of rows and columns).

**Peaks** (``getDcorrLocalMax.m``): the highest point of :math:`d(r)` (the first one on ties) is
the peak if it is the first sample or some later value lies at least 0.0005 below it; otherwise the
last sample is dropped and the search repeats. :math:`r_i` is its position and :math:`A_i` its
height, an SNR proxy.

**Refinement and result.** After the first pass (:math:`d_0` and the ``n_filters + 1`` filtered
curves), the single curve with the highest peak position (the last one on ties, :math:`d_0`
included, whatever its amplitude) sets a second pass: ``n_filters`` filters log-spaced between
the :math:`g` of that curve and the next stronger one (for :math:`d_0`: between :math:`N_y` and
:math:`N_y/4`; for the two strongest filters: between the next weaker one and its own), and
``n_radii`` radii from one radius step below its peak to 0.4 above it (clipped to [0, 1]). The
second pass's curves overwrite the last first-pass curve's result (``getDcorr.m`` stores them
from that column on). Peaks of amplitude
below 0.05 are discarded, and the cut-off is the largest remaining peak position (Eq. 13):

.. math::
    k_c = \max_i r_i, \qquad R = \frac{2 \times \text{pixel size}}{k_c}.

When no peak is left ``getDcorr`` returns :math:`k_c = 0` (an infinite :math:`R`); here the
resolution is ``nan`` with the reason. On white noise the filtered curves rise to the end and
have no peak, but :math:`d_0` peaks at its first nonzero radius because it keeps the mean, so
:math:`k_c` = 1/49 (:math:`R` = 98 pixels with the default radii), as in ``getDcorr``. ``resolution_ratio`` is Eq. 14,
:math:`\bar R = R_{\hat y} / R_y`.

Implementation notes:

- ``getDcorr`` converts the image to single precision; this module rounds the apodised image to
  float32 in the same way and then computes in float64, so a value of :math:`d` that lies within
  about :math:`10^{-6}` of a multiple of 0.001 could floor differently (on the 25 fixture images
  k_c and A0 agree with Octave to :math:`10^{-10}`).
- Only :math:`|I|` enters :math:`d(r)` (the formula above), so every curve, for every radius, is
  read from cumulative sums over the frequencies sorted by radius instead of one masked sum per
  radius; the result is the same numbers (checked against the literal masked sums in the tests).
- ``getDcorr.m`` computes the ``r = 0`` point as 0/0 and replaces it by 0; so does this module.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from teachdiff.evaluation.metrics._checks import MetricWarning, as_image

PEAK_MARGIN = 5e-4
"""``getDcorrLocalMax.m``: a peak must stand this far above some later value of d(r)."""

MIN_PEAK_AMPLITUDE = 0.05
"""Peaks with a smaller amplitude A are not significant and are ignored (``getDcorr.m``)."""

STRONGEST_G = 0.15
"""The last (strongest) high-pass parameter g of the first pass (``getDcorr.m``)."""

REFINE_ABOVE = 0.4
"""The refined radii reach this far above the best first-pass peak (``getDcorr.m``)."""


@dataclass
class DecorrelationCurve:
    """One decorrelation curve d(r) and its peak."""

    g: float | None
    """High-pass parameter of ``1 - exp(-2 g^2 k^2)`` (k normalised); ``None`` for d0."""
    radii: np.ndarray
    d: np.ndarray
    kc: float
    """Peak position r_i, normalised frequency (1 = Nyquist), before the amplitude threshold."""
    amplitude: float
    """Peak height A_i."""
    refined: bool
    """Whether the curve belongs to the second (refined) pass."""
    counted: bool
    """Whether its peak enters the final maximum (``getDcorr.m`` overwrites the last first-pass one)."""


@dataclass
class DecorrelationResult:
    """Everything the analysis found; ``resolution`` is ``nan`` when it is undefined (see ``reason``)."""

    resolution: float
    """2 * pixel_size / kc, in the unit of ``pixel_size``."""
    kc: float
    """Cut-off frequency k_c (``kcMax`` of ``getDcorr.m``), normalised so that 1 is Nyquist."""
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
    when there is no significant peak (a constant image; a capture so noisy and sparse that
    every curve rises to the end).
    ``apodization`` is the width in pixels of ``apodImRect``'s edge taper (0: none).
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
    if n_radii < 30 or n_filters < 5:
        raise ValueError(
            f"need n_radii >= 30 and n_filters >= 5, got {n_radii} and {n_filters} "
            "(getDcorr.m raises smaller values to these); the reference defaults are 50 and 10."
        )
    if apodization < 0:
        raise ValueError(f"apodization is a width in pixels (0: none), got {apodization}.")
    if min(array.shape) < 8:
        raise ValueError(
            f"image of shape {array.shape} is too small for a decorrelation analysis; "
            "use at least 8 x 8 pixels (the paper scores 256 x 256 patches)."
        )
    if array.std() == 0.0:
        return _undefined(pixel_size, "the image is constant (it has no spectrum to analyse)")

    image = apodize_rect(array, apodization).astype(np.float32).astype(np.float64)
    rows, cols = (n - 1 + n % 2 for n in image.shape)  # getDcorr.m: odd number of pixels
    image = image[:rows, :cols]
    spectrum = _Spectrum(image)

    radii = np.linspace(0.0, 1.0, n_radii)
    d0 = spectrum.curve(None, radii)
    kc0, amplitude0 = _local_max(radii, d0)
    curves = [DecorrelationCurve(None, radii, d0, kc0, amplitude0, False, True)]

    g_max = 2.0 / kc0 if kc0 > 0 else max(image.shape) / 2.0
    logspace = np.exp(np.linspace(np.log(g_max), np.log(STRONGEST_G), n_filters))
    gs = np.concatenate([[rows / 4.0], logspace])
    for g in gs:
        d = spectrum.curve(g, radii)
        curves.append(DecorrelationCurve(float(g), radii, d, *_local_max(radii, d), False, True))

    # getDcorr.m: refine around the last curve with the highest peak position, d0 included.
    first_kc = np.array([c.kc for c in curves])
    best = int(np.flatnonzero(first_kc == first_kc.max())[-1])
    if best == 0:
        g1, g2 = float(rows), gs[0]
    elif best + 1 >= len(gs):  # one of the two strongest filters
        g1, g2 = gs[best - 2], gs[best - 1]
    else:  # its own g and the next stronger one
        g1, g2 = gs[best - 1], gs[best]
    refined_gs = np.exp(np.linspace(np.log(g1), np.log(g2), n_filters))
    low = max(first_kc[best] - (radii[1] - radii[0]), 0.0)
    high = min(first_kc[best] + REFINE_ABOVE, 1.0, radii[-1])
    refined_radii = np.linspace(low, high, n_radii)
    curves[-1].counted = False  # its column is overwritten by the first refined curve
    for g in refined_gs:
        d = spectrum.curve(g, refined_radii)
        peak = _local_max(refined_radii, d)
        curves.append(DecorrelationCurve(float(g), refined_radii, d, *peak, True, True))

    significant = [c.kc for c in curves if c.counted and c.amplitude >= MIN_PEAK_AMPLITUDE]
    kc = max(significant, default=0.0)
    if kc <= 0:
        result = _undefined(
            pixel_size,
            f"no decorrelation curve has a peak of amplitude >= {MIN_PEAK_AMPLITUDE} "
            "(no detectable structure above the noise)",
        )
        result.amplitude, result.curves = amplitude0, curves
        return result
    return DecorrelationResult(2.0 * pixel_size / kc, kc, amplitude0, pixel_size, curves)


class _Spectrum:
    """|I(k)| on getDcorr's normalised grid, sorted by radius, for the cumulative sums of Eq. 12."""

    def __init__(self, image: np.ndarray):
        rows, cols = image.shape
        y = np.linspace(-1.0, 1.0, rows)[:, None]
        x = np.linspace(-1.0, 1.0, cols)[None, :]
        radius_squared = np.sqrt(x**2 + y**2) ** 2  # as getDcorr.m: R = sqrt(X.^2 + Y.^2); R.^2
        magnitude = np.abs(np.fft.fftshift(np.fft.fft2(image)))  # fftshift puts k = 0 at (N-1)/2
        inside = radius_squared < 1.0
        order = np.argsort(radius_squared[inside], kind="stable")
        self.radius_squared = radius_squared[inside][order]
        self.magnitude = magnitude[inside][order]
        self.count = np.cumsum(self.magnitude > 0)  # sum of |I_n|^2 = number of nonzero I

    def curve(self, g: float | None, radii: np.ndarray) -> np.ndarray:
        """d(r) of Eq. 12 (floored to 0.001) for the high-pass ``g`` (``None``: unfiltered)."""
        weighted = self.magnitude
        if g is not None:
            weighted = weighted * (1.0 - np.exp(-2.0 * g * g * self.radius_squared))
        norm = np.sqrt(np.sum(weighted**2))
        correlation = np.cumsum(weighted)
        inside_disc = np.searchsorted(self.radius_squared, radii**2, side="left")  # |k|^2 < r^2
        d = np.zeros(len(radii))
        has = inside_disc > 0
        last = inside_disc[has] - 1
        with np.errstate(invalid="ignore", divide="ignore"):
            value = correlation[last] / (norm * np.sqrt(self.count[last]))
        d[has] = np.floor(1000.0 * value) / 1000.0  # getCorrcoef.m
        return np.nan_to_num(d, nan=0.0, posinf=0.0, neginf=0.0)


def _local_max(radii: np.ndarray, d: np.ndarray) -> tuple[float, float]:
    """Peak position and height of d(r) as ``getDcorrLocalMax.m`` finds them."""
    end = len(d)
    index = int(np.argmax(d[:end]))
    while end > 1:
        if index == end - 1:
            end -= 1
            index = int(np.argmax(d[:end]))
        elif index == 0 or d[index] - d[index:end].min() >= PEAK_MARGIN:
            break
        else:
            end -= 1
            index = int(np.argmax(d[:end]))
    return float(radii[index]), float(d[index])


def apodize_rect(image: np.ndarray, width: int) -> np.ndarray:
    """Edge apodisation of ``apodImRect.m``: a half-sine taper over ``width`` pixels towards the mean.

    Along each axis the ``width`` outermost positions of ``linspace(-N/2, N/2, N)`` rise from 0 to 1
    as ``(1 + sin(t)) / 2``, ``t`` mapped linearly onto [-pi/2, pi/2]; the 2-D mask is the product
    of the two 1-D ones, and the result is ``(image - mean) * mask + mean``.
    """
    if width <= 0:
        return image
    rows, cols = image.shape
    mask = _taper(rows, width)[:, None] * _taper(cols, width)[None, :]
    mean = image.mean()
    return (image - mean) * mask + mean


def _taper(n: int, width: int) -> np.ndarray:
    distance = np.abs(np.linspace(-n / 2, n / 2, n))
    edge = distance > n / 2 - width
    t = np.where(edge, -distance + distance[edge].mean(), 0.0)
    t = (t - t.min()) / (t.max() - t.min()) * np.pi - np.pi / 2  # linmap(t, -pi/2, pi/2)
    t[~edge] = np.pi / 2
    return (np.sin(t) + 1.0) / 2.0


def _undefined(pixel_size: float, reason: str) -> DecorrelationResult:
    return DecorrelationResult(float("nan"), 0.0, 0.0, pixel_size, [], reason)
