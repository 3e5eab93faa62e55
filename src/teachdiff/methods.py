"""Restoration methods: the one interface that the trainer, the CLI and the reports use.

A method is an ``nn.Module`` that knows how to compute its training loss and how to restore an
image. The conditional DDPM (``kind="ddpm"``) lives here; the benchmark models (CARE, Noise2Void,
pix2pix, UNet-RCAN) live in ``teachdiff.baselines`` and plug into the same trainer.

Images are (N, C, H, W) float tensors in [-1, 1]: x the low-quality input, y the target.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from teachdiff.diffusion import NoiseSchedule, data_parallel_draws, ddim_sample, ddpm_sample, training_loss
from teachdiff.unet import MPUNet, UNetConfig

__all__ = ["RestorationMethod", "DiffusionConfig", "DiffusionMethod", "METHOD_MODULES", "method_class",
           "build_method", "input_statistics"]


@torch.no_grad()
def input_statistics(items: list[dict]) -> tuple[float, float]:
    """Mean and standard deviation of the inputs ``x`` of some training items (the trainer passes
    64 to a method's ``calibrate``). Models standardise their input with them, as n2v and
    CAREamics do with the training set's mean and std: low-dose inputs often span a few percent
    of [-1, 1], too small a signal for a freshly initialised network to pick up."""
    xs = torch.stack([item["x"] for item in items]).double()
    return xs.mean().item(), max(xs.std().item(), 1e-3)


class RestorationMethod(nn.Module):
    """Base class of every trainable restoration model.

    Subclasses set ``kind`` (the name used by ``--model``), a ``config_class`` dataclass, and
    implement ``forward(x, y, generator, shard) -> loss`` and ``restore(x, generator) -> image``.
    ``forward`` computes the training loss so that ``DistributedDataParallel`` can wrap the
    method directly. Set ``supervised = False`` for methods that must never see the target
    (Noise2Void: the trainer then passes ``y=None``). A method with several optimizers (a GAN)
    sets ``custom_step = True`` and implements ``training_step`` (mixed precision included).
    ``training_only`` names submodules that restoring never uses (a GAN's discriminator): a
    released checkpoint (``teachdiff.zoo.export_checkpoint``) leaves them out.
    """

    kind: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    supervised: ClassVar[bool] = True
    custom_step: ClassVar[bool] = False
    training_only: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config):
        super().__init__()
        self.config = config

    def forward(self, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator | None = None,
                shard: tuple[int, int] = (0, 1)) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def restore(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def make_optimizers(self, lr: float, weight_decay: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=weight_decay)]

    def training_step(self, x, y, optimizers, generator=None, amp=None) -> dict[str, float]:
        """One optimisation step of a ``custom_step`` method. ``amp`` is the run's
        :class:`teachdiff.precision.TrainingPrecision`: run the forward passes under
        ``amp.autocast()`` and replace ``loss.backward(); opt.step()`` by ``amp.backward(loss);
        amp.step([opt])`` (the trainer calls ``amp.update()`` once after the whole step)."""
        raise NotImplementedError(f"{type(self).__name__} sets custom_step but has no training_step")

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)


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

    def __init__(self, config: DiffusionConfig | None = None):
        super().__init__(config or DiffusionConfig())
        self.unet = MPUNet(self.config.unet)
        self.schedule = NoiseSchedule(T=self.config.T, s=self.config.s)

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
        """One sample per input, (N, C, H, W): DDIM with ``val_steps`` steps by default (cheap and
        deterministic given the generator), or the full ancestral sampler with ``sampler="ddpm"``."""
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


# Where each --model lives; imported on demand so the core never needs the baselines.
METHOD_MODULES = {
    "ddpm": "teachdiff.methods",
    "care": "teachdiff.baselines.care",
    "n2v": "teachdiff.baselines.n2v",
    "pix2pix": "teachdiff.baselines.pix2pix",
    "rcan": "teachdiff.baselines.rcan",
}


def method_class(kind: str) -> type[RestorationMethod]:
    if kind not in METHOD_MODULES:
        raise ValueError(f"unknown model {kind!r}; choose one of {sorted(METHOD_MODULES)}.")
    module = importlib.import_module(METHOD_MODULES[kind])
    for obj in vars(module).values():
        if isinstance(obj, type) and issubclass(obj, RestorationMethod) and obj.kind == kind:
            return obj
    raise ValueError(f"module {METHOD_MODULES[kind]} defines no RestorationMethod with kind={kind!r}.")


def build_method(kind: str, config: dict | object | None = None) -> RestorationMethod:
    """Instantiate a method from its kind and a config (dataclass, dict, or None for defaults)."""
    cls = method_class(kind)
    if isinstance(config, dict):
        from_dict = getattr(cls.config_class, "from_dict", None)
        config = from_dict(config) if from_dict else cls.config_class(**config)
    return cls(config)
