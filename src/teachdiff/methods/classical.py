r"""Classical references that need no training: Gaussian filtering and non-local means (scikit-image).

They give every results table a floor that anyone can reproduce on a laptop in seconds. Both work
on the library's image format, (N, 1, H, W) tensors in [-1, 1], like ``RestorationMethod.restore``,
and filter each image on its own.

- Gaussian filter: :math:`\hat y = G_\sigma * x` (``skimage.filters.gaussian``, mirrored borders).
  Default :math:`\sigma` = 1.5 px.
- Non-local means (Buades et al., CVPR 2005; ``skimage.restoration.denoise_nl_means``, fast mode):
  each pixel becomes a weighted mean of pixels whose 5x5 neighbourhoods look alike within a 13x13
  search window, weights :math:`\exp(-\max(d^2 - 2\sigma^2, 0) / h^2)`. The noise level
  :math:`\sigma` is estimated per image by :func:`estimate_noise_sigma` and the filter strength
  is :math:`h = k\sigma` with scikit-image's recommended :math:`k` = 0.8 by default.

"Sensible defaults" are only defaults: :meth:`GaussianFilter.fit` and :meth:`NonLocalMeans.fit`
choose :math:`\sigma` or :math:`k` on *validation* pairs by the lowest MAE (0..255 scale), as a
user tuning a filter by eye on a few images would. Neither filter can change the intensity scale
(low dose → high dose): on such data only the GT rescaling before scoring (paper §3.6) helps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from skimage.filters import gaussian
from skimage.restoration import denoise_nl_means

from teachdiff.core.scale import to_display_range
from teachdiff.methods.common import check_images

__all__ = ["gaussian_restore", "nlm_restore", "estimate_noise_sigma", "GaussianFilter", "NonLocalMeans"]


def _per_image(x: torch.Tensor, fn) -> torch.Tensor:
    check_images(x)
    images = x.detach().cpu().double().numpy()[:, 0]
    out = np.stack([fn(img) for img in images])[:, None]
    return torch.from_numpy(out).to(dtype=x.dtype, device=x.device).clamp(-1, 1)


def gaussian_restore(x: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Gaussian-filter each image of ``x`` (N, 1, H, W) with standard deviation ``sigma`` pixels."""
    if not sigma > 0:
        raise ValueError(f"sigma must be a positive number of pixels, got {sigma}.")
    return _per_image(x, lambda img: gaussian(img, sigma=sigma, mode="reflect", preserve_range=True))


def estimate_noise_sigma(image: np.ndarray) -> float:
    r"""Standard deviation of white noise in a 2-D image: Donoho's wavelet MAD estimator.

    :math:`\hat\sigma = \mathrm{median}(|HH|) / 0.6745` over the finest diagonal Haar detail
    coefficients :math:`HH = (a - b - c + d) / 2` of the 2x2 blocks: smooth structure cancels in
    them, white noise keeps its variance. (``skimage.restoration.estimate_sigma`` does the same
    with a db2 wavelet but needs PyWavelets, which the library does not otherwise need.)
    """
    img = np.asarray(image, dtype=np.float64)
    h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
    if h == 0 or w == 0:
        raise ValueError(f"estimate_noise_sigma needs an image of at least 2x2 pixels, got {img.shape}.")
    a, b, c, d = img[0:h:2, 0:w:2], img[0:h:2, 1:w:2], img[1:h:2, 0:w:2], img[1:h:2, 1:w:2]
    return float(np.median(np.abs(a - b - c + d) / 2) / 0.6745)


def nlm_restore(x: torch.Tensor, h_factor: float = 0.8, patch_size: int = 5, patch_distance: int = 6) -> torch.Tensor:
    """Non-local means of each image of ``x`` with ``h = h_factor * sigma_estimated``."""
    if not h_factor > 0:
        raise ValueError(f"h_factor must be positive, got {h_factor}.")

    def denoise(img):
        sigma = estimate_noise_sigma(img)
        if sigma == 0:  # a noise-free (e.g. constant) image: nothing to remove
            return img
        return denoise_nl_means(img, h=h_factor * sigma, sigma=sigma, patch_size=patch_size,
                                patch_distance=patch_distance, fast_mode=True)

    return _per_image(x, denoise)


def _mae_255(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(np.abs(np.clip(pred, 0, 255) - gt).mean())


def _best(candidates: Sequence[float], restore, x: torch.Tensor, y: torch.Tensor, objective=None) -> float:
    """The candidate whose restoration of ``x`` scores lowest by ``objective(pred, gt)`` (both on the
    0..255 scale, (N, H, W)); by default the MAE of the clipped output. A filter that is scored after
    a post-processing must be tuned with it (pass the same post-processing inside ``objective``)."""
    if len(candidates) == 0:
        raise ValueError("give at least one candidate parameter value.")
    check_images(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}.")
    objective = objective or _mae_255
    gt = to_display_range(y[:, 0]).cpu().numpy()
    scores = [objective(to_display_range(restore(x, c)[:, 0]).cpu().numpy(), gt) for c in candidates]
    return float(candidates[int(np.argmin(scores))])


@dataclass
class GaussianFilter:
    """``restore``-only method: Gaussian filter of standard deviation ``sigma`` (pixels)."""

    sigma: float = 1.5
    name: str = "Gaussian"

    def restore(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return gaussian_restore(x, self.sigma)

    @classmethod
    def fit(cls, x_val: torch.Tensor, y_val: torch.Tensor,
            sigmas: Sequence[float] = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0), objective=None) -> "GaussianFilter":
        """The sigma with the lowest validation ``objective`` (default: MAE; see :func:`_best`)."""
        return cls(_best(sigmas, gaussian_restore, x_val, y_val, objective))


@dataclass
class NonLocalMeans:
    """``restore``-only method: non-local means with ``h = h_factor * sigma_estimated``."""

    h_factor: float = 0.8
    patch_size: int = 5
    patch_distance: int = 6
    name: str = "NLM"

    def restore(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return nlm_restore(x, self.h_factor, self.patch_size, self.patch_distance)

    @classmethod
    def fit(cls, x_val: torch.Tensor, y_val: torch.Tensor,
            h_factors: Sequence[float] = (0.4, 0.6, 0.8, 1.0, 1.2, 1.6, 2.0), objective=None) -> "NonLocalMeans":
        """The h factor with the lowest validation ``objective`` (default: MAE; see :func:`_best`)."""
        return cls(_best(h_factors, nlm_restore, x_val, y_val, objective))
