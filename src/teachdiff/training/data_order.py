"""Data order and randomness as functions of (seed, epoch, step), never of a generator's history.

That is what makes a resumed run draw the same batches, augmentations, dropout masks and
diffusion noise as an uninterrupted one, and what lets each ``torchrun`` process or data-loader
worker read its items without replaying the others' (:mod:`teachdiff.training.loop`).
"""

from __future__ import annotations

import math
import random
import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["derive_seed", "seed_all", "SeededItems", "epoch_batches", "unpack_batch"]


def derive_seed(*keys: int) -> int:
    """A well-spread 63-bit seed from integers (SeedSequence hashing)."""
    return int(np.random.SeedSequence([k & 0xFFFFFFFF for k in keys]).generate_state(2, np.uint64)[0] >> 1)


def seed_all(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class SeededItems(Dataset):
    """Indexes by (epoch, index): seeds every RNG from (seed, epoch, index) before reading an item,
    so random augmentation is the same whatever process or worker reads it."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        seed_all(derive_seed(self.seed, 1, epoch, index))
        return self.dataset[index]


def epoch_batches(n_items: int, epoch: int, seed: int, batch_size: int, world_size: int, rank: int,
                   steps: int) -> list[list[tuple[int, int]]]:
    """This process's batches for one epoch: a fresh permutation per epoch (repeated when the
    epoch needs more items than the set has); global batch b holds items b*B*W ... and process r
    takes its slice of B."""
    g = torch.Generator().manual_seed(derive_seed(seed, 2, epoch))
    need = steps * batch_size * world_size
    order = torch.cat([torch.randperm(n_items, generator=g) for _ in range(math.ceil(need / n_items))])
    batches = []
    for b in range(steps):
        start = (b * world_size + rank) * batch_size
        batches.append([(epoch, int(i)) for i in order[start:start + batch_size]])
    return batches


def unpack_batch(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of a batch of ``{"x", "y"}`` items or of (x, y) pairs."""
    if isinstance(batch, dict):
        return batch["x"], batch["y"]
    return batch[0], batch[1]
