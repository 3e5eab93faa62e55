"""The conditional DDPM as a restoration method (the paper's model)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import torch
from teachdiff.core.diffusion import NoiseSchedule, data_parallel_draws, ddim_sample, ddpm_sample, training_loss
from teachdiff.core.unet import MPUNet, UNetConfig
from teachdiff.methods.base import RestorationMethod, input_statistics

__all__ = ["DiffusionConfig", "DiffusionMethod"]


@dataclass
class DiffusionConfig:
    """The conditional DDPM: network, schedule, training and validation options."""

    unet: UNetConfig = field(default_factory=UNetConfig.paper)
    T: int = 200
    s: float = 8e-3
    continuous_noise: bool = True  # gamma ~ U(alpha_bar_t, alpha_bar_{t-1}) as in the authors' code
    clip: bool = True  # clamp the y0-estimate to [-1, 1] while sampling (authors' code)
    variance: str = "beta"  # Eq. 7 as written; "posterior" for the authors' code
    val_steps: int = 10  # DDIM steps of the cheap deterministic sampler used for validation MAE

    @classmethod
    def from_dict(cls, d: dict) -> "DiffusionConfig":
        d = dict(d)
        d["unet"] = UNetConfig.from_dict(d["unet"]) if isinstance(d.get("unet"), dict) else d.get("unet", UNetConfig())
        return cls(**d)


class DiffusionMethod(RestorationMethod):
    """The paper's conditional DDPM with the MP-U-Net (``--model ddpm``)."""

    kind = "ddpm"
    config_class = DiffusionConfig
    stochastic = True

    def __init__(self, config: DiffusionConfig | None = None):
        super().__init__(config or DiffusionConfig())
        self.unet = MPUNet(self.config.unet)
        self.schedule = NoiseSchedule(T=self.config.T, s=self.config.s)

    @property
    def denoiser(self) -> MPUNet:
        """The noise-prediction network eps_theta(x, y_t, gamma) that every sampler calls."""
        return self.unet

    def sampler_options(self) -> dict:
        """How the samplers must run this model, as it was trained: ``clip`` the y_0 estimate to
        [-1, 1], and the ``variance`` of Eq. 7 (beta_t as written, or the posterior's)."""
        return {"clip": self.config.clip, "variance": self.config.variance}

    @property
    def input_channels(self) -> int:
        return self.unet.config.cond_channels

    @property
    def training_patch_size(self) -> int:
        return self.unet.config.image_size

    @torch.no_grad()
    def calibrate(self, items: list[dict]) -> None:
        """Measure mean and standard deviation of the inputs x of some training items (the
        trainer passes 64); the U-Net standardises x with them. Called once before step 0."""
        mean, std = input_statistics(items)
        self.unet.cond_mean.fill_(mean)
        self.unet.cond_std.fill_(std)

    def forward(self, x, y, generator=None, shard=(0, 1)):
        return training_loss(self.unet, x, y, self.schedule, continuous=self.config.continuous_noise,
                             generator=data_parallel_draws(generator, shard))

    @torch.no_grad()
    def restore(self, x, generator=None, sampler: str = "ddim", steps: int | None = None):
        """One sample per input, (N, C, H, W): DDIM with ``val_steps`` steps by default, or the full
        ancestral sampler with ``sampler="ddpm"``.

        Deliberately not the restoration default (:data:`teachdiff.inference.settings.FAST_SAMPLING`,
        a mean of samples): this is the trainer's validation sampler, one cheap sample that is
        deterministic given the generator, so that validation MAE moves only with the weights."""
        if sampler == "ddpm":
            out = ddpm_sample(self.unet, x, self.schedule, clip=self.config.clip, variance=self.config.variance,
                              generator=generator)
        else:
            out = ddim_sample(self.unet, x, self.schedule, steps=steps or self.config.val_steps,
                              clip=self.config.clip, generator=generator)
        return out[:, 0]

    def config_dict(self) -> dict:
        d = dataclasses.asdict(self.config)
        d["unet"] = self.config.unet.to_dict()
        return d
