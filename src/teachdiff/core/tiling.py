"""Tiled inference with smooth blending: any patch-wise function over a large image."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

__all__ = ["pad_amount", "pad_reflect", "blend_window", "default_overlap", "default_halo", "TilePlan", "plan_tiles",
           "tiled_apply"]


OVERLAP_FRACTION = 1 / 8


def pad_amount(size: int, multiple: int) -> int:
    """Pixels to add to a side of ``size`` to reach the next multiple of ``multiple`` (the network's
    size multiple, its total down-sampling factor)."""
    return (-size) % multiple


def pad_reflect(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Mirror-pad the last two axes by any amount (repeated reflection, ``d c b | a b c d``).

    torch's "reflect" mode needs pads smaller than the image; this applies it repeatedly so a
    small image can be padded up to a large tile. A side of length 1 is replicated.
    """
    while top or bottom or left or right:
        h, w = x.shape[-2:]
        cap_h, cap_w = max(h - 1, 0), max(w - 1, 0)
        step = [min(left, cap_w), min(right, cap_w), min(top, cap_h), min(bottom, cap_h)]
        if cap_h == 0 and (top or bottom) or cap_w == 0 and (left or right):
            return F.pad(x, (left, right, top, bottom), mode="replicate")
        x = F.pad(x, tuple(step), mode="reflect")
        left, right, top, bottom = left - step[0], right - step[1], top - step[2], bottom - step[3]
    return x


def check_image_batch(x, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ValueError(f"{name} must be a tensor of shape (N, C, H, W) in [-1, 1], got {shape}; "
                         "use img[None, None] for one 2-D image, or teachdiff.inference.restore.restore_image for NumPy arrays.")
    if not x.is_floating_point():
        raise ValueError(f"{name} has integer dtype {x.dtype}; scale it to [-1, 1] first with "
                         "teachdiff.data.to_model_range(image, bit_depth).")


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


# ----------------------------------------------------------------------------------------------
# Tiled inference with smooth blending
# ----------------------------------------------------------------------------------------------


def blend_window(size: int, overlap: int, taper_start: bool = True, taper_end: bool = True,
                 halo: int = 0) -> torch.Tensor:
    r"""1-D blending weights of a tile: 0 over the ``halo`` pixels at a tapered end, then a
    raised-cosine ramp over the next ``overlap - 2 halo`` pixels, 1 in between.

    .. math:: w_{\text{halo} + i} = \sin^2\left(\frac{\pi}{2} \cdot \frac{i + 1/2}{\text{overlap} - 2\,\text{halo}}\right),
              \quad 0 \le i < \text{overlap} - 2\,\text{halo}

    mirrored at the far end. Two neighbouring tiles that overlap by exactly ``overlap`` pixels
    then have ramps that are sin^2 and cos^2 of the same angle over the middle of the overlap,
    and 0 against 1 over its ends: their weights sum to 1 (a partition of unity), a function
    that is the same in both tiles comes out unchanged, and one that differs crosses over
    smoothly. The outputs within ``halo`` of a tile edge get no weight at all (the network saw
    zero padding there); the half-pixel offset keeps every ramp weight above 0.
    """
    if not 0 <= 2 * halo <= overlap:
        raise ValueError(f"halo must be in 0..overlap/2 = 0..{overlap // 2}, got {halo}.")
    w = torch.ones(size, dtype=torch.float64)
    ramp_length = overlap - 2 * halo
    ramp = torch.sin(math.pi / 2 * (torch.arange(ramp_length, dtype=torch.float64) + 0.5) / max(ramp_length, 1)) ** 2
    start = torch.cat([torch.zeros(halo, dtype=torch.float64), ramp])
    if overlap > 0:
        if taper_start:
            w[:overlap - halo] = start
        if taper_end:
            w[size - overlap + halo:] = torch.minimum(w[size - overlap + halo:], start.flip(0))
    return w.float()


def default_overlap(tile: int) -> int:
    """The default overlap of neighbouring tiles: 1/8 of the tile, rounded to an even number
    (8 pixels for 64-pixel tiles, 32 for 256). Proportional, so that the share of pixels
    computed twice, about ``1 - (7/8)^2`` = 23 %, is the same for every tile size."""
    return 2 * round(int(tile) * OVERLAP_FRACTION / 2)


def default_halo(overlap: int) -> int:
    """The halo of a model that states none (one whose receptive field covers any tile, such as
    the DDPM's U-Net with self-attention): a quarter of the overlap, so that each tile drops its
    outputs nearest an inner edge and the middle half of the overlap is blended."""
    return int(overlap) // 4


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of one (height, width) image go: the geometry of :func:`tiled_apply`.

    The image is padded at the bottom and right to a multiple of the network's size multiple,
    exactly as the whole-image pass pads it, to ``padded_h x padded_w``. Tiles of
    ``tile_h x tile_w`` lie inside that image: they start at every (starts_y, starts_x) pair,
    spread evenly from 0 to the far border, at multiples of the size multiple (the pooling grid of
    the whole image), and neighbours overlap by at least ``overlap`` pixels. An output pixel within
    ``halo`` of a tile edge that is inside the image gets no weight; image borders are never cut.
    """

    height: int
    width: int
    tile_h: int
    tile_w: int
    overlap: int
    halo: int
    starts_y: tuple[int, ...]
    starts_x: tuple[int, ...]
    padded_h: int
    padded_w: int

    @property
    def n_tiles(self) -> int:
        """Tiles per image."""
        return len(self.starts_y) * len(self.starts_x)

    @property
    def pixels(self) -> int:
        """Pixels the network processes per image (overlaps and padding included)."""
        return self.n_tiles * self.tile_h * self.tile_w


def plan_tiles(shape: Sequence[int], tile: int, overlap: int | None = None, multiple: int = 1,
               halo: int | None = None) -> TilePlan:
    """The :class:`TilePlan` of an image of ``shape`` (..., H, W).

    ``halo``: how far the network's output depends on its input (its receptive-field radius,
    e.g. ``Noise2Void.halo``); ``None`` for a model that states none (:func:`default_halo` of
    the overlap). ``overlap=None`` is :func:`default_overlap`, widened to ``2 * halo`` where the
    tile allows it: then every kept output saw all of its receptive field, and the tiled result
    equals the whole-image one. An axis no longer than the tile gets one tile of its padded
    length; ``tile`` must be a multiple of ``multiple``.
    """
    tile = check_positive_int(tile, "tile")
    multiple = check_positive_int(multiple, "multiple")
    if tile % multiple:
        raise ValueError(f"tile={tile} is not divisible by {multiple}, the model's size multiple; "
                         f"use a multiple of {multiple}, e.g. {max(multiple, tile // multiple * multiple)}.")
    if halo is not None and (isinstance(halo, bool) or int(halo) != halo or halo < 0):
        raise ValueError(f"halo must be a non-negative integer (pixels), got {halo!r}.")
    if overlap is None:
        overlap = default_overlap(tile)
        if halo is not None:
            overlap = min(max(overlap, 2 * int(halo)), tile - multiple)
    if isinstance(overlap, bool) or int(overlap) != overlap or not 0 <= overlap < tile:
        raise ValueError(f"overlap must be an integer in 0..tile-1 = 0..{tile - 1}, got {overlap!r}.")
    overlap = int(overlap)
    halo = default_halo(overlap) if halo is None else min(int(halo), overlap // 2)
    h, w = (int(s) for s in shape[-2:])
    padded_h, padded_w = h + pad_amount(h, multiple), w + pad_amount(w, multiple)
    # Origins on the pooling grid, unless the stride cannot hold one step of it (a network that
    # takes a single input size, whose tile is its size multiple: pix2pix).
    align = multiple if tile - overlap >= multiple else 1
    tile_h, tile_w = min(tile, padded_h), min(tile, padded_w)
    return TilePlan(h, w, tile_h, tile_w, overlap, halo, _tile_starts(padded_h, tile_h, overlap, align),
                    _tile_starts(padded_w, tile_w, overlap, align), padded_h, padded_w)


def _tile_starts(size: int, tile: int, overlap: int, align: int) -> tuple[int, ...]:
    """Tile origins along an axis of ``size`` pixels: the first at 0, the last ending at ``size``,
    the fewest tiles whose origins, spread evenly and rounded down to multiples of ``align``,
    overlap their neighbours by at least ``overlap`` pixels."""
    if size <= tile:
        return (0,)
    last = size - tile
    n = max(2, math.ceil((size - overlap) / (tile - overlap)))
    while True:
        starts = tuple(sorted({align * (i * last // ((n - 1) * align)) for i in range(n - 1)} | {last}))
        if all(b - a <= tile - overlap for a, b in zip(starts, starts[1:])):
            return starts
        n += 1


@torch.no_grad()
def tiled_apply(fn: Callable, image: torch.Tensor, tile: int = 256, overlap: int | None = None, batch_size: int = 4,
                progress: bool = True, multiple: int = 1, with_origins: bool = False,
                halo: int | None = None) -> torch.Tensor:
    """Apply a patch-wise ``fn`` to a large image in overlapping tiles and blend them seamlessly.

    image: (N, C, H, W), any H and W. ``fn`` maps a batch of tiles (B, C, th, tw) to a tensor
    (B, ..., th, tw) (any axes between the batch and the spatial ones, e.g. samples), so
    baselines and the diffusion sampler can share it. With ``with_origins=True`` it is called as
    ``fn(tiles, origins)`` with ``origins`` an int64 tensor (B, 3) of (image index, top, left) of
    each tile in the coordinates of the image, for position-dependent work such as the noise field.

    Geometry (:func:`plan_tiles`): the image is padded at the bottom and right to a multiple of
    ``multiple`` (the network's size multiple) by reflection, as the whole-image pass pads it, and
    covered by tiles that lie inside it, start on the pooling grid and overlap by at least
    ``overlap`` (default :func:`default_overlap`, 1/8 of the tile, widened to ``2 * halo``).
    Each tile's output is weighted by the separable :func:`blend_window`: 0 within ``halo`` of an
    edge inside the image, a ramp over the rest of the overlap, no taper at the image border. The
    weighted sum is divided by the sum of weights and the padding cropped off. A network whose
    output at a pixel depends only on inputs within ``halo`` pixels (its receptive field; e.g.
    ``Noise2Void.halo``) therefore gives the whole-image output exactly. Returns (N, ..., H, W)
    on the image's device. ``tile`` must be a multiple of ``multiple``.
    """
    check_image_batch(image, "image")
    n, _, h, w = image.shape
    plan = plan_tiles((h, w), tile, overlap, multiple, halo)
    batch_size = check_positive_int(batch_size, "batch_size")
    tile_h, tile_w, padded_h, padded_w = plan.tile_h, plan.tile_w, plan.padded_h, plan.padded_w
    padded = pad_reflect(image, 0, padded_h - h, 0, padded_w - w)

    origins = [(i, y, x) for i in range(n) for y in plan.starts_y for x in plan.starts_x]
    out = weight_sum = None
    bar = tqdm(total=len(origins), desc="tiles", unit="tile", disable=not progress or len(origins) < 2)
    for first in range(0, len(origins), batch_size):
        batch = origins[first:first + batch_size]
        tiles = torch.stack([padded[i, :, y:y + tile_h, x:x + tile_w] for i, y, x in batch])
        result = fn(tiles, torch.tensor(batch, dtype=torch.int64)) if with_origins else fn(tiles)
        if not isinstance(result, torch.Tensor) or result.shape[0] != len(batch) or \
                tuple(result.shape[-2:]) != (tile_h, tile_w):
            got = tuple(result.shape) if isinstance(result, torch.Tensor) else type(result).__name__
            raise ValueError(f"fn must map tiles {tuple(tiles.shape)} to a tensor (B, ..., {tile_h}, {tile_w}) "
                             f"with the same batch size and tile size, got {got}.")
        result = result.to(image.device, torch.float32)
        if out is None:
            out = torch.zeros(n, *result.shape[1:-2], padded_h, padded_w, device=image.device)
            weight_sum = torch.zeros(n, padded_h, padded_w, device=image.device)
        extra = (1,) * (result.ndim - 3)
        for k, (i, y, x) in enumerate(batch):
            wy = blend_window(tile_h, plan.overlap, taper_start=y > 0, taper_end=y + tile_h < padded_h,
                              halo=plan.halo)
            wx = blend_window(tile_w, plan.overlap, taper_start=x > 0, taper_end=x + tile_w < padded_w,
                              halo=plan.halo)
            window = (wy[:, None] * wx[None, :]).to(image.device)
            out[i, ..., y:y + tile_h, x:x + tile_w] += result[k] * window.reshape(*extra, tile_h, tile_w)
            weight_sum[i, y:y + tile_h, x:x + tile_w] += window
        bar.update(len(batch))
    bar.close()
    out = out / weight_sum.reshape(n, *(1,) * (out.ndim - 3), padded_h, padded_w)
    return out[..., :h, :w]
