"""Which files make a pair: the folder layouts, matching inputs to targets, and the split of each field of view."""

from __future__ import annotations

import functools
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from teachdiff.data.io import IMAGE_EXTENSIONS, read_header, read_image
from teachdiff.data.registry import DatasetInfo, default_root, get_dataset_info

__all__ = ["SPLITS", "FilePair", "ArrayPair", "find_pairs", "assign_splits"]


SPLITS = ("train", "val", "test")


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


def resolve_root(info: DatasetInfo, root: str | Path | None) -> Path:
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
