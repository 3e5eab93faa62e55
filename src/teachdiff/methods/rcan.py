r"""UNet-RCAN: a U-Net followed by a residual channel-attention network (Ebrahimi et al., Commun. Biol. 2023).

Source followed: the authors' TensorFlow code (``vebrahimi1990/UNet_RCAN_Denoising``:
``model/UNet_RCAN_2D.py``, ``config/config_2D.py``, ``loss.py``), re-written in PyTorch. (The
paper cites it as [10]; the channel-attention blocks come from RCAN, Zhang et al., ECCV 2018,
as used for microscopy by Chen et al., Nat. Methods 2021.)

Stage 1, U-Net :math:`u = U(x)`: encoder levels of residual conv blocks (two 3x3 convolutions
and a 1x1 projection of the block input, LeakyReLU 0.3 = Keras' default), 2x2 max-pooling, a
two-block bridge at twice the last width, and a decoder that up-samples, passes the skip through
a channel-attention block, concatenates and applies a residual conv block. Output: one channel.
The reference ends this stage with a LeakyReLU, harmless for its [0, 1] images; ours are in
[-1, 1], so the last layer is a linear 1x1 convolution.

Stage 2, RCAN :math:`\hat y = R([u, x])` on the U-Net output concatenated with the input: a 3x3
convolution to ``features`` channels, ``n_groups`` residual groups of ``n_blocks`` residual
channel-attention blocks (RCAB), each

.. math::  h \leftarrow h + \mathrm{CA}(\mathrm{conv}(\mathrm{lrelu}(\mathrm{conv}(h)))), \quad
           \mathrm{CA}(z) = z \cdot \sigma\big(W_2\, \mathrm{lrelu}(W_1\, \overline{z})\big)

(:math:`\overline z` = global average over the image, :math:`W_1` reduces to ``attention_channels``),
a convolution and a skip around each group and around the whole trunk, then a 1x1 convolution
to one channel.

Loss (reference ``loss_2D``), applied to *both* stages against the same target as in the
reference's two-output Keras model: :math:`\mathcal L(p, y) = C(p, y) + 0.05\, C(\Delta p, \Delta y)`
with the per-image Charbonnier-type term :math:`C(p, y) = \sqrt{\mathrm{mean}((p - y)^2) + 10^{-6}}`
and :math:`\Delta` the 3x3 Laplacian (valid convolution); total :math:`\mathcal L(u, y) + \mathcal L(\hat y, y)`.

Reference configuration (the ``paper`` preset): U-Net widths 64-128-256 (bridge 512), 3 residual
groups of 8 RCABs with 64 features and 4 attention channels, dropout 0.2; 16,684,270 parameters
(test: ``test_baselines.py``). Paper settings (§S3): at most 200 epochs, lr 1e-4, batch size 1,
best state by validation. The reference also stops early and lowers the learning rate on
plateaus; the shared trainer uses cosine annealing and keeps the best validation state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from teachdiff.methods.common import check_images, restore_padded
from teachdiff.methods.base import RestorationMethod

__all__ = ["RCANConfig", "UNetRCANNetwork", "UNetRCAN", "unet_rcan_loss"]

_SLOPE = 0.3  # Keras' LeakyReLU default, used throughout the reference


def _conv(c_in: int, c_out: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=k // 2)


class ResidualConvBlock(nn.Module):
    """Reference ``CNN_block``: lrelu(conv(lrelu(conv(x))) + proj(x))."""

    def __init__(self, c_in: int, c_out: int, k: int = 3):
        super().__init__()
        self.conv1, self.conv2, self.proj = _conv(c_in, c_out, k), _conv(c_out, c_out, k), _conv(c_in, c_out, 1)

    def forward(self, x):
        h = self.conv2(F.leaky_relu(self.conv1(x), _SLOPE))
        return F.leaky_relu(h + self.proj(x), _SLOPE)


class RCAB(nn.Module):
    """Residual channel-attention block (reference ``CAB``): x + CA(conv(lrelu(conv(x))))."""

    def __init__(self, channels: int, attention_channels: int, k: int = 3):
        super().__init__()
        self.conv1, self.conv2 = _conv(channels, channels, k), _conv(channels, channels, k)
        self.squeeze, self.excite = _conv(channels, attention_channels, 1), _conv(attention_channels, channels, 1)

    def forward(self, x):
        h = self.conv2(F.leaky_relu(self.conv1(x), _SLOPE))
        z = h.mean(dim=(2, 3), keepdim=True)
        z = torch.sigmoid(self.excite(F.leaky_relu(self.squeeze(z), _SLOPE)))
        return x + h * z


class ResidualGroup(nn.Module):
    def __init__(self, channels: int, n_blocks: int, attention_channels: int, k: int = 3):
        super().__init__()
        self.blocks = nn.Sequential(*[RCAB(channels, attention_channels, k) for _ in range(n_blocks)])
        self.conv = _conv(channels, channels, k)

    def forward(self, x):
        return x + self.conv(self.blocks(x))


class UNetStage(nn.Module):
    """Stage 1 of UNet-RCAN: the reference's U-Net with channel attention on the skips."""

    def __init__(self, widths: tuple[int, ...], attention_channels: int, k: int, dropout: float, channels: int = 1):
        super().__init__()
        self.encoder = nn.ModuleList()
        c = channels
        for w in widths:
            self.encoder.append(ResidualConvBlock(c, w, k))
            c = w
        self.bridge = nn.Sequential(ResidualConvBlock(c, 2 * c, k), ResidualConvBlock(2 * c, 2 * c, k))
        c = 2 * c
        self.skip_attention, self.decoder = nn.ModuleList(), nn.ModuleList()
        for w in reversed(widths):
            self.skip_attention.append(RCAB(w, attention_channels, k))
            self.decoder.append(ResidualConvBlock(c + w, w, k))
            c = w
        self.out = _conv(c, channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        skips, h = [], x
        for block in self.encoder:
            h = self.dropout(block(h))
            skips.append(h)
            h = F.max_pool2d(h, 2)
        h = self.bridge(h)
        for attention, block, skip in zip(self.skip_attention, self.decoder, reversed(skips)):
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = self.dropout(block(torch.cat([h, attention(skip)], dim=1)))
        return self.out(h)


class RCANStage(nn.Module):
    """Stage 2: residual-in-residual channel-attention network on [U-Net output, input]."""

    def __init__(self, features: int, n_groups: int, n_blocks: int, attention_channels: int, k: int,
                 dropout: float, in_channels: int = 2, channels: int = 1):
        super().__init__()
        self.head = _conv(in_channels, features, k)
        self.groups = nn.ModuleList(ResidualGroup(features, n_blocks, attention_channels, k) for _ in range(n_groups))
        self.trunk_conv = _conv(features, features, k)
        self.tail = _conv(features, channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        h0 = self.head(x)
        h = h0
        for group in self.groups:
            h = self.dropout(group(h))
        return self.tail(h0 + self.trunk_conv(h))


class UNetRCANNetwork(nn.Module):
    """Both stages; returns (U-Net output u, final output y_hat)."""

    def __init__(self, widths=(64, 128, 256), attention_channels=4, n_groups=3, n_blocks=8, kernel_size=3,
                 dropout=0.2):
        super().__init__()
        widths = tuple(sorted(widths))
        self.n_levels = len(widths)
        self.unet = UNetStage(widths, attention_channels, kernel_size, dropout)
        self.rcan = RCANStage(widths[0], n_groups, n_blocks, attention_channels, kernel_size, dropout)

    @property
    def size_multiple(self) -> int:
        return 2 ** self.n_levels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = x.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"UNet-RCAN with {self.n_levels} U-Net levels needs sides divisible by "
                             f"{self.size_multiple}, got {h}x{w}; UNetRCAN.restore() pads automatically.")
        u = self.unet(x)
        return u, self.rcan(torch.cat([u, x], dim=1))


_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)


def _charbonnier(p: torch.Tensor, y: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return ((p - y).pow(2).flatten(1).mean(1) + eps).sqrt().mean()


def unet_rcan_loss(pred: torch.Tensor, y: torch.Tensor, edge_weight: float = 0.05) -> torch.Tensor:
    """Reference ``loss_2D``: per-image root-mean-square error plus 0.05 x the same on Laplacians."""
    lap = _LAPLACIAN.to(pred)
    return _charbonnier(pred, y) + edge_weight * _charbonnier(F.conv2d(pred, lap), F.conv2d(y, lap))


@dataclass
class RCANConfig:
    """The reference's ``config_2D`` model section."""

    widths: tuple[int, ...] = (64, 128, 256)
    attention_channels: int = 4
    n_groups: int = 3
    n_blocks: int = 8
    kernel_size: int = 3
    dropout: float = 0.2
    edge_weight: float = 0.05

    def __post_init__(self):
        self.widths = tuple(int(w) for w in self.widths)
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"widths must be a non-empty list of positive channel counts, got {self.widths}.")


class UNetRCAN(RestorationMethod):
    """UNet-RCAN (``--model rcan``): supervised, two stages, both trained against the target."""

    kind = "rcan"
    config_class = RCANConfig

    def __init__(self, config: RCANConfig | None = None):
        super().__init__(config or RCANConfig())
        c = self.config
        self.net = UNetRCANNetwork(c.widths, c.attention_channels, c.n_groups, c.n_blocks, c.kernel_size, c.dropout)

    def forward(self, x, y, generator=None, shard=(0, 1)):
        if y is None:
            raise ValueError("UNet-RCAN is supervised: forward(x, y) needs the target y.")
        u, y_hat = self.net(x)
        return unet_rcan_loss(u, y, self.config.edge_weight) + unet_rcan_loss(y_hat, y, self.config.edge_weight)

    @torch.no_grad()
    def restore(self, x, generator=None):
        check_images(x)
        return restore_padded(lambda t: self.net(t)[1], x, self.net.size_multiple).clamp(-1, 1)

    @property
    def size_multiple(self) -> int:
        """Image sides the network takes (``restore`` pads to it); tiles start on this grid. No
        ``halo``: the channel attention averages over the whole tile."""
        return self.net.size_multiple
