r"""Noise2Void: self-supervised blind-spot denoising from the noisy images alone (Krull et al., CVPR 2019).

Source followed: the authors' ``n2v`` package (TensorFlow/CSBDeep; the paper used it with its
defaults, §S3) and, for the choice of replacement pixels, CAREamics. Re-written in PyTorch.

Training never uses the target: :class:`Noise2Void` sets ``supervised = False``, so the shared
trainer passes ``y=None``, and :meth:`Noise2Void.forward` refuses a target. For each noisy patch
``x``:

1. *Stratified blind spots* (n2v's ``get_stratified_coords2D``): the patch is tiled into boxes
   of side :math:`b = \mathrm{round}(\sqrt{100 / p})` for a masked percentage ``p`` (n2v's default
   ``n2v_perc_pix`` = 0.198 %, so b = 22 and about 8 pixels of a 64² patch), and one pixel
   :math:`i` is drawn uniformly in each box.
2. *Uniform neighbour replacement*: :math:`\tilde x_i = x_{i + \delta}`, :math:`\delta` uniform in
   the :math:`(2r+1)^2` window of radius ``r`` = 5 (n2v's ``n2v_neighborhood_radius``) minus its
   centre; at the borders the window is shifted inside the image as in n2v. n2v's default ``uniform_withCP`` also
   allows :math:`\delta = 0` (probability 1/121); we exclude it as CAREamics does, since copying
   the pixel itself is the identity shortcut the blind spot is there to prevent.
3. *Loss on the blind spots only* (n2v's default ``mse``):
   :math:`\mathcal L = \frac{1}{|M|}\sum_{i \in M} (f_\theta(\tilde x)_i - x_i)^2`.

Prediction is :math:`f_\theta(x)` on the unmasked image. Because the expected value of a noisy
pixel given its neighbours is the *low-dose* clean signal, N2V removes noise but cannot learn a
change of intensity, resolution or modality (dose, confocal → Airyscan): on such data its raw MAE
to the target stays high until outputs are rescaled to the GT distribution (the paper does this
before scoring, §3.6; :func:`teachdiff.evaluation.metrics.clip_and_rescale`).

Network: the CSBDeep U-Net of :mod:`teachdiff.methods.care` with n2v's configuration
(``N2VConfig``: depth 2, 32 first filters, batch norm, *no* residual connection; kernel 3 as in
the n2v 2-D examples). Parameter count with the defaults: 333,185 (incl. batch-norm affine
parameters; test: ``test_baselines.py``).

Input normalisation as in n2v: the network sees :math:`(x - \mu_x) / \sigma_x` with the mean and
standard deviation of the training inputs (:meth:`Noise2Void.calibrate`, stored in the config), and
its output is mapped back by the inverse.

Paper settings (§S3): 100 epochs, batch size 32, initial learning rate 2e-4, n2v's best state by
its validation loss. Model selection here must not look at the GT either: the presets validate
only after the last epoch (``val_every`` larger than any number of epochs), so the kept weights
are the final ones and the validation MAE is a report, not a choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from teachdiff.methods.care import CSBDeepMethod, CSBDeepUNet


__all__ = ["N2VConfig", "Noise2Void", "blind_spot_coords", "mask_blind_spots", "masked_mse"]


@dataclass
class N2VConfig:
    """n2v's 2-D defaults."""

    depth: int = 2
    base_filters: int = 32
    kernel_size: int = 3
    batch_norm: bool = True
    masked_percentage: float = 0.198  # n2v_perc_pix, in percent of the patch's pixels
    neighborhood_radius: int = 5  # n2v_neighborhood_radius: replacement window (2r + 1)²
    input_mean: float = 0.0  # training-set statistics of x, set by Noise2Void.calibrate (n2v's means/stds)
    input_std: float = 1.0

    def __post_init__(self):
        if not 0 < self.masked_percentage <= 100:
            raise ValueError(f"masked_percentage is a percentage in (0, 100], got {self.masked_percentage}.")
        if self.neighborhood_radius < 1:
            raise ValueError(f"neighborhood_radius must be >= 1, got {self.neighborhood_radius}.")
        if not self.input_std > 0:
            raise ValueError(f"input_std must be positive, got {self.input_std}.")


def blind_spot_coords(n: int, height: int, width: int, masked_percentage: float,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stratified random pixels: one per box of side round(sqrt(100 / p)) that falls inside the image.

    Returns (batch index, row, column) as 1-D long tensors of equal length.
    """
    box = max(1, round(math.sqrt(100.0 / masked_percentage)))
    rows, cols = math.ceil(height / box), math.ceil(width / box)
    offsets = torch.randint(0, box, (n, rows, cols, 2), generator=generator)
    r = torch.arange(rows).view(1, rows, 1) * box + offsets[..., 0]
    c = torch.arange(cols).view(1, 1, cols) * box + offsets[..., 1]
    b = torch.arange(n).view(n, 1, 1).expand(n, rows, cols)
    inside = (r < height) & (c < width)
    return b[inside], r[inside], c[inside]


def mask_blind_spots(x: torch.Tensor, masked_percentage: float = 0.198, radius: int = 5,
                     generator: torch.Generator | None = None):
    """Replace stratified random pixels of ``x`` by a uniformly chosen neighbour (centre excluded).

    The neighbour is drawn from the (2r+1)² window around the pixel, shifted to lie inside the
    image at the borders (n2v's ``get_subpatch``). Returns ``(x_tilde, (b, r, c))``: the
    manipulated copy and the blind-spot coordinates.
    """
    n, _, h, w = x.shape
    if h * w < 2:
        raise ValueError(f"Noise2Void needs patches of at least 2 pixels, got {h}x{w}.")
    b, r, c = blind_spot_coords(n, h, w, masked_percentage, generator)
    side_h, side_w = min(2 * radius + 1, h), min(2 * radius + 1, w)
    top, left = (r - radius).clamp(0, h - side_h), (c - radius).clamp(0, w - side_w)
    centre = (r - top) * side_w + (c - left)
    k = torch.randint(0, side_h * side_w - 1, (len(b),), generator=generator)
    k = k + (k >= centre).long()  # every window position but the centre, uniformly
    rr, cc = top + k // side_w, left + k % side_w
    b, r, c, rr, cc = (t.to(x.device) for t in (b, r, c, rr, cc))
    x_tilde = x.clone()
    x_tilde[b, 0, r, c] = x[b, 0, rr, cc]
    return x_tilde, (b, r, c)


def masked_mse(pred: torch.Tensor, x: torch.Tensor, coords) -> torch.Tensor:
    """Mean squared error between prediction and noisy input on the blind spots only."""
    b, r, c = coords
    return (pred[b, 0, r, c] - x[b, 0, r, c]).pow(2).mean()


class Noise2Void(CSBDeepMethod):
    """Self-supervised Noise2Void (``--model n2v``): trained on the noisy inputs only."""

    kind = "n2v"
    config_class = N2VConfig
    supervised = False

    def __init__(self, config: N2VConfig | None = None):
        super().__init__(config or N2VConfig())
        c = self.config
        self.net = CSBDeepUNet(c.depth, c.base_filters, c.kernel_size, convs_per_level=2, batch_norm=c.batch_norm,
                               residual=False, glorot=False)  # PyTorch's initialisation, as CAREamics

    def forward(self, x, y=None, generator=None, shard=(0, 1)):
        if y is not None:
            raise ValueError("Noise2Void is self-supervised and must never see the target: call forward(x, None) "
                             "(the trainer does so because Noise2Void.supervised is False).")
        x_tilde, coords = mask_blind_spots(x, self.config.masked_percentage, self.config.neighborhood_radius,
                                           generator)
        return masked_mse(self.predict(x_tilde), x, coords)
