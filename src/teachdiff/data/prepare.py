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

import dataclasses
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from teachdiff.data.duplicates import describe_duplicate_groups, duplicate_target_groups
from teachdiff.data.pairs import (
    SPLITS,
    ArrayPair,
    FilePair,
    _ArrayCache,
    _natural_key,
    assign_splits,
    find_pairs,
    resolve_root,
)
from teachdiff.data.register import _registration_shifts, register_pair
from teachdiff.data.registry import DatasetInfo, get_dataset_info

__all__ = ["patch_grid", "PatchSet", "prepare_dataset"]


# ----------------------------------------------------------------------------- patches


def patch_grid(shape: tuple[int, int], patch_size: int) -> list[tuple[int, int]]:
    """Top-left corners of the non-overlapping ``patch_size`` tiles of an (H, W) image."""
    H, W = shape
    return [(r * patch_size, c * patch_size) for r in range(H // patch_size) for c in range(W // patch_size)]




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
    root = resolve_root(info, root)
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
