"""Preparation shared by all datasets: pairing, registration, patches, splits, intensity scaling.

The steps follow the paper's §S1 and are the same for every dataset:

1. **pairing** — every input ``raw/<name>`` with its target ``gt/<name>`` (or, for repeated
   captures such as FMD, every ``raw/<fov>/*`` with the single ``gt/<fov>/*``); z-stacks are
   paired slice by slice;
2. **rigid registration** (microtubules, synapses) — the translation that aligns the input
   onto the target; the padding the shift creates in the input is reproduced in the target;
3. **patches** — non-overlapping ``p x p`` tiles from the top-left corner, no resizing
   (the authors' code resized to 256^2); the remainder of each row/column is unused;
4. **splits by field of view** — all patches (and, for FMD, all 50 captures) of a FOV belong
   to one split, so nothing leaks between train, validation and test. Files whose targets are
   identical or nearly so (:func:`duplicate_target_groups`) show one FOV whatever their names
   say, and are split together;
5. **intensity scaling** to the network's range ``[-1, 1]`` from the bit depth ``B``,

       x_model = 2 x / (2^B - 1) - 1,

   and back to ``0..255`` for scoring (metrics compare images on the 8-bit scale, §S2).

The pixel data are read lazily (a file is decoded when one of its patches is first needed,
then kept in a memory-bounded cache), so building the index of a large dataset only reads
file headers.
"""

from __future__ import annotations

import functools
import hashlib
import re
import warnings
from collections import OrderedDict
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence
import numpy as np
from teachdiff.data.io import IMAGE_EXTENSIONS, read_header, read_image
from teachdiff.data.registry import DatasetInfo, default_root, get_dataset_info

__all__ = ["SPLITS", "estimate_shift", "apply_shift", "register_pair", "FilePair", "ArrayPair", "find_pairs", "assign_splits", "duplicate_target_groups", "patch_grid", "PatchSet", "prepare_dataset"]


SPLITS = ("train", "val", "test")
# A translation larger than this fraction of the image means the two files do not show the
# same field of view (wrong pairing), not a stage drift: refuse rather than train on it.
MAX_SHIFT_FRACTION = 0.25


# ----------------------------------------------------------------------------- registration


def estimate_shift(reference: np.ndarray, moving: np.ndarray, upsample_factor: int = 10) -> np.ndarray:
    """The translation (dy, dx) that aligns ``moving`` onto ``reference`` (sub-pixel estimate).

    Phase correlation (``skimage.registration.phase_cross_correlation``) is used because
    (i) the pairs are two acquisitions of the same field on the same stage, so the misalignment
    is a translation (the itk rigid transform of §S1.1 adds a rotation that sample drift does not
    produce); (ii) the normalised cross-power spectrum ignores the very different intensity
    ranges of low- and high-dose images and is robust to their noise; (iii) scikit-image is a
    well-kept, already required dependency. ``np.roll(moving, round(shift))`` ~ ``reference``.
    """
    from skimage.registration import phase_cross_correlation

    reference = np.asarray(reference, dtype=np.float64)
    moving = np.asarray(moving, dtype=np.float64)
    if reference.shape != moving.shape:
        raise ValueError(f"cannot register images of different shapes {reference.shape} and {moving.shape}")
    shift, _, _ = phase_cross_correlation(reference, moving, upsample_factor=upsample_factor, normalization="phase")
    return np.asarray(shift, dtype=np.float64)


def apply_shift(image: np.ndarray, shift: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Translate the last two axes of ``image`` by whole pixels, padding with zeros.

    Returns the shifted image and the boolean mask of valid (non-padded) pixels. Whole-pixel
    shifts keep the original grey levels and noise statistics: interpolation would invent new
    values, which matters for low-dose images with only a few distinct levels.
    """
    dy, dx = (int(round(float(s))) for s in shift)
    H, W = image.shape[-2:]
    out = np.zeros_like(image)
    valid = np.zeros((H, W), dtype=bool)
    dst_r, src_r = slice(max(dy, 0), H + min(dy, 0)), slice(max(-dy, 0), H - max(dy, 0))
    dst_c, src_c = slice(max(dx, 0), W + min(dx, 0)), slice(max(-dx, 0), W - max(dx, 0))
    out[..., dst_r, dst_c] = image[..., src_r, src_c]
    valid[dst_r, dst_c] = True
    return out, valid


def register_pair(x: np.ndarray, y: np.ndarray, shift: Sequence[float] | None = None):
    """Align input ``x`` onto target ``y`` (arrays (H, W) or (Z, H, W)) and mirror the padding.

    The shift is estimated on the z-mean projection (one shift per stack: the slices were
    acquired together) unless given. The padding the shift creates in ``x`` is reproduced in
    ``y`` (paper §S1.1), so the model never learns to predict content from zeros.
    Returns ``(x_registered, y_masked, shift_in_whole_pixels)``.
    """
    if shift is None:
        x_ref = x.mean(axis=0) if x.ndim == 3 else x
        y_ref = y.mean(axis=0) if y.ndim == 3 else y
        shift = estimate_shift(y_ref, x_ref)
    shift = tuple(int(round(float(s))) for s in shift)
    x_reg, valid = apply_shift(x, shift)
    return x_reg, np.where(valid, y, 0).astype(y.dtype), shift


# ----------------------------------------------------------------------------- pairs


def _natural_key(text: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _images(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")),
        key=lambda p: _natural_key(p.name),
    )


def _subfolders(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: _natural_key(p.name))


@dataclass(frozen=True)
class FilePair:
    """An input file and its target file (same shape), one field of view.

    ``x_crop``/``y_crop`` (top, left), set only when registration is on and the two files differ
    in size, cut the centre ``shape`` of the larger one, so registration can align the pair.
    """

    x_path: Path
    y_path: Path
    fov: str
    name: str
    shape: tuple[int, int, int]  # (Z, H, W)
    bit_depth: int
    x_crop: tuple[int, int] | None = None
    y_crop: tuple[int, int] | None = None

    def load(self, cache: "_ArrayCache | None" = None) -> tuple[np.ndarray, np.ndarray]:
        read = cache.read if cache is not None else read_image
        return _crop(read(self.x_path), self.x_crop, self.shape), _crop(read(self.y_path), self.y_crop, self.shape)


def _crop(image: np.ndarray, corner: tuple[int, int] | None, shape: tuple[int, int, int]) -> np.ndarray:
    if corner is None:
        return image
    top, left = corner
    return image[:, top : top + shape[1], left : left + shape[2]]


@dataclass(frozen=True)
class ArrayPair:
    """An in-memory pair (Z, H, W), e.g. from the synthetic microscope."""

    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    fov: str
    name: str
    bit_depth: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape)  # type: ignore[return-value]

    def load(self, cache: "_ArrayCache | None" = None) -> tuple[np.ndarray, np.ndarray]:
        return self.x, self.y


def _layout_error(info: DatasetInfo, root: Path, problem: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{problem}\nThe '{info.name}' dataset needs this layout under {root}:\n{info.layout}"
        + (f"\nOr run `teachdiff data download {info.name}`." if info.download else "")
    )


def _resolve_root(info: DatasetInfo, root: str | Path | None) -> Path:
    if root is None:
        root = default_root(info.name)
        if not Path(root).exists():
            how = (
                f"run `teachdiff data download {info.name}` (or pass root=<folder>)"
                if info.download
                else f"pass root=<folder> (CLI: teachdiff data check <folder> --dataset {info.name})"
            )
            raise FileNotFoundError(
                f"dataset '{info.name}' is not available: nothing at {root}. To get it, {how}. "
                f"Expected layout:\n{info.layout}\nNo internet? Use 'synthetic-{info.synthetic_case or info.name}' instead."
            )
    root = Path(root).expanduser()
    if not root.is_dir():
        raise _layout_error(info, root, f"{root} is not a folder.")
    if info.name == "zebrafish" and (root / "Confocal_FISH").is_dir():
        root = root / "Confocal_FISH"
    return root


def find_pairs(root: str | Path, info: DatasetInfo | None = None) -> dict[str | None, list[FilePair]]:
    """Pair the input and target files under ``root``.

    Returns ``{split: pairs}`` when ``root`` has ``train/``, ``val/``, ``test/`` folders,
    else ``{None: pairs}``. Raises a clear error for an empty folder, unpaired files,
    size mismatches, mixed bit depths, corrupt or colour images.
    """
    info = info or get_dataset_info("microtubules")
    root = Path(root)
    split_dirs = [root / s for s in SPLITS if (root / s / "raw").is_dir()]
    if split_dirs:
        missing = [s for s in SPLITS if not (root / s / "raw").is_dir()]
        if missing:
            raise _layout_error(info, root, f"{root} has split folders but no {', '.join(missing)}/raw.")
        found = {d.name: _pairs_in(d, info) for d in split_dirs}
    else:
        found = {None: _pairs_in(root, info)}
    all_pairs = [p for pairs in found.values() for p in pairs]
    depths = {p.bit_depth for p in all_pairs}
    if len(depths) > 1:
        examples = {d: next(p.x_path for p in all_pairs if p.bit_depth == d) for d in sorted(depths)}
        listing = "; ".join(f"{d}-bit e.g. {path}" for d, path in examples.items())
        raise ValueError(f"{root}: files of different bit depths ({listing}). Convert all images to one bit depth.")
    return found


def _pairs_in(root: Path, info: DatasetInfo) -> list[FilePair]:
    raw, gt = root / "raw", root / "gt"
    make_pair = functools.partial(_make_pair, crop_to_common=info.register)
    for folder in (raw, gt):
        if not folder.is_dir():
            raise _layout_error(info, root, f"{root} has no '{folder.name}/' folder.")
    pairs: list[FilePair] = []
    unpaired: list[str] = []
    # 1) raw/<name>.<ext> with gt/<name>.<any ext>: one FOV per file.
    gt_by_stem = {p.stem: p for p in _images(gt)}
    used_gt: set[Path] = set()
    for x_path in _images(raw):
        y_path = gt_by_stem.get(x_path.stem)
        if y_path is None:
            unpaired.append(f"{x_path} (no gt/{x_path.stem}.*)")
            continue
        used_gt.add(y_path)
        pairs.append(make_pair(x_path, y_path, fov=x_path.stem, name=x_path.stem))
    unpaired += [f"{p} (no raw/{p.stem}.*)" for p in gt_by_stem.values() if p not in used_gt]
    # 2) raw/<fov>/<captures> with gt/<fov>/<one target> (FMD) or gt/<fov>/<same names>.
    for x_dir in _subfolders(raw):
        y_dir = gt / x_dir.name
        captures = _images(x_dir)
        if not y_dir.is_dir():
            if captures:
                unpaired.append(f"{x_dir}/ (no gt/{x_dir.name}/ folder)")
            continue
        targets = _images(y_dir)
        if len(targets) == 1:
            pairs += [make_pair(c, targets[0], fov=x_dir.name, name=f"{x_dir.name}/{c.stem}") for c in captures]
            continue
        target_by_stem = {t.stem: t for t in targets}
        for c in captures:
            if c.stem in target_by_stem:
                pairs.append(make_pair(c, target_by_stem[c.stem], fov=x_dir.name, name=f"{x_dir.name}/{c.stem}"))
            else:
                unpaired.append(f"{c} (no {y_dir}/{c.stem}.* and no single target in {y_dir})")
        captured = {c.stem for c in captures}
        unpaired += [f"{t} (no raw/{x_dir.name}/{t.stem}.*)" for t in targets if t.stem not in captured]
    for y_dir in _subfolders(gt):
        if not (raw / y_dir.name).is_dir() and _images(y_dir):
            unpaired.append(f"{y_dir}/ (no raw/{y_dir.name}/ folder)")
    if unpaired:
        shown = "\n  ".join(unpaired[:8]) + (f"\n  ... and {len(unpaired) - 8} more" if len(unpaired) > 8 else "")
        raise ValueError(
            f"{root}: {len(unpaired)} file(s) without a partner:\n  {shown}\n"
            "Every input in raw/ needs a target of the same name in gt/ (extensions may differ); "
            "add the missing files or move the unpaired ones out of the folder."
        )
    if not pairs:
        raise _layout_error(info, root, f"no image pairs found in {root} (raw/ and gt/ are empty).")
    return pairs


def _make_pair(x_path: Path, y_path: Path, fov: str, name: str, crop_to_common: bool = False) -> FilePair:
    """Pair two files after checking their headers. With ``crop_to_common`` (registration on),
    files of different height/width are cut to their common centre, which registration then aligns."""
    hx, hy = read_header(x_path), read_header(y_path)
    x_crop = y_crop = None
    shape = hx.shape
    if hx.shape != hy.shape and crop_to_common and hx.shape[0] == hy.shape[0]:
        shape = (hx.shape[0], min(hx.shape[1], hy.shape[1]), min(hx.shape[2], hy.shape[2]))
        x_crop = ((hx.shape[1] - shape[1]) // 2, (hx.shape[2] - shape[2]) // 2)
        y_crop = ((hy.shape[1] - shape[1]) // 2, (hy.shape[2] - shape[2]) // 2)
    elif hx.shape != hy.shape:
        raise ValueError(
            f"input {x_path} has shape {hx.shape} (Z, H, W) but its target {y_path} has {hy.shape}. "
            "Input and target must have the same size: resample or crop one of them to the other "
            "(same pixel size, same field of view) before training"
            + (", or turn registration on (--register), which aligns the common centre of the two." if hx.shape[0] == hy.shape[0]
               else "; the numbers of z-slices must match.")
        )
    if hx.bit_depth != hy.bit_depth:
        raise ValueError(
            f"input {x_path} is {hx.bit_depth}-bit but its target {y_path} is {hy.bit_depth}-bit; "
            "convert both to the same bit depth."
        )
    return FilePair(x_path=x_path, y_path=y_path, fov=fov, name=name, shape=shape, bit_depth=hx.bit_depth,
                    x_crop=x_crop, y_crop=y_crop)


def assign_splits(fovs: Sequence[str], info: DatasetInfo, seed: int = 0) -> dict[str, str]:
    """Map every FOV name to 'train', 'val' or 'test'.

    ``info.fixed_split`` (zebrafish: FOV 19 -> test, FOV 20 -> val) wins; otherwise FOVs are
    shuffled with ``seed`` and cut in the proportions of the paper's Table S1.
    """
    fovs = sorted(set(fovs), key=_natural_key)
    if info.fixed_split:
        assignment = {f: "train" for f in fovs}
        for split, names in info.fixed_split.items():
            for name in names:
                if name not in assignment:
                    raise ValueError(
                        f"dataset '{info.name}' puts FOV '{name}' in the {split} split (Table S1), but "
                        f"no FOV '{name}' was found (found: {', '.join(fovs[:25])}). Provide the complete dataset."
                    )
                assignment[name] = split
        return assignment
    n = len(fovs)
    if n < 3:
        raise ValueError(
            f"{n} field(s) of view found; at least 3 are needed to split by FOV into train/val/test. "
            "Add FOVs, or fix the split yourself with train/, val/, test/ folders."
        )
    _, f_val, f_test = info.split_fractions
    n_test = max(1, int(round(f_test * n)))
    n_val = max(1, int(round(f_val * n)))
    order = np.random.default_rng(seed).permutation(n)
    assignment = {}
    for rank, i in enumerate(order):
        assignment[fovs[i]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return assignment


# ----------------------------------------------------------------------------- duplicated targets

# Two targets whose 64² thumbnails correlate at least this well show one field of view. Measured
# on 512² simulations of the four synthetic cases: distinct FOVs correlate at 0.01-0.11 (0.28 at
# most with a strong illumination falloff shared by both), two averages of 4 captures of one FOV
# at 0.986-0.995, two single captures of one FOV at 0.95-0.98, a file saved twice at 1.
DUPLICATE_CORRELATION = 0.95
THUMBNAIL_SIDE = 64


def _block_mean(plane: np.ndarray, fy: int, fx: int) -> np.ndarray:
    h, w = plane.shape[0] // fy * fy, plane.shape[1] // fx * fx
    return plane[:h, :w].reshape(h // fy, fy, w // fx, fx).mean(axis=(1, 3))


def _thumbnail(image: np.ndarray) -> np.ndarray:
    """The z-mean of (Z, H, W), block-averaged to at most ``THUMBNAIL_SIDE`` per side, without its
    coarse shading (8x coarser block means: an illumination falloff shared by different FOVs must
    not make them look alike), standardised and flattened."""
    plane = image.astype(np.float64).mean(axis=0)
    small = _block_mean(plane, max(1, plane.shape[0] // THUMBNAIL_SIDE), max(1, plane.shape[1] // THUMBNAIL_SIDE))
    if min(small.shape) >= 16:
        h, w = small.shape[0] // 8 * 8, small.shape[1] // 8 * 8
        small = small[:h, :w] - np.kron(_block_mean(small, 8, 8), np.ones((8, 8)))
    small = small.ravel()
    spread = small.std()
    return (small - small.mean()) / spread if spread > 0 else np.zeros_like(small)


def duplicate_target_groups(pairs: Sequence[FilePair | ArrayPair], progress: bool = False) -> list[list[str]]:
    """The FOVs whose targets are identical or near-identical: lists of FOV names (sorted), each
    list one field of view whatever the names say; FOVs with a target of their own are left out.

    Two targets match when their pixels are equal (a hash of the decoded image, so a TIFF and a
    PNG of one image match) or when their thumbnails (z-mean, block-averaged to 64 px a side)
    correlate at ``DUPLICATE_CORRELATION`` or more (targets of one FOV averaged from different
    captures). Each target is decoded once; one that cannot be decoded, or is constant (a blank
    image says nothing about its field), is left out. On small, noisy targets a near-copy can be
    missed (two 6-capture averages of a 96² synthetic zebrafish field correlate at 0.78, of a 256²
    one at 0.98); exact copies are always found.
    """
    from tqdm.auto import tqdm

    targets: dict[object, list[str]] = {}  # target file (or in-memory pair) -> the FOVs using it
    loaders = {}
    for pair in pairs:
        key = getattr(pair, "y_path", None) or id(pair)
        targets.setdefault(key, [])
        if pair.fov not in targets[key]:
            targets[key].append(pair.fov)
        loaders[key] = pair
    parent = {fov: fov for fovs in targets.values() for fov in fovs}

    def root(fov):
        while parent[fov] != fov:
            parent[fov] = parent[parent[fov]]
            fov = parent[fov]
        return fov

    def join(a, b):
        parent[root(a)] = root(b)

    by_hash: dict[tuple, str] = {}
    thumbs: dict[tuple, list[tuple[str, np.ndarray]]] = {}
    for key, fovs in tqdm(targets.items(), desc="comparing targets", disable=not progress or len(targets) < 2,
                          leave=False):
        pair = loaders[key]
        for fov in fovs[1:]:
            join(fovs[0], fov)
        try:
            y = _crop(read_image(pair.y_path), pair.y_crop, pair.shape) if isinstance(pair, FilePair) else pair.y
        except ValueError:  # undecodable: `teachdiff data check` reports it, training fails on it by name
            continue
        if y.min() == y.max():  # a blank target says nothing about which field it shows
            continue
        digest = (y.shape, str(y.dtype), hashlib.sha1(np.ascontiguousarray(y).tobytes()).hexdigest())
        if digest in by_hash:
            join(fovs[0], by_hash[digest])
        else:
            by_hash[digest] = fovs[0]
        thumbs.setdefault(y.shape, []).append((fovs[0], _thumbnail(y)))
    for group in thumbs.values():
        if len(group) < 2:
            continue
        names = [name for name, _ in group]
        matrix = np.stack([t for _, t in group])
        correlation = matrix @ matrix.T / matrix.shape[1]
        for i, j in zip(*np.nonzero(np.triu(correlation >= DUPLICATE_CORRELATION, k=1))):
            join(names[i], names[j])
    groups: dict[str, list[str]] = {}
    for fov in parent:
        groups.setdefault(root(fov), []).append(fov)
    merged = [sorted(g, key=_natural_key) for g in groups.values() if len(g) > 1]
    return sorted(merged, key=lambda g: _natural_key(g[0]))


def describe_duplicate_groups(groups: list[list[str]]) -> str:
    """What :func:`prepare_dataset` did with the FOV groups of :func:`duplicate_target_groups`, in words."""
    shown = "; ".join(f"{', '.join(g[:4])}{f' (+{len(g) - 4})' if len(g) > 4 else ''} -> FOV '{g[0]}'"
                      for g in groups[:3])
    more = f"; and {len(groups) - 3} more group(s)" if len(groups) > 3 else ""
    n = sum(len(g) for g in groups)
    return (f"{n} files/FOVs have identical or near-identical targets (pixel hash, or correlation >= "
            f"{DUPLICATE_CORRELATION:g} on a {THUMBNAIL_SIDE}² thumbnail), so each group shows one field of view "
            f"and is kept in one split: {shown}{more}. If they are captures of one FOV, say so with the per-FOV "
            "layout: raw/<fov>/<capture>.tif + gt/<fov>/<one target>.tif (`teachdiff data check --help`).")


# ----------------------------------------------------------------------------- patches


def patch_grid(shape: tuple[int, int], patch_size: int) -> list[tuple[int, int]]:
    """Top-left corners of the non-overlapping ``patch_size`` tiles of an (H, W) image."""
    H, W = shape
    return [(r * patch_size, c * patch_size) for r in range(H // patch_size) for c in range(W // patch_size)]


class _ArrayCache:
    """Least-recently-used cache of decoded files, bounded in bytes (one per process)."""

    def __init__(self, max_bytes: int = 512 * 2**20):
        self.max_bytes = max_bytes
        self._items: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._bytes = 0

    def read(self, path: Path) -> np.ndarray:
        if path in self._items:
            self._items.move_to_end(path)
            return self._items[path]
        data = read_image(path)
        self._items[path] = data
        self._bytes += data.nbytes
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.nbytes
        return data


class PatchSet:
    """The patches of one split: an index over (pair, z-slice, tile), pixels read lazily.

    ``patch(i)`` returns ``(x, y, name)`` with ``x`` and ``y`` integer arrays (p, p) in the
    dataset's bit depth, registered when the dataset needs it; ``name`` identifies the FOV,
    slice and tile, e.g. ``"19/HV140_P100510001/r0c256"``.
    """

    def __init__(
        self,
        pairs: Sequence[FilePair | ArrayPair],
        patch_size: int,
        bit_depth: int,
        shifts: Sequence[tuple[int, int]] | None = None,
        split: str = "",
        cache_bytes: int = 512 * 2**20,
    ):
        self.pairs = list(pairs)
        self.patch_size = int(patch_size)
        self.bit_depth = int(bit_depth)  # B of the intensity scaling (may be below the pixel type's)
        self.container_bits = max((p.bit_depth for p in self.pairs), default=self.bit_depth)  # the pixel type's
        self.shifts = list(shifts) if shifts is not None else [(0, 0)] * len(self.pairs)
        self.split = split
        self.merged_fovs: list[list[str]] = []  # set by prepare_dataset: FOVs grouped for duplicated targets
        index = [
            (k, z, r, c)
            for k, pair in enumerate(self.pairs)
            for z in range(pair.shape[0])
            for r, c in patch_grid(pair.shape[1:], self.patch_size)
        ]
        self.index = np.asarray(index, dtype=np.int64).reshape(-1, 4)
        self._cache = _ArrayCache(cache_bytes)

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self):  # worker processes start with an empty cache
        state = dict(self.__dict__)
        state["_cache"] = _ArrayCache(self._cache.max_bytes)
        return state

    @property
    def fovs(self) -> list[str]:
        return sorted({p.fov for p in self.pairs}, key=_natural_key)

    def sub_fov(self, i: int) -> str:
        """The sub-field of view of patch ``i``: its FOV and tile (all captures/slices share it)."""
        k, _, r, c = self.index[i]
        return f"{self.pairs[k].fov}/r{r}c{c}"

    def name(self, i: int) -> str:
        k, z, r, c = (int(v) for v in self.index[i])
        pair = self.pairs[k]
        zpart = f"/z{z:02d}" if pair.shape[0] > 1 else ""
        return f"{pair.name}{zpart}/r{r}c{c}"

    def load_pair(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The whole registered pair ``k`` as (Z, H, W) arrays (for full-FOV inference and scoring)."""
        x, y = self.pairs[k].load(self._cache)
        if self.shifts[k] != (0, 0):
            x, y, _ = register_pair(x, y, self.shifts[k])
        return x, y

    def patch(self, i: int) -> tuple[np.ndarray, np.ndarray, str]:
        k, z, r, c = (int(v) for v in self.index[i])
        return (*self._crop(k, z, r, c), self.name(i))

    def random_patch(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
        """A fresh crop from the image of patch ``i``: same pair and slice, top-left corner drawn
        uniformly over every position where a whole patch fits (CSBDeep/CAREamics train on such
        crops; a fixed grid shows the network the same few hundred patches in every epoch)."""
        k, z = (int(v) for v in self.index[i][:2])
        H, W = self.pairs[k].shape[1:]
        r, c = (int(rng.integers(0, n - self.patch_size + 1)) for n in (H, W))
        x, y = self._crop(k, z, r, c)
        return x, y, f"{self.name(i)}@r{r}c{c}"

    def _crop(self, k: int, z: int, r: int, c: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.pairs[k].load(self._cache)
        p = self.patch_size
        dy, dx = self.shifts[k]
        if (dy, dx) == (0, 0):
            return x[z, r : r + p, c : c + p], y[z, r : r + p, c : c + p]
        # Registered input: x_reg[i, j] = x[i - dy, j - dx], zero where that falls outside x;
        # the same pixels are zeroed in the target (mirrored padding).
        H, W = x.shape[1:]
        x_patch = np.zeros((p, p), dtype=x.dtype)
        rows = slice(max(r, dy, 0), min(r + p, H + dy, H))
        cols = slice(max(c, dx, 0), min(c + p, W + dx, W))
        valid = np.zeros((p, p), dtype=bool)
        if rows.stop > rows.start and cols.stop > cols.start:
            dst = (slice(rows.start - r, rows.stop - r), slice(cols.start - c, cols.stop - c))
            x_patch[dst] = x[z, rows.start - dy : rows.stop - dy, cols.start - dx : cols.stop - dx]
            valid[dst] = True
        y_patch = np.where(valid, y[z, r : r + p, c : c + p], 0).astype(y.dtype)
        return x_patch, y_patch


def prepare_dataset(
    name: str | DatasetInfo,
    root: str | Path | None = None,
    patch_size: int = 256,
    split_seed: int = 0,
    progress: bool = True,
    register: bool | None = None,
) -> dict[str, PatchSet]:
    """Index a folder dataset: pairs, registration shifts, patches and FOV splits.

    ``name`` is a registered dataset or a :class:`DatasetInfo` (a user folder:
    :mod:`teachdiff.data.folder`). ``root`` defaults to ``data_dir()/<name>`` (where
    ``teachdiff data download`` puts data). ``register`` overrides the registry's choice of
    registering the pairs (§S1.1). Returns ``{"train": PatchSet, "val": PatchSet, "test": PatchSet}``.
    """
    info = name if isinstance(name, DatasetInfo) else get_dataset_info(name)
    if info.is_synthetic:
        raise ValueError(f"'{name}' is generated on the fly; use make_dataloaders('{name}') or synthetic_patch_sets().")
    if patch_size < 8:
        raise ValueError(f"patch_size must be at least 8 pixels, got {patch_size}")
    root = _resolve_root(info, root)
    found = find_pairs(root, info)
    merged: list[list[str]] = []
    if None in found:
        pairs = found[None]
        if not info.fixed_split:  # a fixed split names its FOVs: they stay as they are
            merged = duplicate_target_groups(pairs, progress)
            if merged:
                into = {fov: group[0] for group in merged for fov in group}
                pairs = [dataclasses.replace(p, fov=into.get(p.fov, p.fov)) for p in pairs]
                message = describe_duplicate_groups(merged)
                if len({p.fov for p in pairs}) < 3:
                    raise ValueError(f"{root}: {message} That leaves {len({p.fov for p in pairs})} field(s) of "
                                     "view, and at least 3 are needed to split into train/val/test: add FOVs.")
                warnings.warn(message, UserWarning, stacklevel=2)
        assignment = assign_splits([p.fov for p in pairs], info, seed=split_seed)
        by_split = {s: [p for p in pairs if assignment[p.fov] == s] for s in SPLITS}
    else:
        by_split = {s: found[s] for s in SPLITS}
    bit_depth = next(p.bit_depth for s in SPLITS for p in by_split[s])
    too_small = [p for s in SPLITS for p in by_split[s] if min(p.shape[1:]) < patch_size]
    if too_small:
        p = too_small[0]
        raise ValueError(
            f"{p.x_path}: {p.shape[1]}x{p.shape[2]} pixels is smaller than one {patch_size}x{patch_size} patch "
            f"({len(too_small)} such file(s)); use a smaller patch_size or remove these files."
        )
    sets = {}
    for split in SPLITS:
        do_register = info.register if register is None else register
        shifts = _registration_shifts(by_split[split], progress, split) if do_register else None
        sets[split] = PatchSet(by_split[split], patch_size, bit_depth, shifts=shifts, split=split)
        sets[split].merged_fovs = merged  # FOV groups of duplicated targets (duplicate_target_groups)
    return sets


def _registration_shifts(pairs: Sequence[FilePair], progress: bool, split: str) -> list[tuple[int, int]]:
    from tqdm.auto import tqdm

    shifts: dict[tuple[Path, Path], tuple[int, int]] = {}
    out = []
    for pair in tqdm(pairs, desc=f"registering {split} pairs", disable=not progress or not pairs, leave=False):
        key = (pair.x_path, pair.y_path)
        if key not in shifts:
            x, y = pair.load()
            shift = estimate_shift(y.mean(axis=0), x.mean(axis=0))
            limit = MAX_SHIFT_FRACTION * np.array(x.shape[1:])
            if np.any(np.abs(shift) > limit):
                raise ValueError(
                    f"registering {pair.x_path} onto {pair.y_path} needs a shift of {np.round(shift, 1)} px, "
                    f"more than {MAX_SHIFT_FRACTION:.0%} of the image: the two files probably do not show the "
                    "same field of view. Check that input and target are paired by the right names."
                )
            shifts[key] = tuple(int(round(s)) for s in shift)
        out.append(shifts[key])
    return out
