"""Restoration methods: the one interface that the trainer, the CLI and the reports use.

A method is an ``nn.Module`` that knows how to compute its training loss and how to restore an
image. The conditional DDPM (``kind="ddpm"``) lives here; the benchmark models (CARE, Noise2Void,
pix2pix, UNet-RCAN) live in ``teachdiff.methods`` and plug into the same trainer.

Images are (N, C, H, W) float tensors in [-1, 1]: x the low-quality input, y the target.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import ClassVar
import torch

from teachdiff.core.choices import MODEL_KINDS
from torch import nn

__all__ = ["input_statistics", "RestorationMethod", "METHOD_MODULES", "method_class", "build_method"]


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
    released checkpoint (``teachdiff.store.zoo.export_checkpoint``) leaves them out.

    Restoring a whole image (``teachdiff.inference.restore.restore_method_image``) asks a method what
    it is, never its ``kind``: a ``stochastic`` method draws samples of p(y | x) and gives
    DDPM-avg with uncertainty maps; it provides ``denoiser`` (the network eps_theta the samplers
    call), ``schedule`` (the noise schedule {alpha_t}) and ``sampler_options()``. Any other method
    restores once, with ``restore(x)``.
    """

    kind: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    supervised: ClassVar[bool] = True
    custom_step: ClassVar[bool] = False
    training_only: ClassVar[tuple[str, ...]] = ()
    stochastic: ClassVar[bool] = False

    def __init__(self, config):
        super().__init__()
        self.config = config

    def forward(self, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator | None = None,
                shard: tuple[int, int] = (0, 1)) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def restore(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    @property
    def input_channels(self) -> int:
        """Channels of the input x the network reads: 1, grayscale, unless the network says otherwise."""
        return 1

    @property
    def training_patch_size(self) -> int | None:
        """The side of the training patches where the network records it (the DDPM's U-Net is built
        for one, ``image_size``), else None: the data card, when there is one, says it for every method."""
        return None

    def make_optimizers(self, lr: float, weight_decay: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=weight_decay)]

    def training_step(self, x, y, optimizers, generator=None, amp=None) -> dict[str, float]:
        """One optimisation step of a ``custom_step`` method. ``amp`` is the run's
        :class:`teachdiff.core.precision.TrainingPrecision`: run the forward passes under
        ``amp.autocast()`` and replace ``loss.backward(); opt.step()`` by ``amp.backward(loss);
        amp.step([opt])`` (the trainer calls ``amp.update()`` once after the whole step)."""
        raise NotImplementedError(f"{type(self).__name__} sets custom_step but has no training_step")

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)


# Where each --model lives; imported on demand so the core never needs the baselines.
METHOD_MODULES = {kind: f"teachdiff.methods.{kind}" for kind in MODEL_KINDS}


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
