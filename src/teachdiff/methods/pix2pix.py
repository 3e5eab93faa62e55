r"""pix2pix: a conditional GAN with a U-Net generator and a 70x70 PatchGAN (Isola et al., CVPR 2017).

Source followed: the authors' PyTorch code (``junyanz/pytorch-CycleGAN-and-pix2pix``: ``UnetGenerator``,
``NLayerDiscriminator``, ``Pix2PixModel``), which ZeroCostDL4Mic wraps and the paper used (§S3).
Re-written here.

Generator :math:`G`: a U-Net of ``n_down`` stride-2 4x4 convolutions (LeakyReLU 0.2) and as many
4x4 transposed convolutions (ReLU) with skip concatenations; channels ngf, 2ngf, 4ngf, then 8ngf;
dropout 0.5 in the 8ngf decoder levels next to the bottleneck (pix2pix's noise source); tanh
output in [-1, 1]. ``n_down`` = 8 is pix2pix's ``unet_256`` (1x1 bottleneck for 256² patches).

Discriminator :math:`D`: the 70x70 PatchGAN (``n_layers`` = 3): C64-C128-C256-C512 (4x4 convolutions,
stride 2, 2, 2, 1, LeakyReLU 0.2, no norm on C64) and a 4x4 convolution to one logit per patch.
It sees the input and an image together, ``D(x, y)``. Its receptive field is 70 pixels:
:func:`receptive_field` computes it from the layers, :math:`r_{l-1} = (r_l - 1) s_l + k_l`.

Objective (pix2pix, ``gan_mode="vanilla"``, :math:`\lambda = 100`):

.. math::
   \mathcal L_D = \tfrac12\big[\mathrm{BCE}(D(x, y), 1) + \mathrm{BCE}(D(x, G(x)), 0)\big], \qquad
   \mathcal L_G = \mathrm{BCE}(D(x, G(x)), 1) + \lambda \, \lVert y - G(x) \rVert_1 ,

one Adam step of :math:`D` then one of :math:`G` per batch, both Adam with betas (0.5, 0.999).

Normalisation: pix2pix's default is batch norm, trained with batch size 1 (§S3) and applied at
test time in training mode (pix2pix's ``test.py`` without ``--eval``). At batch size 1 that *is*
instance normalisation with learned affine parameters, which we use: it gives the same model
without restorations that depend on which other images share a batch.

Restoring: the U-Net's bottleneck is 1x1 only at its design size 2**n_down (256² for ``unet_256``,
which pix2pix trains and tests on), and instance normalisation of its deepest features behaves
differently on a larger input. :meth:`Pix2Pix.restore` therefore restores larger images in
overlapping tiles of that size (:func:`teachdiff.core.tiling.tiled_apply`), as the DDPM is restored in
tiles of its training patches. Whole 192² test patches through the 64² quick generator had a
median MAE of 9.85 on synthetic microtubules, the same patches in 64² tiles 5.53.

Parameter counts: ``unet_256`` generator (ngf 64) 54,407,809 (pix2pix's 54,413,955 for RGB, less
its 3-channel ends) and PatchGAN 2,764,609 (test: ``test_baselines.py``). The quick preset uses
ngf 16, ``n_down`` 6 and a 32-filter PatchGAN (receptive field still 70). The learning-rate
schedule is the trainer's cosine annealing instead of pix2pix's constant-then-linear decay.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from teachdiff.methods.common import check_images, restore_padded
from teachdiff.core.tiling import pad_reflect, tiled_apply
from teachdiff.methods.base import RestorationMethod
from teachdiff.core.precision import Precision, TrainingPrecision

__all__ = ["Pix2PixConfig", "UNetGenerator", "PatchDiscriminator", "Pix2Pix", "receptive_field"]


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True)


class UNetGenerator(nn.Module):
    """pix2pix's U-Net generator with ``n_down`` down-sampling levels (``unet_256``: 8)."""

    def __init__(self, n_down: int = 8, ngf: int = 64, channels: int = 1, dropout: bool = True):
        super().__init__()
        if n_down < 5:
            raise ValueError(f"the pix2pix U-Net needs n_down >= 5 (its outer levels have ngf..8ngf channels), "
                             f"got {n_down}.")
        self.n_down = n_down
        width = [ngf * min(2 ** level, 8) for level in range(n_down)]
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        for level in range(n_down):
            outermost, innermost = level == 0, level == n_down - 1
            layers = [] if outermost else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(channels if outermost else width[level - 1], width[level], 4, 2, 1, bias=False))
            if not (outermost or innermost):
                layers.append(_norm(width[level]))
            self.down.append(nn.Sequential(*layers))
        for level in range(n_down):
            outermost, innermost = level == 0, level == n_down - 1
            c_in = width[level] if innermost else 2 * width[level]
            c_out = channels if outermost else width[level - 1]
            layers = [nn.ReLU(), nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=outermost)]
            if outermost:
                layers.append(nn.Tanh())
            else:
                layers.append(_norm(c_out))
                if dropout and 4 <= level <= n_down - 2:  # pix2pix's num_downs - 5 8ngf blocks
                    layers.append(nn.Dropout(0.5))
            self.up.append(nn.Sequential(*layers))
        for m in self.modules():  # pix2pix's init_type "normal", gain 0.02
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def size_multiple(self) -> int:
        return 2 ** self.n_down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"the pix2pix U-Net with n_down={self.n_down} needs sides divisible by "
                             f"{self.size_multiple}, got {h}x{w}; Pix2Pix.restore() pads automatically.")
        skips, h_ = [], x
        for down in self.down:
            h_ = down(h_)
            skips.append(h_)
        h_ = self.up[-1](skips[-1])
        for level in reversed(range(self.n_down - 1)):
            h_ = self.up[level](torch.cat([skips[level], h_], dim=1))
        return h_


class PatchDiscriminator(nn.Module):
    """pix2pix's ``NLayerDiscriminator``: one real/fake logit per overlapping image patch."""

    def __init__(self, in_channels: int = 2, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = ndf
        for n in range(1, n_layers + 1):
            c_next = ndf * min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(c, c_next, 4, stride, 1, bias=False), _norm(c_next), nn.LeakyReLU(0.2)]
            c = c_next
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, y], dim=1))


def receptive_field(module: nn.Module) -> int:
    """Receptive field (pixels) of a chain of convolutions: :math:`r \\leftarrow (r - 1) s + k`, output to input.

    Valid for modules whose convolutions are applied one after the other (as in the PatchGAN).
    """
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(module).__name__} has no Conv2d layers; receptive_field needs a convolutional chain.")
    r = 1
    for conv in reversed(convs):
        k, s, d = conv.kernel_size[0], conv.stride[0], conv.dilation[0]
        r = (r - 1) * s + d * (k - 1) + 1
    return r


@dataclass
class Pix2PixConfig:
    """pix2pix defaults (``--netG unet_256 --netD basic --gan_mode vanilla --lambda_L1 100``)."""

    n_down: int = 8
    ngf: int = 64
    ndf: int = 64
    n_layers_d: int = 3
    dropout: bool = True
    lambda_l1: float = 100.0
    beta1: float = 0.5


class Pix2Pix(RestorationMethod):
    """pix2pix (``--model pix2pix``): generator and discriminator trained in alternation."""

    kind = "pix2pix"
    config_class = Pix2PixConfig
    custom_step = True
    training_only = ("discriminator",)

    def __init__(self, config: Pix2PixConfig | None = None):
        super().__init__(config or Pix2PixConfig())
        c = self.config
        self.generator = UNetGenerator(c.n_down, c.ngf, channels=1, dropout=c.dropout)
        self.discriminator = PatchDiscriminator(2, c.ndf, c.n_layers_d)

    def make_optimizers(self, lr, weight_decay):
        betas = (self.config.beta1, 0.999)
        return [torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas, weight_decay=weight_decay),
                torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)]

    def _generator_loss(self, x, y, fake):
        logits = self.discriminator(x, fake)
        gan = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        l1 = F.l1_loss(fake, y)
        return gan + self.config.lambda_l1 * l1, gan, l1

    def forward(self, x, y, generator=None, shard=(0, 1)):
        """The generator's objective :math:`\\mathcal L_G` (training itself runs :meth:`training_step`)."""
        if y is None:
            raise ValueError("pix2pix is supervised: forward(x, y) needs the target y.")
        return self._generator_loss(x, y, self.generator(x))[0]

    def training_step(self, x, y, optimizers, generator=None, amp=None):
        """One discriminator step, then one generator step (pix2pix's ``optimize_parameters``).

        ``amp`` (:class:`teachdiff.core.precision.TrainingPrecision`) runs the forward passes under
        autocast and the backward passes through its gradient scaler; one scaler serves both
        optimizers, as in PyTorch's AMP recipe for several optimizers (the losses are float32:
        autocast computes binary cross-entropy and L1 in float32)."""
        amp = amp or TrainingPrecision(Precision("fp32", x.device.type))
        opt_g, opt_d = optimizers
        with amp.autocast():
            fake = self.generator(x)
            self.discriminator.requires_grad_(True)
            real_logits, fake_logits = self.discriminator(x, y), self.discriminator(x, fake.detach())
            loss_d = 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        opt_d.zero_grad(set_to_none=True)
        amp.backward(loss_d)
        amp.step([opt_d])

        self.discriminator.requires_grad_(False)  # G's step must not accumulate gradients in D
        with amp.autocast():
            loss_g, gan, l1 = self._generator_loss(x, y, fake)
        opt_g.zero_grad(set_to_none=True)
        amp.backward(loss_g)
        amp.step([opt_g])
        self.discriminator.requires_grad_(True)
        if not (torch.isfinite(loss_g) and torch.isfinite(loss_d)):
            raise FloatingPointError(f"pix2pix losses became non-finite (G {loss_g.item()}, D {loss_d.item()}); "
                                     "lower the learning rate (--lr) or check the data for NaN.")
        return {"loss": loss_g.item(), "loss_d": loss_d.item(), "loss_gan": gan.item(), "loss_l1": l1.item()}

    @torch.no_grad()
    def restore(self, x, generator=None):
        """The generator on inputs of the size it was built for, 2**n_down (module docstring):
        larger images in overlapping tiles of that size, smaller ones mirror-padded to it."""
        check_images(x)
        tile = self.generator.size_multiple
        h, w = x.shape[-2:]
        if max(h, w) <= tile:
            return restore_padded(self.generator, x, tile).clamp(-1, 1)
        x = pad_reflect(x, 0, max(0, tile - h), 0, max(0, tile - w))  # a short side up to one tile
        return tiled_apply(self.generator, x, tile=tile, progress=False)[..., :h, :w].clamp(-1, 1)
