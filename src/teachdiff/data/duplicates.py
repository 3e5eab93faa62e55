"""Targets that repeat: groups of pairs whose ground truths are near-identical, kept in one split."""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from teachdiff.data.io import read_image
from teachdiff.data.pairs import ArrayPair, FilePair, _crop, _natural_key

__all__ = ["duplicate_target_groups"]


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
