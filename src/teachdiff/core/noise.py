"""Position-keyed Gaussian noise: a draw that belongs to a pixel, not to a tile."""

from __future__ import annotations

import math
import torch

__all__ = ["NoiseField"]


# ----------------------------------------------------------------------------------------------
# Position-keyed Gaussian noise
# ----------------------------------------------------------------------------------------------

_MASK32 = 0xFFFFFFFF


def _mul32(h: torch.Tensor, c: int) -> torch.Tensor:
    """(h * c) mod 2**32 for int64 tensors holding 32-bit values, without int64 overflow."""
    low = h * (c & 0xFFFF)
    high = ((h * (c >> 16)) & 0xFFFF) << 16
    return (low + high) & _MASK32


def _mix32(h: torch.Tensor) -> torch.Tensor:
    """A bijective 32-bit integer hash (the "lowbias32" xor-shift-multiply finaliser)."""
    h = h ^ (h >> 16)
    h = _mul32(h, 0x7FEB352D)
    h = h ^ (h >> 15)
    h = _mul32(h, 0x846CA68B)
    return h ^ (h >> 16)


class NoiseField:
    r"""Standard normal noise that is a fixed function of where and when it is used.

    ``z = BoxMuller(hash(seed, image, sample, step, channel, row, col))``: the value at a pixel
    does not depend on the tile, the batch or the device that asks for it, so tiled and
    whole-image sampling see the same noise. Each key is folded in with a bijective 32-bit hash,
    so two keys that differ in one coordinate never share a value along that coordinate. Step 0
    holds the initial y_T; step t >= 1 the noise added when leaving step t.

    Two 24-bit uniforms feed the Box-Muller transform
    :math:`z = \sqrt{-2 \ln u_1}\, \cos(2 \pi u_2)`, so |z| < 5.9.
    """

    def __init__(self, seed: int = 0):
        self.seed = int(seed) & _MASK32

    def __repr__(self) -> str:
        return f"NoiseField(seed={self.seed})"

    @classmethod
    def from_generator(cls, generator: torch.Generator | None) -> "NoiseField":
        """A field seeded by one draw from ``generator`` (or from torch's global RNG)."""
        seed = torch.randint(0, 2**31 - 1, (1,), generator=generator,
                             device=generator.device if generator is not None else "cpu")
        return cls(int(seed.item()))

    def keys(self, images: torch.Tensor, samples: torch.Tensor, channels: int, tops: torch.Tensor,
             lefts: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Per-pixel hash of everything but the step: int64 tensor (B, channels, height, width).

        ``images``, ``samples``, ``tops`` and ``lefts`` are int tensors of shape (B,): which
        image and sample each batch element is, and where its crop starts in the full image.
        """
        device = images.device
        rows = tops.reshape(-1, 1, 1, 1) + torch.arange(height, device=device).reshape(1, 1, -1, 1)
        cols = lefts.reshape(-1, 1, 1, 1) + torch.arange(width, device=device).reshape(1, 1, 1, -1)
        chans = torch.arange(channels, device=device).reshape(1, -1, 1, 1)
        h = _mix32(torch.full((1,), self.seed, dtype=torch.int64, device=device) ^ images.reshape(-1, 1, 1, 1))
        h = _mix32(h ^ samples.reshape(-1, 1, 1, 1))
        h = _mix32(h ^ chans)
        h = _mix32(h ^ (rows & _MASK32))
        return _mix32(h ^ (cols & _MASK32))

    @staticmethod
    def normal(keys: torch.Tensor, step: int, dtype=torch.float32) -> torch.Tensor:
        """The standard normal values of ``keys`` (from :meth:`keys`) at diffusion step ``step``."""
        h1 = _mix32(keys ^ (int(step) & _MASK32))
        h2 = _mix32(h1 ^ 0x5BD1E995)
        u1 = ((h1 >> 8).to(torch.float32) + 0.5) / 2**24
        u2 = (h2 >> 8).to(torch.float32) / 2**24
        return (torch.sqrt(-2 * torch.log(u1)) * torch.cos(2 * math.pi * u2)).to(dtype)

    def crop(self, step: int, height: int, width: int, top: int = 0, left: int = 0, image: int = 0,
             sample: int = 0, channels: int = 1) -> torch.Tensor:
        """The (channels, height, width) crop of the field at ``step`` starting at (top, left)."""
        one = torch.ones(1, dtype=torch.int64)
        keys = self.keys(one * image, one * sample, channels, one * top, one * left, height, width)
        return self.normal(keys, step)[0]
