"""Your own microscope: a folder of (input, target) image pairs as a dataset.

Point ``teachdiff train --data PATH`` (or :func:`make_folder_datasets`) at a folder in one of
these layouts; the layout is detected from what is there:

1. **one file per FOV** — ``PATH/raw/<name>.tif`` with ``PATH/gt/<name>.tif`` (same name,
   the extension may differ): every name is one field of view (FOV);
2. **per-FOV subfolders** — ``PATH/raw/<fov>/<name>.tif`` with ``PATH/gt/<fov>/<name>.tif``:
   several images (positions, time points) of one FOV, paired by name;
3. **repeated captures (FMD style)** — ``PATH/raw/<fov>/*.png`` with a single target
   ``PATH/gt/<fov>/<any name>.png``: every capture is paired with the same target.

Optionally ``PATH/{train,val,test}/raw|gt`` fixes the split yourself. Files are PNG or TIFF,
8- or 16-bit grayscale, 2-D or z-stacks (paired slice by slice). Pairing, registration,
patches and the split by FOV are those of :mod:`teachdiff.data.prepare`; all patches, slices
and captures of a FOV land in one split (shuffled with a fixed seed, 80/10/10 by default).

**Normalisation** (how intensities reach the network's ``[-1, 1]``) is a :class:`Normalization`,
measured on the training split and saved in every checkpoint, so ``teachdiff restore`` applies
exactly the same mapping to new images and maps the result back to their intensity scale:

* ``bitdepth`` (default, the paper): ``x_model = 2 x / (2^B - 1) - 1`` with ``B`` the bit
  depth. Cameras often write 12-bit values into 16-bit files; then pass ``bit_depth=12``
  (``--bit-depth 12``): scaled as 16-bit such images are 16x too dark for the network.
  :func:`bit_depth_warning` detects a used range far below the container's;
* ``percentile`` (CSBDeep's ``normalize``, whose defaults ``pmin=3``, ``pmax=99.8`` we keep):
  the ``pmin``-th and ``pmax``-th percentiles of the training inputs map to -1 and +1, those
  of the training targets likewise, ``x_model = 2 (x - p_lo) / (p_hi - p_lo) - 1``. Unlike
  CSBDeep's prediction code, which measures percentiles again on every new image, the
  training set's values are reused: the same input intensity always means the same thing
  (CSBDeep issue #47).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from teachdiff.data.io import bit_depth_of
from teachdiff.data.prepare import PatchSet, prepare_dataset
from teachdiff.core.scale import from_model_range, to_model_range
from teachdiff.data.registry import PAIRED_FOLDER_LAYOUT, DatasetInfo

__all__ = [
    "FolderConfig",
    "Normalization",
    "IntensityStats",
    "NORMALIZATIONS",
    "folder_info",
    "prepare_folder",
    "intensity_stats",
    "fit_normalization",
    "make_folder_datasets",
    "bit_depth_warning",
    "camera_bit_depth",
    "restore_normalization",
]

NORMALIZATIONS = ("bitdepth", "percentile")
# Bit depths of common scientific cameras, tried when a 16-bit file uses only part of its range
# (12 before 10: a dim 12-bit image often stays below 1024, and 12-bit cameras are the common case).
CAMERA_BIT_DEPTHS = (12, 14)
# Pixels sampled per split for intensity statistics: enough for stable 0.1 % percentiles.
_MAX_STAT_PIXELS = 4_000_000
_MAX_STAT_FILES = 64
REPORTED_PERCENTILES = (0.0, 1.0, 3.0, 50.0, 99.0, 99.8, 100.0)


@dataclass(frozen=True)
class FolderConfig:
    """A folder of image pairs and how to read it (the options of ``teachdiff train --data``).

    ``bit_depth`` None means the files' pixel type (8 or 16); ``split_fractions`` are the
    fractions of FOVs in train/val/test (at least one FOV each); ``pixel_size_nm`` is used by
    the resolution metric (1.0: resolution in pixels).
    """

    path: str
    pixel_size_nm: float = 1.0
    bit_depth: int | None = None
    normalize: str = "bitdepth"
    pmin: float = 3.0
    pmax: float = 99.8
    register: bool = False
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_seed: int = 0

    def __post_init__(self):
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {self.normalize!r}.")
        if self.bit_depth is not None and not 1 <= self.bit_depth <= 16:
            raise ValueError(f"bit depth must be between 1 and 16 (e.g. 12 for a 12-bit camera), got {self.bit_depth}.")
        if not 0 <= self.pmin < self.pmax <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= pmin < pmax <= 100, got pmin={self.pmin}, pmax={self.pmax}.")
        fractions = tuple(float(f) for f in self.split_fractions)
        if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
            raise ValueError(f"split fractions must be three positive numbers (train, val, test) summing to 1, "
                             f"got {self.split_fractions}.")
        object.__setattr__(self, "split_fractions", fractions)
        if not self.pixel_size_nm > 0:
            raise ValueError(f"pixel size must be positive, got {self.pixel_size_nm}.")


def folder_info(config: FolderConfig) -> DatasetInfo:
    """A registry-style :class:`DatasetInfo` for a user folder, so the shared preparation code applies."""
    return DatasetInfo(
        name=str(config.path), title=f"image pairs in {config.path}", modality="raw -> gt (your microscope)",
        source="your own folder", citation="", licence="yours", layout=PAIRED_FOLDER_LAYOUT,
        pixel_size_nm=config.pixel_size_nm, pixel_size_source="--pixel-size", bit_depth=config.bit_depth or 0,
        register=config.register, fractions=config.split_fractions,
    )


def prepare_folder(config: FolderConfig, patch_size: int = 256, progress: bool = True) -> dict[str, PatchSet]:
    """Pairs, registration, patches and FOV splits of a folder (see the module docstring).

    With ``config.bit_depth`` set, the patch sets carry that bit depth instead of the pixel type's.
    """
    path = Path(config.path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--data {path} does not exist. Expected layout:\n{PAIRED_FOLDER_LAYOUT}")
    sets = prepare_dataset(folder_info(config), path, patch_size, split_seed=config.split_seed, progress=progress,
                           register=config.register)
    container = sets["train"].bit_depth
    if config.bit_depth is not None:
        if config.bit_depth > container:
            raise ValueError(f"--bit-depth {config.bit_depth} is more than the {container}-bit files of {path} can "
                             f"hold; use at most {container}.")
        for patch_set in sets.values():
            patch_set.bit_depth = config.bit_depth
    return sets


# ----------------------------------------------------------------------------------------------
# Intensity statistics and the normalisation
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntensityStats:
    """Percentiles (``REPORTED_PERCENTILES`` and pmin/pmax) of sampled input and target pixels."""

    x: dict[float, float]
    y: dict[float, float]
    x_max_file: str  # the file holding the brightest input pixel seen

    @property
    def max_value(self) -> float:
        return max(self.x[100.0], self.y[100.0])


def intensity_stats(patch_set: PatchSet, extra_percentiles: tuple[float, ...] = ()) -> IntensityStats:
    """Percentiles of the inputs and targets of one split, from up to 64 evenly spread files.

    Pixels are subsampled on a regular grid to at most 4 M per split, deterministically.
    """
    if not patch_set.pairs:
        raise ValueError(f"the {patch_set.split or 'given'} split has no image pairs to measure.")
    ks = np.unique(np.linspace(0, len(patch_set.pairs) - 1, min(len(patch_set.pairs), _MAX_STAT_FILES)).round())
    per_file = max(1, _MAX_STAT_PIXELS // len(ks))
    xs, ys, brightest, top = [], [], "", -1.0
    for k in ks.astype(int):
        x, y = patch_set.load_pair(k)
        stride = max(1, int(np.ceil(x.size / per_file)))
        xs.append(x.ravel()[::stride])
        ys.append(y.ravel()[::stride])
        if x.max() > top:
            top, brightest = float(x.max()), str(getattr(patch_set.pairs[k], "x_path", patch_set.pairs[k].name))
    qs = tuple(sorted(set(REPORTED_PERCENTILES + tuple(extra_percentiles))))
    x_all, y_all = np.concatenate(xs).astype(np.float64), np.concatenate(ys).astype(np.float64)
    x_p = dict(zip(qs, (float(v) for v in np.percentile(x_all, qs))))
    y_p = dict(zip(qs, (float(v) for v in np.percentile(y_all, qs))))
    x_p[100.0] = max(x_p[100.0], top)
    return IntensityStats(x=x_p, y=y_p, x_max_file=brightest)


@dataclass(frozen=True)
class Normalization:
    """The intensity mapping between files and the network range ``[-1, 1]`` (module docstring).

    ``mode`` is ``"bitdepth"`` or ``"percentile"``; ``bit_depth`` is the B of the bitdepth
    mapping (also recorded for percentile mode); ``container_bits`` the files' pixel type
    (8 or 16). ``x_low``/``x_high`` are the input intensities mapped to -1/+1, ``y_low``/``y_high``
    those of the target; the restored image is mapped back with the target's values.
    """

    mode: str
    bit_depth: int
    container_bits: int
    x_low: float
    x_high: float
    y_low: float
    y_high: float
    pmin: float | None = None
    pmax: float | None = None

    @classmethod
    def from_bit_depth(cls, bit_depth: int, container_bits: int | None = None) -> "Normalization":
        top = float(2**bit_depth - 1)
        return cls("bitdepth", int(bit_depth), int(container_bits or bit_depth), 0.0, top, 0.0, top)

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        return cls(**d)

    def to_dict(self) -> dict:
        return dict(vars(self))

    def input_to_model(self, image):
        """File intensities of an input (NumPy or torch) -> network range, float32."""
        if self.mode == "bitdepth":
            return to_model_range(image, self.bit_depth)
        return _affine(image, self.x_low, self.x_high)

    def target_to_model(self, image):
        """File intensities of a target -> network range, clipped to [-1, 1] (the DDPM's y0 range)."""
        if self.mode == "bitdepth":
            return to_model_range(image, self.bit_depth)
        out = _affine(image, self.y_low, self.y_high)
        return out.clamp(-1, 1) if hasattr(out, "clamp") else np.clip(out, -1, 1)

    def from_model(self, image):
        """Network range -> the target's intensity scale (clipped to [-1, 1] first), float32."""
        if self.mode == "bitdepth":
            return from_model_range(image, self.bit_depth)
        scale = (self.y_high - self.y_low) / 2.0
        if hasattr(image, "clamp"):
            return (image.float().clamp(-1, 1) + 1.0) * scale + self.y_low
        return ((np.clip(np.asarray(image, dtype=np.float32), -1, 1) + 1.0) * np.float32(scale)
                + np.float32(self.y_low)).astype(np.float32)

    def describe(self) -> str:
        if self.mode == "bitdepth":
            return f"bitdepth: 0..{2**self.bit_depth - 1} ({self.bit_depth}-bit) -> [-1, 1]"
        return (f"percentile ({self.pmin:g}, {self.pmax:g}): input {self.x_low:.6g}..{self.x_high:.6g}, "
                f"target {self.y_low:.6g}..{self.y_high:.6g} -> [-1, 1]")


def _affine(image, low: float, high: float):
    scale = 2.0 / max(high - low, 1e-6)
    if hasattr(image, "float"):
        return (image.float() - low) * scale - 1.0
    return ((np.asarray(image, dtype=np.float32) - np.float32(low)) * np.float32(scale) - 1.0).astype(np.float32)


def fit_normalization(config: FolderConfig, train_set: PatchSet, stats: IntensityStats | None = None) -> Normalization:
    """The normalisation of ``config`` with its statistics measured on the training split."""
    container = getattr(train_set, "container_bits", train_set.bit_depth)
    if config.normalize == "bitdepth":
        return Normalization.from_bit_depth(train_set.bit_depth, container)
    stats = stats or intensity_stats(train_set, (config.pmin, config.pmax))
    lo_x, hi_x = stats.x[config.pmin], stats.x[config.pmax]
    lo_y, hi_y = stats.y[config.pmin], stats.y[config.pmax]
    for what, lo, hi in (("inputs", lo_x, hi_x), ("targets", lo_y, hi_y)):
        if hi <= lo:
            raise ValueError(f"the training {what} of {config.path} have the same value {lo:g} at the {config.pmin:g}th "
                             f"and {config.pmax:g}th percentiles (nearly constant images); widen --pmin/--pmax or "
                             "use --normalize bitdepth.")
    return Normalization("percentile", train_set.bit_depth, container, lo_x, hi_x, lo_y, hi_y, config.pmin, config.pmax)


# ----------------------------------------------------------------------------------------------
# Bit depth of the content versus the container
# ----------------------------------------------------------------------------------------------


def camera_bit_depth(max_value: float, container_bits: int) -> int | None:
    """The smallest common camera bit depth (12, 14) below the container that holds ``max_value``."""
    for bits in CAMERA_BIT_DEPTHS:
        if bits < container_bits and max_value <= 2**bits - 1:
            return bits
    return None


def bit_depth_warning(max_value: float, container_bits: int, where: str = "the data") -> str | None:
    """A warning when a 16-bit container holds values that fit in 12 or 14 bits, else None.

    Scaled as 16-bit, such an image occupies only ``2^b / 2^16`` of the range the network
    expects (1/16 for 12-bit content), so it looks far darker than the data the model learned on.
    """
    bits = camera_bit_depth(max_value, container_bits)
    if bits is None:
        return None
    return (f"{where}: {container_bits}-bit files whose values reach only {max_value:.0f} (fits in {bits} bits, "
            f"0..{2**bits - 1}). A {bits}-bit camera? Then pass --bit-depth {bits} (Python: bit_depth={bits}); scaled "
            f"as {container_bits}-bit the images are {2**(container_bits - bits)}x too dark for the network. If the "
            "images are simply dim, ignore this.")


def check_bit_depth_fits(max_value: float, bit_depth: int, where: str) -> None:
    """A clear error when values exceed the declared ``bit_depth`` (they would be clipped)."""
    if max_value > 2**bit_depth - 1:
        raise ValueError(f"{where} has values up to {max_value:.0f}, more than the {bit_depth}-bit range "
                         f"0..{2**bit_depth - 1} given by --bit-depth {bit_depth}; pass the real bit depth "
                         "(or none, to use the pixel type's).")


def restore_normalization(trained: Normalization | None, image: np.ndarray, where: str = "image",
                          bit_depth: int | None = None) -> tuple[Normalization, str | None]:
    """The mapping to restore ``image`` with a model trained with ``trained``, and a warning or None.

    * ``trained`` in percentile mode: exactly the training statistics (the input must have the
      pixel type the model was trained on; ``bit_depth`` does not apply);
    * bitdepth mode: ``B`` = ``bit_depth`` if given, else the training ``B`` when the input has
      the training pixel type (a model trained with ``--bit-depth 12`` reads 16-bit files as
      12-bit), else the input's pixel type, as in the paper. Without an explicit ``bit_depth``,
      16-bit content that fits in 12 or 14 bits gives the :func:`bit_depth_warning`.
    """
    container = bit_depth_of(np.asarray(image).dtype, where)
    if trained is not None and trained.mode == "percentile":
        if bit_depth is not None:
            raise ValueError(f"this model normalises by the percentiles of its training set ({trained.describe()}); "
                             "--bit-depth does not apply to it: leave it out.")
        if container != trained.container_bits:
            raise ValueError(f"{where} is {container}-bit, but the model's percentile normalisation was measured on "
                             f"{trained.container_bits}-bit images; give it images of the kind it was trained on.")
        return trained, None
    if bit_depth is not None:
        if not 1 <= bit_depth <= container:
            raise ValueError(f"--bit-depth {bit_depth} does not fit {where}, a {container}-bit image; use 1..{container}.")
        check_bit_depth_fits(float(np.max(image)), bit_depth, where)
        return Normalization.from_bit_depth(bit_depth, container), None
    if trained is not None and trained.container_bits == container:
        check_bit_depth_fits(float(np.max(image)), trained.bit_depth, f"{where} (the model was trained on "
                             f"{trained.bit_depth}-bit data)")
        return Normalization.from_bit_depth(trained.bit_depth, container), None
    return Normalization.from_bit_depth(container), bit_depth_warning(float(np.max(image)), container, where)


# ----------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------


def make_folder_datasets(config: FolderConfig, patch_size: int = 256, quick: bool = False, seed: int = 0,
                         augmentation=True, progress: bool = True, random_crops: bool = False) -> dict:
    """The train/val/test :class:`~teachdiff.data.PairedPatchDataset` of a folder of pairs.

    Every dataset carries ``.normalization`` (fitted on the training split), which the trainer
    saves in its checkpoints. Warns (``UserWarning``) when 16-bit files hold 12-bit-like content
    and no ``bit_depth`` was given. ``quick`` keeps a small, evenly spread subset of patches.
    """
    from teachdiff.data.loaders import split_datasets

    sets = prepare_folder(config, patch_size, progress=progress)
    stats = intensity_stats(sets["train"], (config.pmin, config.pmax))
    train_set = sets["train"]
    if config.bit_depth is not None:
        check_bit_depth_fits(stats.max_value, config.bit_depth, stats.x_max_file or str(config.path))
    elif config.normalize == "bitdepth":
        message = bit_depth_warning(stats.max_value, train_set.bit_depth, str(config.path))
        if message:
            warnings.warn(message, UserWarning, stacklevel=2)
    normalization = fit_normalization(config, train_set, stats)
    return split_datasets(sets, str(config.path), patch_size, augmentation, quick, normalization=normalization,
                          random_crops=random_crops)

