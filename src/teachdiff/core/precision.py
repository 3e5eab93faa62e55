"""Numerical precision: one policy per device, used by training and by sampling.

The policy (``precision="auto"``), in the spirit of PyTorch Lightning's precision plugins:

============================================  ==============================================
device                                        mode
============================================  ==============================================
CUDA, compute capability >= 8.0 with bf16     ``bf16``: bfloat16 autocast, TF32 matmuls and
(A100, H100, L4, RTX 30xx/40xx)               convolutions for what stays in float32
CUDA, compute capability < 8.0                ``fp16``: float16 autocast with a gradient scaler
(Colab's T4 is 7.5, V100 7.0)                 (these cards have no bfloat16 units)
CPU, MPS                                      ``fp32``
============================================  ==============================================

Autocast runs the convolutions and matmuls of the network in 16 bits and keeps the weights,
the optimizer, the loss and every sampler update in float32: the network's output is cast
back to float32 before the sampler touches it, so only the network's arithmetic is rounded.
float16 has 5 exponent bits (largest value 65504, smallest normal 6e-5): small gradients
underflow to zero, so the loss is multiplied by a scale S before ``backward`` and the
gradients divided by S before clipping and the optimizer step (:class:`torch.amp.GradScaler`;
a step whose gradients overflow is skipped and S halved). bfloat16 keeps float32's 8 exponent
bits and needs no scaler. The MP-U-Net clips its activations to +-256 (``UNetConfig.clip_act``),
well inside float16's range.

An explicit mode overrides the policy: ``TrainConfig.precision`` for a training run, and
:func:`set_precision` / :func:`use_precision` (what ``--precision`` sets) for sampling and for
training runs whose config says ``"auto"``. ``"fp32"`` also turns TF32 off: true float32, as
the authors' code ran.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from teachdiff.core.choices import PRECISIONS

from teachdiff.core.allocator import keep_freed_memory

__all__ = ["MODES", "Precision", "choose_mode", "resolve", "set_precision", "get_precision", "use_precision",
           "autocast", "TrainingPrecision", "prepare_network", "peak_tflops"]

MODES = PRECISIONS
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
_default_mode = "auto"


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"precision must be one of {', '.join(MODES)}, got {mode!r}.")
    return mode


def choose_mode(device: torch.device | str) -> str:
    """The automatic mode for a device (the table in the module docstring)."""
    device = torch.device(device)
    if device.type != "cuda":
        return "fp32"
    major, _ = torch.cuda.get_device_capability(device)
    return "bf16" if major >= 8 and torch.cuda.is_bf16_supported() else "fp16"


@dataclass(frozen=True)
class Precision:
    """A resolved choice: ``mode`` (fp32, bf16 or fp16) on ``device_type``, and whether float32
    matmuls and convolutions may use TF32 (CUDA, compute capability >= 8.0, mode not fp32)."""

    mode: str
    device_type: str
    tf32: bool = False

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES[self.mode]

    @property
    def needs_grad_scaler(self) -> bool:
        return self.mode == "fp16"

    def autocast(self):
        """``torch.autocast`` to this mode's dtype (a no-op context for fp32)."""
        return torch.autocast(device_type=self.device_type, dtype=self.dtype, enabled=self.mode != "fp32")

    def describe(self) -> str:
        scaler = " + GradScaler" if self.needs_grad_scaler else ""
        tf32 = ", TF32 on" if self.tf32 else ""
        return f"{self.mode}{' autocast' if self.mode != 'fp32' else ''}{scaler} on {self.device_type}{tf32}"


def resolve(mode: str = "auto", device: torch.device | str = "cpu") -> Precision:
    """The :class:`Precision` for ``device``. ``"auto"`` means the process default
    (:func:`set_precision`), and when that is ``"auto"`` too, :func:`choose_mode`.

    Also sets TF32 for CUDA float32 matmuls and convolutions (a process-wide switch in torch):
    on for compute capability >= 8.0 unless the mode is fp32.
    """
    device = torch.device(device)
    mode = _check_mode(mode)
    if mode == "auto":
        mode = _default_mode
    if mode == "auto":
        mode = choose_mode(device)
    if mode == "fp16" and device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 6:
        raise ValueError("precision fp16 needs a GPU of compute capability >= 6.0; use --precision fp32.")
    if mode == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"this GPU ({torch.cuda.get_device_name(device)}) has no bfloat16 support; use "
                         "--precision fp16 (or auto, which picks fp16 here).")
    tf32 = device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8 and mode != "fp32"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    return Precision(mode, device.type, tf32)


def set_precision(mode: str) -> None:
    """Set the process-wide default that ``"auto"`` resolves to (what ``--precision`` does);
    ``set_precision("auto")`` restores the per-device policy."""
    global _default_mode
    _default_mode = _check_mode(mode)


def get_precision() -> str:
    """The process-wide default mode set by :func:`set_precision` (``"auto"`` unless changed)."""
    return _default_mode


@contextlib.contextmanager
def use_precision(mode: str):
    """Run a block with another process-wide default mode, e.g. ``with use_precision("bf16"):``."""
    previous = get_precision()
    set_precision(mode)
    try:
        yield
    finally:
        set_precision(previous)


def autocast(device: torch.device | str, mode: str = "auto"):
    """The autocast context of the resolved mode for ``device`` (what the samplers wrap the
    network call in)."""
    return resolve(mode, device).autocast()


class TrainingPrecision:
    """The precision of one training run: autocast for the forward pass, and for fp16 a
    :class:`torch.amp.GradScaler` for the backward pass and the optimizer steps.

    One iteration, for any number of optimizers (a GAN has two)::

        with tp.autocast():
            loss = model(x, y)
        tp.backward(loss)                                     # (S * loss).backward()
        tp.step(optimizers, parameters, max_norm=1.0)         # unscale, clip, step
        ...                                                   # more backward/step pairs
        tp.update()                                           # once per iteration: adapt S

    With bf16 or fp32 the scaler is disabled and each call reduces to the plain one. Save
    :meth:`state_dict` with the checkpoint: S and its growth counter are part of the state an
    exact resume needs.
    """

    def __init__(self, precision: Precision):
        self.precision = precision
        self.scaler = torch.amp.GradScaler(precision.device_type, enabled=precision.needs_grad_scaler)

    def autocast(self):
        return self.precision.autocast()

    @contextlib.contextmanager
    def inference(self):
        """For validation and sample images: this run's mode also for the samplers' network
        calls (:func:`teachdiff.core.diffusion.predict_noise` follows the process-wide default)."""
        with use_precision(self.precision.mode), self.precision.autocast():
            yield

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self, optimizers, parameters=None, max_norm: float | None = None) -> None:
        """Unscale the gradients of ``optimizers``, clip ``parameters`` to ``max_norm`` (the true,
        unscaled norm), then step each optimizer (skipped by the scaler on inf/NaN gradients)."""
        optimizers = list(optimizers)
        if max_norm:
            for opt in optimizers:
                self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(list(parameters), max_norm)
        for opt in optimizers:
            self.scaler.step(opt)

    def update(self) -> None:
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state)


def prepare_network(module: torch.nn.Module, device: torch.device | str, compile: bool = False,
                    channels_last: bool = True, training: bool = True) -> torch.nn.Module:
    """Make a network fast on ``device``, in place; returns ``module``.

    - **Memory layout**: channels-last on CUDA (convolutions on tensor cores read it directly),
      and for inference (``training=False``) on the CPU too, where oneDNN's convolutions then run
      without reordering every input: issue 12's 512² restore with the quick DDPM took 86 s
      instead of 106 s on two cores (``benchmarks/results/restore_cpu.md``). CPU training keeps
      the default layout, so that rerunning a zoo model's training on the same CPU and torch
      reproduces its weights exactly (another layout sums in another order).
      ``channels_last=False``: the default layout everywhere.
    - **Allocator**, on the CPU: :func:`teachdiff.core.allocator.keep_freed_memory`, so a call reuses
      the memory of the last one instead of page-faulting it in afresh.
    - ``compile=True``: ``torch.compile`` of every direct submodule that holds parameters (the
      U-Net of the DDPM; generator and discriminator of pix2pix). ``nn.Module.compile`` works in
      place, so the state dict and the checkpoints keep their keys. For a GPU: on two CPU cores
      that 512² restore took 67 s with it (compilation included, its cache warm), 58 s without.
    """
    device = torch.device(device)
    if device.type == "cpu":
        keep_freed_memory()
    fast_layout = channels_last and (device.type == "cuda" or device.type == "cpu" and not training)
    module = module.to(memory_format=torch.channels_last if fast_layout else torch.contiguous_format)
    if compile:
        for child in module.children():
            if any(True for _ in child.parameters()):
                child.compile()
    return module


# Dense (no sparsity) tensor-core peaks in TFLOP/s from the vendors' data sheets, for MFU.
# fp32 without TF32 runs on the CUDA cores; "tf32" is the tensor-core rate for float32 inputs.
_PEAKS = {  # name fragment: {mode: TFLOP/s}
    "H200": {"bf16": 989, "fp16": 989, "tf32": 494, "fp32": 67},
    "H100": {"bf16": 989, "fp16": 989, "tf32": 494, "fp32": 67},
    "A100": {"bf16": 312, "fp16": 312, "tf32": 156, "fp32": 19.5},
    "L40S": {"bf16": 362, "fp16": 362, "tf32": 183, "fp32": 91.6},
    "L4": {"bf16": 121, "fp16": 121, "tf32": 60, "fp32": 30.3},
    "A10G": {"bf16": 70, "fp16": 70, "tf32": 35, "fp32": 31.2},
    "A10": {"bf16": 125, "fp16": 125, "tf32": 62.5, "fp32": 31.2},
    "V100": {"fp16": 125, "fp32": 15.7},
    "T4": {"fp16": 65, "fp32": 8.1},
}


def peak_tflops(device_name: str, mode: str) -> float | None:
    """The card's dense peak in TFLOP/s for ``mode`` (bf16, fp16, tf32 or fp32), or None for a
    card not in the table. Matched by name fragment, e.g. "Tesla T4" or "NVIDIA H200"."""
    for fragment, peaks in _PEAKS.items():
        if fragment.lower() in device_name.lower():
            return peaks.get(mode)
    return None
