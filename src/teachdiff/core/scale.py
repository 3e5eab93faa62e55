"""The one conversion between grey levels and the networks' [-1, 1] range."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["to_model_range", "from_model_range", "to_display_range"]


# ----------------------------------------------------------------------------- scaling


def to_model_range(image, bit_depth: int):
    """Scale integer intensities ``0..2^B-1`` to the network range ``[-1, 1]`` (float32).

    Works on NumPy arrays and torch tensors: ``2 image / (2^B - 1) - 1``.
    """
    top = float(2**bit_depth - 1)
    if isinstance(image, torch.Tensor):
        return image.float() * (2.0 / top) - 1.0
    return np.asarray(image, dtype=np.float32) * np.float32(2.0 / top) - np.float32(1.0)


def from_model_range(image, bit_depth: int):
    """Inverse of :func:`to_model_range`: ``[-1, 1]`` back to ``0..2^B-1`` (float, clipped)."""
    top = float(2**bit_depth - 1)
    if isinstance(image, torch.Tensor):
        return (image.float().clamp(-1, 1) + 1.0) * (top / 2.0)
    return (np.clip(np.asarray(image, dtype=np.float32), -1, 1) + 1.0) * np.float32(top / 2.0)


def to_display_range(image, as_uint8: bool = False):
    """Map the network range ``[-1, 1]`` to the scoring range ``0..255`` (clipped).

    This is the scale all metrics use (PSNR with L = 255, MAE in grey levels, §S2). With
    ``as_uint8`` the result is rounded and cast to 8 bit, as the paper did for its DDPM outputs.
    """
    out = from_model_range(image, 8)
    if not as_uint8:
        return out
    if isinstance(out, torch.Tensor):
        return out.round().to(torch.uint8)
    return np.rint(out).astype(np.uint8)
