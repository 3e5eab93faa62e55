r"""Pixel-wise and structural fidelity metrics of the paper (§S2, Eqs. 8–11), on the 0..255 scale.

With ground truth :math:`y` and prediction :math:`\hat y` (both :math:`H \times W`):

- MAE   (Eq. 8):  :math:`\frac{1}{HW}\sum |y - \hat y|`
- NRMSE (Eq. 9):  :math:`\sqrt{\mathrm{MSE}(y, \hat y)} / \bar y`
- PSNR  (Eq. 10): :math:`10 \log_{10} (L^2 / \mathrm{MSE})` with the fixed :math:`L = 255`
- Pearson correlation :math:`\rho = \mathrm{cov}(y, \hat y) / (\sigma_y \sigma_{\hat y})`
- MS-SSIM (Eq. 11 over 5 scales, Wang et al. 2003) via torchmetrics.

Every function takes ``(pred, gt)`` -- NumPy arrays or torch tensors, 2-D -- and returns a float.
Where a metric is undefined (NRMSE with a zero-mean GT, Pearson with a constant image) it
returns ``nan`` and warns with the reason (``MetricWarning``).
"""

from __future__ import annotations

import numpy as np
import torch

from teachdiff.evaluation.metrics._checks import as_pair, warn_undefined

DATA_RANGE = 255.0
"""L in Eq. 10: the maximum possible pixel value of the 0..255 scale."""

MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Per-scale exponents of MS-SSIM (Wang et al. 2003), finest scale first; torchmetrics' default."""


def mae(pred, gt) -> float:
    """Mean absolute error (Eq. 8), lower is better; 0 for identical images."""
    return _mae(*as_pair(pred, gt))


def nrmse(pred, gt) -> float:
    """Root mean squared error divided by the mean of the ground truth (Eq. 9), lower is better.

    Undefined (``nan`` with a warning) when the ground truth's mean is 0, e.g. an empty patch.
    Same as ``skimage.metrics.normalized_root_mse(gt, pred, normalization="mean")``.
    """
    return _nrmse(*as_pair(pred, gt))


def psnr(pred, gt) -> float:
    """Peak signal-to-noise ratio in dB (Eq. 10) with the fixed data range L = 255, higher is better.

    ``inf`` for identical images (MSE = 0). The data range is the paper's L = 255, the maximum
    value of the 0..255 scale, for every image. The authors' released code instead took the
    data range from the *prediction* (its max - min), so each image was scored against a
    different peak: a method that predicts dimmer or lower-contrast images got a lower PSNR for
    the same squared error, and one that adds a bright outlier pixel got a higher one. Fixing
    L makes the scores comparable across images and methods. Same as
    ``skimage.metrics.peak_signal_noise_ratio(gt, pred, data_range=255)``.
    """
    return _psnr(*as_pair(pred, gt))


def pearson(pred, gt) -> float:
    """Pearson correlation coefficient between the pixel values, higher is better; 1 when identical.

    Undefined (``nan`` with a warning) when either image is constant (zero variance).
    """
    return _pearson(*as_pair(pred, gt))


def ms_ssim(pred, gt, scales: int = 5) -> float:
    """Multi-scale structural similarity (Wang et al. 2003) via torchmetrics, higher is better.

    Settings: Gaussian window 11 x 11 with sigma 1.5, ``k1 = 0.01``, ``k2 = 0.03``, fixed
    ``data_range = 255`` (as for PSNR; torchmetrics would otherwise take it from the images),
    5 scales with the standard exponents ``MS_SSIM_BETAS``. Computed in float32 like a usual
    torchmetrics call (about 10x faster on CPU than float64; the difference is ~1e-6).

    Negative contrast-structure terms. At each scale MS-SSIM raises a contrast-structure term
    ``cs`` to a fractional power; ``cs`` is negative for anti-correlated patches (possible for
    dark, noisy microscopy backgrounds) and a negative number to a fractional power is NaN. We
    use torchmetrics' ``normalize="relu"`` (its default, hence what the paper's torchmetrics
    v1.3.1 computed): negative terms are clamped to 0, so such a pair scores 0 instead of NaN.
    ``normalize="simple"`` ((x + 1) / 2) would change every score, including well-behaved ones.

    Size limit. Each of the ``scales - 1`` down-samplings halves the image, and the 11 x 11
    window must still fit at the coarsest scale: 5 scales need a side of at least 176 pixels
    (torchmetrics' check; 256 x 256 patches pass). Smaller images raise a ``ValueError``; pass
    ``scales`` < 5 to score them anyway with the first ``scales`` exponents renormalised to sum
    to 1 (a documented deviation: such numbers are not comparable with the paper's).
    """
    return _ms_ssim(*as_pair(pred, gt), scales=scales)


def ms_ssim_min_size(scales: int = 5, kernel_size: int = 11) -> int:
    """Smallest image side that torchmetrics' MS-SSIM accepts with ``scales`` scales."""
    divisor = max(1, scales - 1) ** 2
    return max(2**scales, kernel_size * divisor)


def _mae(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - gt)))


def _nrmse(pred: np.ndarray, gt: np.ndarray) -> float:
    mean_gt = float(gt.mean())
    if mean_gt == 0.0:
        return warn_undefined("NRMSE", "the ground truth has mean 0 (nothing to normalise by)")
    return float(np.sqrt(np.mean((pred - gt) ** 2)) / mean_gt)


def _psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    mse = float(np.mean((pred - gt) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(DATA_RANGE**2 / mse))


def _pearson(pred: np.ndarray, gt: np.ndarray) -> float:
    pred_centred = pred - pred.mean()
    gt_centred = gt - gt.mean()
    denominator = np.sqrt(np.sum(pred_centred**2) * np.sum(gt_centred**2))
    if denominator == 0.0:
        return warn_undefined("Pearson correlation", "an image is constant (zero variance)")
    return float(np.sum(pred_centred * gt_centred) / denominator)


def _ms_ssim(pred: np.ndarray, gt: np.ndarray, scales: int = 5) -> float:
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

    if not 1 <= scales <= len(MS_SSIM_BETAS):
        raise ValueError(f"scales must be between 1 and {len(MS_SSIM_BETAS)}, got {scales}.")
    min_side = ms_ssim_min_size(scales)
    if min(gt.shape) < min_side:
        raise ValueError(
            f"MS-SSIM with {scales} scales and an 11x11 window needs images of at least "
            f"{min_side}x{min_side} pixels, got {gt.shape[0]}x{gt.shape[1]}; score larger crops "
            "(the paper uses 256x256) or pass scales=<fewer> (not comparable with the paper)."
        )
    betas = np.asarray(MS_SSIM_BETAS[:scales])
    betas = tuple(float(b) for b in betas / betas.sum()) if scales < len(MS_SSIM_BETAS) else MS_SSIM_BETAS
    value = multiscale_structural_similarity_index_measure(
        torch.from_numpy(pred).float()[None, None],
        torch.from_numpy(gt).float()[None, None],
        gaussian_kernel=True,
        sigma=1.5,
        kernel_size=11,
        data_range=DATA_RANGE,
        betas=betas,
        normalize="relu",
    )
    return float(value)
