"""teachdiff: conditional denoising diffusion models for microscopy image restoration.

The library behind the course. It reproduces Osuna-Vargas et al., "Denoising diffusion
models for high-resolution microscopy image restoration", WACV 2025.
"""

from __future__ import annotations

import os

import torch

__version__ = "0.1.0"

__all__ = ["device", "quick_mode", "seed_everything", "__version__"]


def device(prefer: str | None = None) -> torch.device:
    """The best available device: CUDA if present, else Apple MPS, else CPU.

    Use this everywhere instead of hard-coding a CUDA device, so the same code runs on Colab, a
    laptop and CI.
    ``prefer`` ("cpu", "cuda", "mps") forces a choice, e.g. for reproducible CPU tests.
    """
    if prefer is not None:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def quick_mode() -> bool:
    """True when ``TEACHDIFF_QUICK=1``: small images, small models, few epochs (CPU/CI)."""
    return os.environ.get("TEACHDIFF_QUICK", "0").strip().lower() in {"1", "true", "yes", "on"}


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU ``torch.Generator`` seeded the same way."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
