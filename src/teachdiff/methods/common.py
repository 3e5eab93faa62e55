"""Small pieces shared by the benchmark models: input checks, padding to a size multiple, counts."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from teachdiff.core.tiling import pad_reflect
from teachdiff.methods.base import input_statistics

__all__ = ["check_images", "restore_padded", "count_parameters", "StandardizedInput"]


def check_images(x, name: str = "x") -> None:
    """Raise a clear ValueError unless ``x`` is a finite float tensor (N, 1, H, W)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (N, 1, H, W) in [-1, 1], got {type(x).__name__}; "
                         "convert NumPy images with teachdiff.data.to_model_range and torch.from_numpy.")
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"{name} must have shape (N, 1, H, W), got {tuple(x.shape)}; "
                         "use img[None, None] for one 2-D image.")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor scaled to [-1, 1], got dtype {x.dtype}.")


def restore_padded(network: nn.Module, x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Apply a fully convolutional ``network`` to images of any size.

    The input is mirror-padded on the bottom and right to a multiple of ``multiple`` (the
    network's total down-sampling factor), and the output cropped back: the network then sees
    plausible image content at the border instead of zeros.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    padded = pad_reflect(x, 0, pad_h, 0, pad_w) if pad_h or pad_w else x
    return network(padded)[..., :h, :w]


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class StandardizedInput:
    """For a method whose ``self.net`` should see z = (x - mean) / std, with the training inputs'
    statistics kept in its config (``input_mean``, ``input_std``; 0 and 1 mean no scaling)."""

    @torch.no_grad()
    def calibrate(self, items: list[dict]) -> None:
        """Set the input statistics from some training items (called by the trainer before step 0)."""
        mean, std = input_statistics(items)
        self.config = dataclasses.replace(self.config, input_mean=mean, input_std=std)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The network on the standardised input, mapped back to the input's scale: std * net(z) + mean
        (for CARE's residual network, x + std * f(z))."""
        mean, std = self.config.input_mean, self.config.input_std
        return self.net((x - mean) / std) * std + mean
