r"""CARE: content-aware image restoration with the CSBDeep U-Net (Weigert et al., Nat. Methods 2018).

Source followed: the CSBDeep package (``csbdeep.internals.blocks.unet_block``,
``csbdeep.nets.custom_unet`` and the defaults of ``csbdeep.models.Config``), re-written in PyTorch.
The paper trained CARE through ZeroCostDL4Mic, which wraps CSBDeep with those defaults.

Network (``CSBDeepUNet``, CSBDeep's 2-D defaults): depth 2, 32 filters in the first level, doubled
per level, 2 convolutions of 5x5 per level with ReLU, 2x2 max-pooling, nearest-neighbour
up-sampling and concatenation with the skip, a 1x1 linear output convolution, and a *residual*
output (the network predicts a correction of its input):

.. math::  \hat y = x + f_\theta(x), \qquad
           \mathcal L = \frac1N \sum_i |\hat y_i - y_i| \quad (\text{MAE, CSBDeep's default}).

The widths are CSBDeep's: the last convolution of the bottleneck and of each decoder level halves
the channels before up-sampling. Parameter count with the defaults: 922,977 (test:
``test_baselines.py``). Images must have sides divisible by ``2**depth`` = 4 for the network;
:meth:`CARE.restore` mirror-pads any other size.

Input normalisation: the network sees the standardised input :math:`z = (x - \mu_x) / \sigma_x`
and its output is mapped back, :math:`\hat y = \sigma_x (z + f_\theta(z)) + \mu_x`, with the mean and
standard deviation of the training inputs (:meth:`CARE.calibrate`, stored in the config). This is
CAREamics' normalisation; CSBDeep normalises each image by its percentiles instead, which throws
away the absolute intensity that a change of dose must recover. Without either, low-dose inputs
that span a few percent of [-1, 1] left the network stuck at a constant correction with the MAE
loss (validation MAE flat at 10.7 on synthetic microtubules; 5.9 with it after 300 steps).

Paper settings (§S3): 1000 epochs, batch size 8, initial learning rate 4e-4, best state by
validation (the ``paper`` preset of ``teachdiff.training.presets``). CSBDeep uses Adam with ReduceLROnPlateau; the
shared trainer uses Adam(W, no weight decay) with cosine annealing, and keeps the best state by
validation MAE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from teachdiff.methods.common import StandardizedInput, check_images, restore_padded
from teachdiff.methods.base import RestorationMethod

__all__ = ["CSBDeepUNet", "CAREConfig", "CARE"]


def _conv_block(c_in: int, c_out: int, kernel_size: int, batch_norm: bool, glorot: bool) -> nn.Sequential:
    """CSBDeep's ``conv_block2``: 'same' convolution, optional batch norm, ReLU."""
    conv = nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=not batch_norm)
    if glorot:
        _glorot(conv)
    layers = [conv] + ([nn.BatchNorm2d(c_out)] if batch_norm else []) + [nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _glorot(conv: nn.Conv2d) -> None:
    nn.init.xavier_uniform_(conv.weight)  # Keras' glorot_uniform, as in CSBDeep
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class CSBDeepUNet(nn.Module):
    """The U-Net of CSBDeep (used by CARE and Noise2Void); output = input + correction if ``residual``.

    ``glorot``: start from CSBDeep's Glorot-uniform weights (CARE), else from PyTorch's default,
    1.4-2.4x smaller ones, as CAREamics does (Noise2Void). Under Adam the smaller weights turn
    faster: in a short budget Noise2Void, whose loss sees ~0.2 % of the pixels, learns much more
    with them, CARE, whose loss sees every pixel, slightly less (``benchmarks/results/n2v_factors.md``,
    ``careamics.md``); over a full budget with its learning rate swept both come out level.
    """

    def __init__(self, depth: int = 2, base_filters: int = 32, kernel_size: int = 5, convs_per_level: int = 2,
                 batch_norm: bool = False, residual: bool = True, channels: int = 1, glorot: bool = True):
        super().__init__()
        if depth < 1 or convs_per_level < 1 or base_filters < 1 or kernel_size % 2 == 0:
            raise ValueError(f"CSBDeepUNet needs depth >= 1, convs_per_level >= 1, base_filters >= 1 and an odd "
                             f"kernel_size; got depth={depth}, convs_per_level={convs_per_level}, "
                             f"base_filters={base_filters}, kernel_size={kernel_size}.")
        self.depth, self.residual = depth, residual
        self.kernel_size, self.convs_per_level = kernel_size, convs_per_level

        def width(level: int) -> int:
            return base_filters * 2 ** level

        self.down = nn.ModuleList()
        c = channels
        for n in range(depth):
            convs = []
            for _ in range(convs_per_level):
                convs.append(_conv_block(c, width(n), kernel_size, batch_norm, glorot))
                c = width(n)
            self.down.append(nn.Sequential(*convs))
        middle = [_conv_block(c if i == 0 else width(depth), width(depth), kernel_size, batch_norm, glorot)
                  for i in range(convs_per_level - 1)]
        c = width(depth) if convs_per_level > 1 else c
        middle.append(_conv_block(c, width(max(0, depth - 1)), kernel_size, batch_norm, glorot))
        self.middle = nn.Sequential(*middle)
        c = width(max(0, depth - 1))
        self.up = nn.ModuleList()
        for n in reversed(range(depth)):
            c += width(n)  # concatenated skip
            convs = []
            for _ in range(convs_per_level - 1):
                convs.append(_conv_block(c, width(n), kernel_size, batch_norm, glorot))
                c = width(n)
            convs.append(_conv_block(c, width(max(0, n - 1)), kernel_size, batch_norm, glorot))
            c = width(max(0, n - 1))
            self.up.append(nn.Sequential(*convs))
        self.out = nn.Conv2d(c, channels, 1)
        if glorot:
            _glorot(self.out)

    @property
    def size_multiple(self) -> int:
        return 2 ** self.depth

    @property
    def receptive_radius(self) -> int:
        r"""How far (in pixels) an output pixel can depend on the input: an upper bound on the
        receptive-field radius, the halo a tile must drop at an edge inside the image.

        A k x k convolution at scale :math:`s = 2^n` adds :math:`\lfloor k/2 \rfloor s`; a 2x max
        pooling from scale s and a nearest up-sampling to scale s add s each (the window and the
        rounding of the position). With c convolutions per level and depth d:
        :math:`c \lfloor k/2 \rfloor (2^d + 2 (2^d - 1)) + 2 (2^d - 1)`, e.g. 26 for
        Noise2Void (k = 3, c = 2, d = 2) and 46 for CARE (k = 5).
        """
        convs = self.convs_per_level * (self.kernel_size // 2)
        levels = 2 ** self.depth - 1  # sum of the scales 2^n, n < depth
        return convs * (2 ** self.depth + 2 * levels) + 2 * levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"CSBDeepUNet of depth {self.depth} needs height and width divisible by "
                             f"{self.size_multiple}, got {h}x{w}; crop or pad the image "
                             "(the methods' restore() pads automatically).")
        skips, h_ = [], x
        for level in self.down:
            h_ = level(h_)
            skips.append(h_)
            h_ = F.max_pool2d(h_, 2)
        h_ = self.middle(h_)
        for level, skip in zip(self.up, reversed(skips)):
            h_ = level(torch.cat([F.interpolate(h_, scale_factor=2, mode="nearest"), skip], dim=1))
        out = self.out(h_)
        return x + out if self.residual else out


@dataclass
class CAREConfig:
    """CSBDeep's 2-D CARE defaults."""

    depth: int = 2
    base_filters: int = 32
    kernel_size: int = 5
    convs_per_level: int = 2
    batch_norm: bool = False
    residual: bool = True
    loss: str = "mae"  # CSBDeep: "mae" (default) or "mse"
    input_mean: float = 0.0  # training-set statistics of x, set by CARE.calibrate (0, 1: none)
    input_std: float = 1.0

    def __post_init__(self):
        if self.loss not in ("mae", "mse"):
            raise ValueError(f"CARE loss must be 'mae' or 'mse', got {self.loss!r}.")
        if not self.input_std > 0:
            raise ValueError(f"input_std must be positive, got {self.input_std}.")


class CSBDeepMethod(StandardizedInput, RestorationMethod):
    """What CARE and Noise2Void share: a :class:`CSBDeepUNet` (``self.net``) on standardised
    inputs, restored in one pass padded to the network's size multiple."""

    @torch.no_grad()
    def restore(self, x, generator=None):
        check_images(x)
        return restore_padded(self.predict, x, self.net.size_multiple).clamp(-1, 1)

    @property
    def size_multiple(self) -> int:
        """Image sides the network takes (``restore`` pads to it); tiles start on this grid."""
        return self.net.size_multiple

    @property
    def halo(self) -> int:
        """Pixels of context an output needs (the U-Net's receptive-field radius): tiles
        overlapping by twice this give the whole-image restoration (:func:`teachdiff.core.tiling.tiled_apply`)."""
        return self.net.receptive_radius


class CARE(CSBDeepMethod):
    """Supervised CARE (``--model care``): a residual CSBDeep U-Net trained with the MAE to the target."""

    kind = "care"
    config_class = CAREConfig

    def __init__(self, config: CAREConfig | None = None):
        super().__init__(config or CAREConfig())
        c = self.config
        self.net = CSBDeepUNet(c.depth, c.base_filters, c.kernel_size, c.convs_per_level, c.batch_norm, c.residual)

    def forward(self, x, y, generator=None, shard=(0, 1)):
        if y is None:
            raise ValueError("CARE is supervised: forward(x, y) needs the target y.")
        pred = self.predict(x)
        return F.l1_loss(pred, y) if self.config.loss == "mae" else F.mse_loss(pred, y)
