"""LPIPS with AlexNet (Zhang et al., CVPR 2018), as the paper computed it with torchmetrics.

LPIPS needs two downloads that a bare install may lack: torchvision's ImageNet AlexNet weights
(fetched by torchvision on first use) and the LPIPS linear-layer weights (shipped inside
torchmetrics and the ``lpips`` package). When either is missing we do not crash and we never fall
back to a different network: :func:`lpips` returns ``nan`` and warns once per process with the fix.

Input convention: a grey image on the 0..255 scale is mapped to [-1, 1] (x / 127.5 - 1, the
range LPIPS was trained on) and repeated on the 3 colour channels AlexNet expects.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import torch

from teachdiff.evaluation.metrics._checks import MetricWarning, as_pair

LpipsNetwork = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A network ``net(a, b) -> distances``: ``a``, ``b`` are (N, 3, H, W) in [-1, 1]; one value per image."""

ENABLE_HINT = (
    "install torchvision and lpips matching your torch (e.g. on Colab: pip install torchvision lpips) "
    "and allow the one-time download of the AlexNet weights"
)

_network: LpipsNetwork | None = None
_unavailable_reason: str | None = None
_warned = False


class LPIPSUnavailableWarning(MetricWarning):
    """LPIPS could not be computed here (no torchvision or no weights): scores are ``nan``."""


def lpips(pred, gt, net: LpipsNetwork | None = None) -> float:
    """LPIPS distance with AlexNet between two grey images on the 0..255 scale, lower is better.

    0 for identical images. ``net`` replaces the AlexNet-LPIPS network (tests, other backbones);
    by default the network is built once per process from torchmetrics (or the ``lpips``
    package). Returns ``nan`` with a single ``LPIPSUnavailableWarning`` per process when it
    cannot be built.
    """
    pred_array, gt_array = as_pair(pred, gt)
    return float(_lpips(pred_array[None], gt_array[None], net)[0])


def lpips_batch(preds, gts, net: LpipsNetwork | None = None) -> np.ndarray:
    """LPIPS for stacks of images (N, H, W) on the 0..255 scale; one value per pair."""
    if len(preds) != len(gts):
        raise ValueError(
            f"got {len(preds)} predictions but {len(gts)} ground truths; pass one of each per pair."
        )
    pairs = [as_pair(pred, gt) for pred, gt in zip(preds, gts)]
    if not pairs:
        raise ValueError("lpips_batch got no images; pass stacks of shape (N, H, W) with N >= 1.")
    return _lpips(np.stack([pred for pred, _ in pairs]), np.stack([gt for _, gt in pairs]), net)


def _lpips(preds_array: np.ndarray, gts_array: np.ndarray, net: LpipsNetwork | None) -> np.ndarray:
    """LPIPS of already checked float64 stacks (N, H, W)."""
    if net is None:
        net = get_lpips_network()
        if net is None:
            return np.full(len(preds_array), np.nan)
    with torch.no_grad():
        distances = net(_to_lpips_input(preds_array), _to_lpips_input(gts_array))
    return distances.detach().to("cpu", torch.float64).reshape(len(preds_array)).numpy()


def get_lpips_network() -> LpipsNetwork | None:
    """The AlexNet-LPIPS network, built on first use; ``None`` (after one warning) if unavailable."""
    global _network, _unavailable_reason, _warned
    if _network is None and _unavailable_reason is None:
        try:
            _network = _load_alexnet_lpips()
        except Exception as err:  # noqa: BLE001 - any failure (import, download, weights) means "n/a"
            _unavailable_reason = f"{type(err).__name__}: {err}"
    if _network is None:
        if not _warned:
            _warned = True
            warnings.warn(
                f"LPIPS (AlexNet) is unavailable ({_unavailable_reason}); LPIPS scores are reported "
                f"as nan (n/a). To enable it, {ENABLE_HINT}.",
                LPIPSUnavailableWarning,
                stacklevel=3,
            )
        return None
    return _network


def _load_alexnet_lpips() -> LpipsNetwork:
    """torchmetrics' AlexNet LPIPS (what the paper used), else the reference ``lpips`` package."""
    try:
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        module = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=False).net
    except Exception as torchmetrics_error:  # noqa: BLE001
        try:
            import lpips as lpips_package  # the reference implementation, same AlexNet weights

            module = lpips_package.LPIPS(net="alex", verbose=False)
        except Exception as package_error:  # noqa: BLE001
            raise RuntimeError(
                f"torchmetrics: {torchmetrics_error}; lpips package: {package_error}"
            ) from package_error
    module.eval()
    return lambda a, b: module(a, b)


def _to_lpips_input(images: np.ndarray) -> torch.Tensor:
    scaled = torch.from_numpy(images).float() / 127.5 - 1.0
    return scaled[:, None].expand(-1, 3, -1, -1).contiguous()


def _reset_for_tests() -> None:
    """Forget the cached network and the warned flag (tests only)."""
    global _network, _unavailable_reason, _warned
    _network, _unavailable_reason, _warned = None, None, False
