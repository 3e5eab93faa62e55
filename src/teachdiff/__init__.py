"""teachdiff: conditional denoising diffusion models for microscopy image restoration.

The library behind the course. It reproduces Osuna-Vargas et al., "Denoising diffusion
models for high-resolution microscopy image restoration", WACV 2025.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__version__ = "0.1.0"

__all__ = ["device", "quick_mode", "capped_mode", "capped", "seed_everything", "__version__"]


def device(prefer: str | None = None) -> torch.device:
    """The best available device: CUDA if present, else Apple MPS, else CPU.

    Use this everywhere instead of hard-coding a CUDA device, so the same code runs on Colab, a
    laptop and CI.
    ``prefer`` ("cpu", "cuda", "cuda:1", "mps") forces a choice, e.g. for reproducible CPU tests;
    a name torch does not know, or a device this machine does not have, is a ``ValueError``
    that says which devices there are.
    """
    import torch  # here, not at the top: `teachdiff --help` must not pay for importing torch

    if prefer is not None:
        return _available_device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _available_device(name: str | torch.device) -> torch.device:
    """``torch.device(name)`` after checking that this machine has that device."""
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {str(name)!r}; teachdiff runs on cpu, cuda, cuda:N or mps, and this "
                         f"machine has: {_device_list()}.")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(name)!r} was asked for, but CUDA is not available on this machine "
                             f"(no NVIDIA GPU, or a CPU-only build of torch {torch.__version__}); "
                             f"valid devices are {_device_list()}.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(name)!r} does not exist: this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s); valid devices are {_device_list()}.")
    mps = getattr(torch.backends, "mps", None)
    if dev.type == "mps" and not (mps is not None and mps.is_available()):
        raise ValueError(f"device {str(name)!r} was asked for, but Apple MPS is not available on this machine; "
                         f"valid devices are {_device_list()}.")
    return dev


def _device_list() -> str:
    import torch

    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return ", ".join(names)


def _flag(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() in {"1", "true", "yes", "on"}


def quick_mode() -> bool:
    """True when ``TEACHDIFF_QUICK=1``: small images, small models, few epochs (CPU/CI)."""
    return _flag("TEACHDIFF_QUICK")


def capped_mode() -> bool:
    """True when ``TEACHDIFF_CAPPED=1``: CI's smoke run of the book's full mode on two CPU cores.

    Full mode at its own sizes -- 256² patches, the paper's networks, the ``colab`` presets, the
    full synthetic splits -- with the *counts* capped, so that every chapter runs to the end in
    a minute or two and a crash such as an index past the end of a split still happens.
    Nothing a notebook computes from the data (its constants, its splits, the shapes of its
    results) changes; the cap is honoured in these places only:

    - :func:`teachdiff.training.presets.train_preset`: one epoch of one step of batch 1, validation on one
      image with one DDIM step, no data-loader workers; :func:`teachdiff.training.config.runs_dir` keeps
      such runs in a ``capped`` subfolder, apart from real ones;
    - :func:`teachdiff.store.resolve.load_method` (so every trained or downloaded model): each network
      computes its output for the first image of its first call with a given input shape, and
      returns that output for every image of every later call with that shape;
    - :func:`teachdiff.inference.sampling.sample` and everything built on it (restore, tiles, reproduce):
      two sampler steps (the DDPM's on a schedule of T = 2), and only the first batch of
      (image, sample) pairs is sampled, the others copy it;
    - :class:`teachdiff.evaluation.reproduce.ReproduceConfig` presets: two test images, two samples;
    - and in a notebook wherever it says ``teachdiff.capped(n, cap)``.

    The numbers a capped run prints mean nothing; that it runs to the end is what it shows.
    """
    return _flag("TEACHDIFF_CAPPED")


def capped(n: int, cap: int) -> int:
    """``min(n, cap)`` under ``TEACHDIFF_CAPPED=1`` (:func:`capped_mode`), else ``n``: a count
    (steps, samples, images) that CI's capped run of full mode may shrink. Never use it for a
    size or a split, or the cap would hide the errors it is there to find."""
    return min(n, cap) if capped_mode() else n


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU ``torch.Generator`` seeded the same way."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
