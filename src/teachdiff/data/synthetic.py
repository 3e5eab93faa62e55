"""A synthetic fluorescence microscope: paired (low-quality x, high-quality y) images offline.

Every chapter, test and CI run needs realistic image pairs without the internet. This module
simulates the four cases of the paper (§3.1, Table S2) from first principles:

1. **structure** ``s(r)`` — a noise-free fluorophore density on the pixel grid (filaments,
   hollow mitochondria, synaptic puncta, membrane-labelled tissue), scaled so that its image
   through the target PSF peaks at about 1;
2. **optics** — blur by a Gaussian point-spread function, ``(h * s)(r)``, plus a uniform
   background ``b`` (out-of-focus light, autofluorescence);
3. **photon counting** — the detected photon number is Poisson distributed around the dose
   ``D`` (expected photons at the brightest structure):

       N(r) ~ Poisson(lambda(r)),   lambda(r) = D * ((h * s)(r) + b);

4. **detector** — gain ``g`` (ADU per photon), offset ``o`` and Gaussian read noise ``sigma_r``,
   then rounding and clipping to the ``2^B - 1`` levels of a B-bit image:

       v(r) = clip(round(g N(r) + o + sigma_r xi(r)), 0, 2^B - 1),   xi ~ N(0, 1).

   Before quantisation this is the Poisson-Gaussian model of fluorescence noise
   (Foi et al. 2008; Zhang et al. 2019 for the FMD data):

       E[v] = g lambda + o,   Var[v] = g (E[v] - o) + sigma_r^2   (+ 1/12 from rounding).

The cases differ in what separates x from y:

* ``microtubules`` and ``mitochondria`` (STED): same PSF (the depletion power was kept
  constant, paper §3.1.1), low vs high light dose with the same detector gain, so the
  low-dose image uses only a few grey levels — as the paper notes for its STED data;
* ``synapses`` (confocal -> Airyscan): a wider PSF *and* a lower dose for x;
* ``zebrafish`` (FMD): x is a single capture, y the average of 50 captures of the same
  field. A sum of independent Poisson variables is Poisson, so the 50-capture sum is drawn
  as ``Poisson(50 lambda)`` and the summed read noise as ``N(0, 50 sigma_r^2)``; only the
  rounding of each capture before averaging is not reproduced (its variance, 1/12 per
  capture, is negligible after averaging).

Everything is vectorised NumPy/SciPy and deterministic given the seed: a 256 x 256 pair takes
a few milliseconds (see ``benchmarks/bench_data.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
import numpy as np
from teachdiff.data.registry import CASES

__all__ = ["MicroscopeConfig", "microscope_config", "SyntheticPair", "simulate_structure", "simulate_detection", "simulate_pair", "simulate_captures", "simulate_synapse_stack", "make_synthetic_dataset"]


# Structures are generated on a canvas larger than the image by this many PSF widths, so
# that structure just outside the field of view blurs into it as it would in a microscope.
_CANVAS_MARGIN_SIGMAS = 4.0
# Reference area for structure densities: counts below are "per 256 x 256 pixels".
_REFERENCE_AREA = 256 * 256


@dataclass(frozen=True)
class MicroscopeConfig:
    """Optics, dose and detector of one simulated case (8-bit detector units).

    Doses are expected photons at the brightest structure pixel; ``gain``, ``offset`` and
    ``read_noise`` are in ADU of an 8-bit image and are multiplied by ``2^(B-8)`` for a B-bit
    image, so a 16-bit simulation is the same picture with finer grey levels.
    """

    case: str
    psf_sigma_x: float  # Gaussian PSF standard deviation of the input, pixels
    psf_sigma_y: float  # ... of the target
    dose_x: float  # expected photons at peak structure, input (per capture)
    dose_y: float  # ... target (per capture)
    captures_y: int = 1  # the target is the mean of this many captures (FMD: 50)
    background: float = 0.03  # uniform background, in units of the peak structure signal
    gain: float = 3.0  # ADU per photon
    offset: float = 2.0  # ADU
    read_noise: float = 1.0  # ADU (standard deviation)


_DEFAULTS = {
    # STED, 25 nm pixels: ~60 nm FWHM PSF, sigma ~ 1 px. Low dose: a handful of photons.
    "microtubules": MicroscopeConfig(
        "microtubules", psf_sigma_x=1.0, psf_sigma_y=1.0, dose_x=4.0, dose_y=60.0,
        background=0.03, gain=3.0, offset=2.0, read_noise=1.0,
    ),
    # Live STED, 20 nm pixels: hollow outer-membrane (TOM20) tubules.
    "mitochondria": MicroscopeConfig(
        "mitochondria", psf_sigma_x=1.3, psf_sigma_y=1.3, dose_x=5.0, dose_y=50.0,
        background=0.05, gain=3.5, offset=2.0, read_noise=1.0,
    ),
    # Confocal input (wider PSF, fewer photons) -> Airyscan target (~1.7x sharper).
    "synapses": MicroscopeConfig(
        "synapses", psf_sigma_x=2.6, psf_sigma_y=1.5, dose_x=25.0, dose_y=80.0,
        background=0.05, gain=2.5, offset=3.0, read_noise=1.5,
    ),
    # FMD Confocal_FISH: one capture vs the mean of 50 captures of the same field.
    "zebrafish": MicroscopeConfig(
        "zebrafish", psf_sigma_x=1.5, psf_sigma_y=1.5, dose_x=12.0, dose_y=12.0,
        captures_y=50, background=0.08, gain=10.0, offset=4.0, read_noise=2.0,
    ),
}


def microscope_config(case: str, **overrides) -> MicroscopeConfig:
    """The default :class:`MicroscopeConfig` of ``case``, with any field replaced by ``overrides``."""
    _check_case(case)
    try:
        return dataclasses.replace(_DEFAULTS[case], **overrides)
    except TypeError as err:
        fields = ", ".join(f.name for f in dataclasses.fields(MicroscopeConfig) if f.name != "case")
        raise ValueError(f"unknown microscope setting ({err}); valid settings are: {fields}") from None


@dataclass
class SyntheticPair:
    """One simulated field of view.

    ``x`` and ``y`` are what a microscope would save (uint8 or uint16, shape (H, W));
    ``structure`` is the clean fluorophore density before the PSF; ``expected_x`` and
    ``expected_y`` are the noise-free means ``E[v]`` in ADU (before rounding and clipping),
    i.e. what infinitely many captures would average to.
    """

    x: np.ndarray
    y: np.ndarray
    structure: np.ndarray
    expected_x: np.ndarray
    expected_y: np.ndarray
    config: MicroscopeConfig
    bit_depth: int
    seed: int

    @property
    def case(self) -> str:
        return self.config.case


def _check_case(case: str) -> None:
    if case not in CASES:
        raise ValueError(f"unknown synthetic case {case!r}; choose one of {', '.join(CASES)}")


def _shape(size: int | tuple[int, int]) -> tuple[int, int]:
    shape = (size, size) if np.isscalar(size) else tuple(size)
    if len(shape) != 2 or any(int(s) != s or s < 8 for s in shape):
        raise ValueError(f"size must be an int or (height, width) of at least 8 pixels, got {size!r}")
    return int(shape[0]), int(shape[1])


# ----------------------------------------------------------------------------- structures


def _splat(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear splatting of weighted points onto a grid (sub-pixel positions, no aliasing)."""
    H, W = shape
    r0, c0 = np.floor(rows), np.floor(cols)
    fr, fc = rows - r0, cols - c0
    r0, c0 = r0.astype(np.int64), c0.astype(np.int64)
    out = np.zeros(H * W, dtype=np.float64)
    for dr, dc, w in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        r, c = r0 + dr, c0 + dc
        inside = (r >= 0) & (r < H) & (c >= 0) & (c < W)
        out += np.bincount((r * W + c)[inside], weights=(weights * w)[inside], minlength=H * W)
    return out.reshape(H, W)


def _curves(rng: np.random.Generator, n: int, n_steps: int, shape: tuple[int, int], step: float, bending: float):
    """``n`` smooth random curves (persistent random walks): rows, cols of shape (n, n_steps)."""
    H, W = shape
    start_r = rng.uniform(0, H, size=(n, 1))
    start_c = rng.uniform(0, W, size=(n, 1))
    angle = rng.uniform(0, 2 * np.pi, size=(n, 1)) + np.cumsum(rng.normal(0, bending, size=(n, n_steps)), axis=1)
    rows = start_r + np.cumsum(step * np.sin(angle), axis=1)
    cols = start_c + np.cumsum(step * np.cos(angle), axis=1)
    return rows, cols


def _filaments(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Microtubule-like filaments: long, stiff, one pixel wide, crossing each other."""
    H, W = shape
    # Filaments cross the field (up to ~40 um at 25 nm/px); their number keeps the filament
    # length per area constant, so a large FOV looks like many small ones side by side.
    length = min(1.2 * max(H, W), 1600.0)
    n = max(1, rng.poisson(14 * (H * W / _REFERENCE_AREA) * (1.2 * 256 / length)))
    step = 0.5
    n_steps = int(length / step)
    rows, cols = _curves(rng, n, n_steps, shape, step, bending=0.02)
    brightness = rng.uniform(0.5, 1.0, size=(n, 1)) * np.ones((1, n_steps))
    return _splat(rows.ravel(), cols.ravel(), step * brightness.ravel(), shape)


def _mitochondria(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Mitochondria imaged through an outer-membrane label: hollow tubules of varying width."""
    from scipy import ndimage

    H, W = shape
    n = max(1, rng.poisson(7 * H * W / _REFERENCE_AREA))
    step = 1.0
    n_steps = 120
    rows, cols = _curves(rng, n, n_steps, shape, step, bending=0.06)
    # Each tubule has its own length (a prefix of its walk), radius and brightness.
    lengths = rng.integers(25, n_steps, size=n)
    keep = np.arange(n_steps)[None, :] < lengths[:, None]
    centreline = np.zeros(shape, dtype=np.int32)
    r = np.round(rows[keep]).astype(np.int64)
    c = np.round(cols[keep]).astype(np.int64)
    ids = np.repeat(np.arange(1, n + 1), lengths)
    inside = (r >= 0) & (r < H) & (c >= 0) & (c < W)
    centreline[r[inside], c[inside]] = ids[inside]
    if not centreline.any():
        return np.zeros(shape)
    distance, (ir, ic) = ndimage.distance_transform_edt(centreline == 0, return_indices=True)
    owner = centreline[ir, ic] - 1
    radius = rng.uniform(5.0, 9.0, size=n)[owner]
    brightness = rng.uniform(0.5, 1.0, size=n)[owner]
    membrane = np.exp(-0.5 * ((distance - radius) / 1.2) ** 2)
    matrix = 0.15 * (distance < radius)
    return brightness * (membrane + matrix)


def _puncta(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Synapse-like puncta: many sub-resolution to small spots of very different brightness."""
    from scipy import ndimage

    H, W = shape
    out = np.zeros(shape)
    for sigma, density in ((0.7, 90), (1.2, 50), (2.0, 15)):
        n = rng.poisson(density * H * W / _REFERENCE_AREA)
        amplitude = rng.lognormal(0.0, 0.6, size=n) * 2 * np.pi * sigma**2
        spots = _splat(rng.uniform(0, H, n), rng.uniform(0, W, n), amplitude, shape)
        out += ndimage.gaussian_filter(spots, sigma)
    neuropil = ndimage.gaussian_filter(rng.normal(size=shape), 6.0)
    out += 0.1 * np.clip(neuropil / (neuropil.std() + 1e-12), 0, None)
    return out


def _tissue(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Membrane-labelled embryonic tissue (sox10:mEGFP): cell outlines of a Voronoi tiling."""
    H, W = shape
    cell = 14.0  # mean cell diameter, pixels
    # Voronoi tiling with one jittered seed per grid cell: a pixel's nearest seed lies in its
    # own grid cell or one of the 8 around it, so 9 candidate distances per pixel suffice.
    n_r, n_c = int(np.ceil(H / cell)) + 2, int(np.ceil(W / cell)) + 2
    jitter = rng.uniform(-0.45, 0.45, size=(n_r, n_c, 2)) * cell
    seed_r = (np.arange(n_r)[:, None] - 0.5) * cell + jitter[..., 0]
    seed_c = (np.arange(n_c)[None, :] - 0.5) * cell + jitter[..., 1]
    rows, cols = np.arange(H)[:, None], np.arange(W)[None, :]
    home_r, home_c = (rows // cell).astype(np.int64) + 1, (cols // cell).astype(np.int64) + 1
    best = np.full(shape, np.inf)
    label = np.zeros(shape, dtype=np.int64)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            gr, gc = np.broadcast_arrays(home_r + dr, home_c + dc)
            d2 = (rows - seed_r[gr, gc]) ** 2 + (cols - seed_c[gr, gc]) ** 2
            closer = d2 < best
            best = np.where(closer, d2, best)
            label = np.where(closer, gr * n_c + gc, label)
    cell_brightness = rng.uniform(0.3, 1.0, size=n_r * n_c)
    membrane = np.zeros(shape)
    edge_r = label[1:, :] != label[:-1, :]
    edge_c = label[:, 1:] != label[:, :-1]
    bright = cell_brightness[label]
    membrane[1:, :] = np.maximum(membrane[1:, :], edge_r * np.maximum(bright[1:, :], bright[:-1, :]))
    membrane[:, 1:] = np.maximum(membrane[:, 1:], edge_c * np.maximum(bright[:, 1:], bright[:, :-1]))
    # Expression varies smoothly across the tissue, and part of a field is often empty.
    field = _smooth_field(rng, shape, max(H, W) / 10)
    expression = np.clip(0.6 + 0.4 * field, 0.0, 1.0)
    cytoplasm = 0.12 * bright
    return expression * (membrane + cytoplasm)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with correlation length ~``sigma`` pixels.

    Drawn on a grid 8x coarser and interpolated up: the same look as filtering full-size
    noise with a wide Gaussian, at a fraction of the cost.
    """
    from scipy import ndimage

    H, W = shape
    coarse = rng.normal(size=(H // 8 + 3, W // 8 + 3))
    coarse = ndimage.gaussian_filter(coarse, sigma / 8, mode="wrap")
    field = ndimage.zoom(coarse, 8, order=1)[:H, :W]
    return (field - field.mean()) / (field.std() + 1e-12)


_STRUCTURES = {
    "microtubules": _filaments,
    "mitochondria": _mitochondria,
    "synapses": _puncta,
    "zebrafish": _tissue,
}


def simulate_structure(case: str, size: int | tuple[int, int] = 256, seed: int = 0) -> np.ndarray:
    """The clean fluorophore density of ``case`` (float32, shape (H, W), no PSF, no noise)."""
    _check_case(case)
    return _STRUCTURES[case](np.random.default_rng(seed), _shape(size)).astype(np.float32)


# ----------------------------------------------------------------------------- detection


def simulate_detection(
    photons: np.ndarray,
    rng: np.random.Generator,
    *,
    gain: float,
    offset: float,
    read_noise: float,
    bit_depth: int = 8,
    captures: int = 1,
) -> np.ndarray:
    """Detect an expected photon image: Poisson counts, gain, offset, read noise, quantisation.

    With ``captures > 1`` the result is the mean of that many independent captures, drawn
    exactly for the Poisson part as one ``Poisson(captures * lambda)`` (sums of independent
    Poisson variables are Poisson).
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    counts = rng.poisson(captures * np.asarray(photons, dtype=np.float64))
    read = rng.normal(0.0, read_noise * np.sqrt(captures), size=counts.shape)
    adu = (gain * counts + read) / captures + offset
    top = 2**bit_depth - 1
    return np.clip(np.rint(adu), 0, top).astype(np.uint8 if bit_depth == 8 else np.uint16)


def simulate_pair(
    case: str,
    size: int | tuple[int, int] = 256,
    seed: int = 0,
    bit_depth: int = 8,
    *,
    dose_x: float | None = None,
    dose_y: float | None = None,
    config: MicroscopeConfig | None = None,
) -> SyntheticPair:
    """Simulate one (low-quality x, high-quality y) pair of ``case``; deterministic in ``seed``.

    ``dose_x``/``dose_y`` override the doses of the case's default :class:`MicroscopeConfig`
    (or of ``config`` when given): expected photons at the brightest structure, per capture.
    """
    from scipy import ndimage

    _check_case(case)
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    cfg = config if config is not None else microscope_config(case)
    if cfg.case != case:
        raise ValueError(f"config is for case {cfg.case!r} but case is {case!r}")
    cfg = dataclasses.replace(
        cfg,
        dose_x=cfg.dose_x if dose_x is None else float(dose_x),
        dose_y=cfg.dose_y if dose_y is None else float(dose_y),
    )
    if cfg.dose_x <= 0 or cfg.dose_y <= 0:
        raise ValueError(f"doses must be positive photon numbers, got dose_x={cfg.dose_x}, dose_y={cfg.dose_y}")
    H, W = _shape(size)
    rng = np.random.default_rng(seed)

    margin = int(np.ceil(_CANVAS_MARGIN_SIGMAS * max(cfg.psf_sigma_x, cfg.psf_sigma_y)))
    canvas = _STRUCTURES[case](rng, (H + 2 * margin, W + 2 * margin))
    inner = (slice(margin, margin + H), slice(margin, margin + W))
    blurred_y = ndimage.gaussian_filter(canvas, cfg.psf_sigma_y)
    # Normalise so the target image of the structure peaks at ~1: doses are then photons at peak.
    peak = np.percentile(blurred_y[inner], 99.9)
    scale = 1.0 / peak if peak > 0 else 1.0
    structure = canvas * scale
    blurred_y = blurred_y * scale
    blurred_x = blurred_y if cfg.psf_sigma_x == cfg.psf_sigma_y else ndimage.gaussian_filter(structure, cfg.psf_sigma_x)

    units = 2.0 ** (bit_depth - 8)
    gain, offset, read_noise = cfg.gain * units, cfg.offset * units, cfg.read_noise * units
    photons_x = cfg.dose_x * (blurred_x[inner] + cfg.background)
    photons_y = cfg.dose_y * (blurred_y[inner] + cfg.background)
    detect = dict(gain=gain, offset=offset, read_noise=read_noise, bit_depth=bit_depth)
    x = simulate_detection(photons_x, rng, **detect)
    y = simulate_detection(photons_y, rng, captures=cfg.captures_y, **detect)
    return SyntheticPair(
        x=x,
        y=y,
        structure=structure[inner].astype(np.float32),
        expected_x=(gain * photons_x + offset).astype(np.float32),
        expected_y=(gain * photons_y + offset).astype(np.float32),
        config=cfg,
        bit_depth=bit_depth,
        seed=seed,
    )


def fov_seed(seed: int, *keys: int) -> int:
    """A well-mixed 32-bit seed for one field of view, derived from ``seed`` and integer keys."""
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0])


def simulate_captures(pair: SyntheticPair, n: int, seed: int) -> list[np.ndarray]:
    """``n`` more independent input captures of the field of ``pair``: the same expected image
    ``E[v] = g lambda + o`` (``pair.expected_x``), fresh photon and read noise (deterministic in ``seed``)."""
    cfg, units = pair.config, 2.0 ** (pair.bit_depth - 8)
    gain, offset = cfg.gain * units, cfg.offset * units
    photons = np.clip((pair.expected_x.astype(np.float64) - offset) / gain, 0, None)
    rng = np.random.default_rng(seed)
    return [simulate_detection(photons, rng, gain=gain, offset=offset, read_noise=cfg.read_noise * units,
                               bit_depth=pair.bit_depth) for _ in range(n)]


def simulate_synapse_stack(
    size: int | tuple[int, int] = (64, 96),
    n_slices: int = 10,
    seed: int = 0,
    z_step: float = 2.0,
    axial_sigma: float = 2.5,
    config: MicroscopeConfig | None = None,
) -> SyntheticPair:
    """A z-stack of the ``synapses`` case: ``x`` and ``y`` of shape (n_slices, H, W), uint8.

    The puncta of :func:`simulate_structure` ("synapses") are placed in a volume, slices
    ``z_step`` pixels apart (lengths in lateral pixels); each spot is a 3-D Gaussian of its lateral
    size, the neuropil a smooth 3-D field. Both images are blurred by the case's lateral PSFs and
    by one axial Gaussian of ``axial_sigma`` pixels, the same for x and y, so that every slice
    looks like the 2-D pairs the models were trained on (the real confocal and Airyscan stacks
    also differ along z; this stand-in does not model that). Doses, background and detector are
    those of the 2-D case, and the stack is normalised like a 2-D pair (target peak about 1).
    """
    cfg = config if config is not None else microscope_config("synapses")
    from scipy import ndimage

    H, W = _shape(size)
    if n_slices < 2 or z_step <= 0 or axial_sigma <= 0:
        raise ValueError(f"a stack needs n_slices >= 2 and positive z_step and axial_sigma, got {n_slices}, "
                         f"{z_step}, {axial_sigma}")
    rng = np.random.default_rng(seed)
    margin = int(np.ceil(_CANVAS_MARGIN_SIGMAS * max(cfg.psf_sigma_x, cfg.psf_sigma_y)))
    margin_z = int(np.ceil(_CANVAS_MARGIN_SIGMAS * axial_sigma / z_step))
    shape = (n_slices + 2 * margin_z, H + 2 * margin, W + 2 * margin)
    depth = shape[0] * z_step
    canvas = np.zeros(shape)
    # The 2-D case's spot sizes and densities per 256 x 256 pixels, spread over a volume: a slab
    # of 6 pixels holds as many spots as one 2-D image, so a slice shows a similar number in focus.
    # The axial blur spreads a spot of size sigma over sqrt(sigma^2 + axial_sigma^2) along z; its
    # amplitude is raised by that ratio, so an in-focus spot peaks as in the 2-D case.
    for sigma, density in ((0.7, 90), (1.2, 50), (2.0, 15)):
        n = rng.poisson(density * shape[1] * shape[2] / _REFERENCE_AREA * depth / 6.0)
        spots = np.zeros(shape)
        z = np.minimum((rng.uniform(0, depth, n) / z_step).astype(np.int64), shape[0] - 1)
        in_focus = np.hypot(sigma, axial_sigma) / sigma
        np.add.at(spots, (z, rng.integers(0, shape[1], n), rng.integers(0, shape[2], n)),
                  rng.lognormal(0.0, 0.6, size=n) * (2 * np.pi) ** 1.5 * sigma**3 / z_step * in_focus)
        canvas += ndimage.gaussian_filter(spots, (sigma / z_step, sigma, sigma))
    neuropil = ndimage.gaussian_filter(rng.normal(size=shape), (6.0 / z_step, 6.0, 6.0))
    canvas += 0.1 * np.clip(neuropil / (neuropil.std() + 1e-12), 0, None)
    inner = (slice(margin_z, margin_z + n_slices), slice(margin, margin + H), slice(margin, margin + W))
    axial = axial_sigma / z_step
    blurred_y = ndimage.gaussian_filter(canvas, (axial, cfg.psf_sigma_y, cfg.psf_sigma_y))
    blurred_x = ndimage.gaussian_filter(canvas, (axial, cfg.psf_sigma_x, cfg.psf_sigma_x))
    peak = np.percentile(blurred_y[inner], 99.9)
    scale = 1.0 / peak if peak > 0 else 1.0
    detect = dict(gain=cfg.gain, offset=cfg.offset, read_noise=cfg.read_noise, bit_depth=8)
    photons_x = cfg.dose_x * (blurred_x[inner] * scale + cfg.background)
    photons_y = cfg.dose_y * (blurred_y[inner] * scale + cfg.background)
    return SyntheticPair(
        x=simulate_detection(photons_x, rng, **detect),
        y=simulate_detection(photons_y, rng, **detect),
        structure=(canvas[inner] * scale).astype(np.float32),
        expected_x=(cfg.gain * photons_x + cfg.offset).astype(np.float32),
        expected_y=(cfg.gain * photons_y + cfg.offset).astype(np.float32),
        config=cfg,
        bit_depth=8,
        seed=seed,
    )


def _fov_names(case: str, n_fov: int) -> list[tuple[str, int]]:
    """(name, seed key) of the FOVs written for ``case``: the FOVs a dataset with a fixed split
    (zebrafish: 19 = test, 20 = val) always included, numbered like the paper's data; otherwise
    ``fov_000``, ``fov_001``, ..."""
    from teachdiff.data.registry import PAPER_DATASETS

    fixed = [name for names in PAPER_DATASETS[case].fixed_split.values() for name in names]
    if not fixed:
        return [(f"fov_{i:03d}", i) for i in range(n_fov)]
    numbers = [int(name) for name in fixed]
    others = [k for k in range(1, n_fov + len(fixed) + 1) if k not in numbers][: n_fov - len(fixed)]
    return [(str(k), k) for k in sorted(others + numbers)]


def make_synthetic_dataset(
    case: str,
    n_fov: int = 8,
    fov_size: int | tuple[int, int] = 512,
    seed: int = 0,
    bit_depth: int | None = None,
    out_dir: str | Path | None = None,
    captures: int = 5,
) -> list[SyntheticPair]:
    """Simulate ``n_fov`` independent fields of view; optionally write them in the paper's layout.

    ``bit_depth`` defaults to that of the paper's dataset ``case`` (16 for synapses, else 8).
    With ``out_dir`` the pairs are written in the folder layout of the registered dataset
    ``case``, so ``teachdiff data check OUT --dataset CASE`` and ``teachdiff train --dataset CASE
    --data-root OUT`` accept the folder as they would the real data (at a smaller size):

    * microtubules, mitochondria, synapses: ``OUT/raw/fov_000.tif`` (input x) and
      ``OUT/gt/fov_000.tif`` (target y), one file per FOV;
    * zebrafish (FMD Confocal_FISH): ``OUT/raw/<fov>/capture_01.png`` ... (``captures``
      independent single captures) and ``OUT/gt/<fov>/avg50.png`` (the mean of 50), with FOVs
      numbered as in FMD and always including 19 (test) and 20 (validation).

    A dataset is split by FOV into train/val/test, so a written one needs at least 3 FOVs.
    Existing files are never overwritten. Returns one pair per FOV (its first capture as ``x``).
    """
    if n_fov < 1:
        raise ValueError(f"n_fov must be at least 1, got {n_fov}")
    _check_case(case)
    if bit_depth is None:
        from teachdiff.data.registry import PAPER_DATASETS

        bit_depth = PAPER_DATASETS[case].bit_depth
    if out_dir is None:
        return [simulate_pair(case, fov_size, fov_seed(seed, i), bit_depth) for i in range(n_fov)]

    from teachdiff.data.io import write_image

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; give the name of a folder (new or empty) for the simulated data.")
    if n_fov < 3:
        raise ValueError(f"a dataset folder needs at least 3 FOVs (it is split by FOV into train/val/test), "
                         f"got n_fov={n_fov}")
    if captures < 1:
        raise ValueError(f"captures must be at least 1, got {captures}")
    names = _fov_names(case, n_fov)
    per_capture = case == "zebrafish"
    if per_capture:
        targets = [out / "gt" / name / "avg50.png" for name, _ in names] + [
            out / "raw" / name / f"capture_{c:02d}.png" for name, _ in names for c in range(1, captures + 1)]
    else:
        targets = [out / folder / f"{name}.tif" for name, _ in names for folder in ("raw", "gt")]
    existing = [str(p) for p in targets if p.exists()]
    if existing:
        raise FileExistsError(
            f"{len(existing)} file(s) already exist, e.g. {existing[0]}; nothing was written. "
            "Choose an empty out_dir or delete the old files first."
        )
    pairs = []
    for name, key in names:
        pair = simulate_pair(case, fov_size, fov_seed(seed, key), bit_depth)
        pairs.append(pair)
        if per_capture:
            write_image(out / "gt" / name / "avg50.png", pair.y)
            inputs = [pair.x] + simulate_captures(pair, captures - 1, fov_seed(seed, key, 1))
            for c, x in enumerate(inputs, start=1):
                write_image(out / "raw" / name / f"capture_{c:02d}.png", x)
        else:
            write_image(out / "raw" / f"{name}.tif", pair.x)
            write_image(out / "gt" / f"{name}.tif", pair.y)
    return pairs
