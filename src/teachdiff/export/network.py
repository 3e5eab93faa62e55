"""The network inside a BioImage Model Zoo package: what a consumer (bioimageio.core, deepImageJ,
napari) calls on a tile, in the network range [-1, 1].

The package's ``pytorch_state_dict`` weights name this class as their architecture
(``teachdiff.export.network:PackagedModel``), so the installed teachdiff builds the model and no
code is copied into the package. The intensity mapping between a capture and [-1, 1] is not in
here: the package states it as pre- and post-processing (``teachdiff.export.package``).

A baseline (CARE, Noise2Void, UNet-RCAN, pix2pix) is its own ``restore``: one output. The DDPM
returns two outputs, DDPM-avg and the per-pixel standard deviation of its samples, drawn with
teachdiff's fast default sampler (:data:`teachdiff.inference.sampling.FAST_SAMPLING`) from a
:class:`teachdiff.core.noise.NoiseField` with a fixed seed, so a tile always gives the same result.
"""

from __future__ import annotations

import torch
from torch import nn

import teachdiff
from teachdiff.core import precision
from teachdiff.core.capping import cap_network_calls
from teachdiff.core.diffusion import ddim_sample
from teachdiff.core.noise import NoiseField
from teachdiff.core.tiling import pad_reflect
from teachdiff.inference.settings import FAST_SAMPLING
from teachdiff.methods.base import build_method

__all__ = ["PackagedModel"]


class PackagedModel(nn.Module):
    r"""A trained teachdiff method as a function of the tile alone: ``forward(x)``, x (N, 1, H, W)
    in [-1, 1].

    Baselines: ``method.restore(x)``, (N, 1, H, W) in [-1, 1].

    DDPM (``kind="ddpm"``): ``samples`` runs of stochastic DDIM with ``steps`` steps and ``eta``
    (default :data:`~teachdiff.inference.sampling.FAST_SAMPLING`: 8 x DDIM-10, eta = 1, 80 network calls per
    tile), all of one tile in one batch; returns ``(mean, std)``, each (N, 1, H, W) in the
    network range, with the population standard deviation of Eq. 15,

    .. math:: \sigma = \sqrt{\tfrac{1}{S}\textstyle\sum_{i=1}^{S} (\hat y^i - \bar{\hat y})^2}.

    The noise of sample i at pixel (r, c) of a tile is that of image 0, sample i, at (r, c) of
    the :class:`~teachdiff.core.noise.NoiseField` of ``seed``: the same for every tile and every
    position in a batch, so an image restored whole equals
    ``teachdiff.inference.restore.restore(..., tile=None, seed=seed)`` of the same setting. Sides that are
    not a multiple of the U-Net's size multiple are mirror-padded and cropped back; the network
    runs in float32 on every device, so the result does not depend on a GPU's autocast.
    """

    def __init__(self, kind: str, method_config: dict, samples: int = FAST_SAMPLING.samples,
                 steps: int = FAST_SAMPLING.steps, eta: float = FAST_SAMPLING.eta, seed: int = 0):
        super().__init__()
        self.kind = kind
        self.method = build_method(kind, method_config)
        for name in self.method.training_only:  # a GAN's discriminator: restoring never uses it
            delattr(self.method, name)
        self.samples, self.steps, self.eta, self.seed = int(samples), int(steps), float(eta), int(seed)
        if teachdiff.capped_mode():  # CI's run of full mode: cheap network calls (teachdiff.core.capping)
            cap_network_calls(self.method)

    def forward(self, x: torch.Tensor):
        if self.kind != "ddpm":
            return self.method.restore(x)
        return self._ddpm_avg(x)

    def _ddpm_avg(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        unet, schedule = self.method.unet, self.method.schedule
        n, _, h, w = x.shape
        m = unet.config.size_multiple
        padded = pad_reflect(x, 0, (-h) % m, 0, (-w) % m)
        s = self.samples
        zeros = torch.zeros(n * s, dtype=torch.int64, device=x.device)
        which = torch.arange(s, device=x.device).repeat(n)  # ddim_sample's order: image-major
        keys = NoiseField(self.seed).keys(zeros, which, unet.config.target_channels, zeros, zeros,
                                          padded.shape[2], padded.shape[3])
        with precision.use_precision("fp32"):
            runs = ddim_sample(unet, padded, schedule, steps=self.steps, n_samples=s, eta=self.eta,
                               clip=self.method.config.clip,
                               noise=lambda step: NoiseField.normal(keys, step, padded.dtype))
        runs = runs[..., :h, :w]  # (N, S, C, H, W)
        return runs.mean(dim=1), runs.std(dim=1, correction=0)
