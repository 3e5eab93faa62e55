"""Registration of a pair: the sub-pixel shift between input and target, and its correction (§4.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from teachdiff.data.pairs import FilePair

__all__ = ["estimate_shift", "apply_shift", "register_pair"]


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
