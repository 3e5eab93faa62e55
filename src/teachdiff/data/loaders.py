"""torch Datasets and DataLoaders for training, validation and test, with real augmentation.

Every batch is a dict::

    {"x": float32 (N, 1, H, W) in [-1, 1],   # input: low dose / confocal / single capture
     "y": float32 (N, 1, H, W) in [-1, 1],   # target: high dose / super-resolution / average
     "name": list of N str,                  # FOV / slice / tile of each patch
     "index": int64 (N,)}                    # patch index within its split

Augmentation (paper §3.4) is applied on the fly to training patches — the authors' code
computed it and then discarded the result; here a test fails if it is not applied:

* flips and 90° rotations (together the 8 symmetries of the square), **identical on x and
  y** so the pair stays aligned pixel for pixel;
* Gaussian filtering of **the input x only**, with probability ``blur_probability``.
  Blurring the target would teach the model to produce blurred images; blurring the input
  mimics the variation of focus and PSF width between acquisitions and makes the model rely
  on structure rather than on the exact noise texture. The paper gives no parameters: ours
  (p = 0.25, sigma in [0.3, 1.0] px) are mild on purpose.

Determinism: the order of the training patches and every random augmentation decision come
from a ``torch.Generator`` seeded with ``(seed, epoch)`` in :class:`EpochSampler`, not from
worker processes, so iteration is identical for any ``num_workers``. Resuming training at
epoch ``e`` is ``loader.sampler.set_epoch(e)`` (or ``load_state_dict`` of a saved state).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import DataLoader, Dataset, Sampler

from teachdiff.data.pairs import SPLITS, ArrayPair
from teachdiff.data.prepare import PatchSet, prepare_dataset
from teachdiff.core.scale import to_model_range
from teachdiff.data.registry import DatasetInfo, get_dataset_info
from teachdiff.data.synthetic import SyntheticPair, fov_seed, simulate_pair

__all__ = [
    "Augmentation",
    "PairedPatchDataset",
    "EpochSampler",
    "SyntheticSizes",
    "synthetic_patch_sets",
    "synthetic_fov",
    "make_datasets",
    "make_dataloaders",
]


@dataclass(frozen=True)
class Augmentation:
    """Random flips, 90° rotations (x and y alike) and Gaussian blur of the input x only."""

    flips: bool = True
    rotations: bool = True
    blur_probability: float = 0.25
    blur_sigma: tuple[float, float] = (0.3, 1.0)

    def __call__(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        # Always draw the same number of random values, so one decision never shifts another.
        k, flip, blur, u = rng.integers(4), rng.random() < 0.5, rng.random(), rng.random()
        if self.rotations and k:
            x, y = np.rot90(x, k), np.rot90(y, k)
        if self.flips and flip:
            x, y = x[:, ::-1], y[:, ::-1]
        if blur < self.blur_probability:
            lo, hi = self.blur_sigma
            x = ndimage.gaussian_filter(x, lo + (hi - lo) * u, mode="reflect")
        return x, y


NO_AUGMENTATION = Augmentation(flips=False, rotations=False, blur_probability=0.0)


class PairedPatchDataset(Dataset):
    """Patches of one split as model-ready tensors (see the module docstring for the format).

    Items are requested as ``(index, augmentation_seed)`` by :class:`EpochSampler`, or by plain
    index, in which case the augmentation is drawn from torch's global RNG (seed it before each
    item for determinism, as ``teachdiff.store.checkpoint`` does with ``(seed, epoch, index)``).
    """

    def __init__(
        self,
        patches: PatchSet,
        augmentation: Augmentation | None = None,
        indices: np.ndarray | None = None,
        info: DatasetInfo | None = None,
        normalization=None,
        random_crops: bool = False,
    ):
        self.patches = patches
        self.random_crops = random_crops  # a fresh crop of the patch's image per item (training)
        self.normalization = normalization  # a teachdiff.data.folder.Normalization, or None: bit depth
        self.augmentation = augmentation
        self.indices = np.arange(len(patches)) if indices is None else np.asarray(indices, dtype=np.int64)
        self.info = info

    @property
    def bit_depth(self) -> int:
        return self.patches.bit_depth

    @property
    def split(self) -> str:
        return self.patches.split

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item) -> dict:
        i, aug_seed = item if isinstance(item, tuple) else (item, None)
        j = int(self.indices[i])
        if self.random_crops or self.augmentation is not None:
            if aug_seed is None:  # plain index: draw from torch's global RNG (teachdiff.store.checkpoint seeds it per item)
                aug_seed = int(torch.randint(0, 2**31 - 1, ()).item())
        if self.random_crops:  # its own stream, so the augmentation draws what it drew without crops
            x, y, name = self.patches.random_patch(j, np.random.default_rng([aug_seed, 1]))
        else:
            x, y, name = self.patches.patch(j)
        if self.normalization is not None:
            x, y = self.normalization.input_to_model(x), self.normalization.target_to_model(y)
        else:
            x, y = to_model_range(x, self.bit_depth), to_model_range(y, self.bit_depth)
        if self.augmentation is not None:
            rng = np.random.default_rng(aug_seed)
            x, y = self.augmentation(x, y, rng)
        return {
            "x": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None],
            "y": torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))[None],
            "name": name,
            "index": j,
        }


class EpochSampler(Sampler):
    """Shuffled order plus one augmentation seed per item, deterministic in ``(seed, epoch)``.

    Each ``iter()`` uses the current epoch and then advances it, so successive epochs differ
    while a restarted run reproduces them exactly (``set_epoch`` / ``load_state_dict``).
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = int(n), int(seed), shuffle, 0

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(fov_seed(self.seed, self.epoch))
        order = torch.randperm(self.n, generator=generator) if self.shuffle else torch.arange(self.n)
        aug_seeds = torch.randint(0, 2**31 - 1, (self.n,), generator=generator)
        self.epoch += 1
        return iter(zip(order.tolist(), aug_seeds.tolist()))


@dataclass(frozen=True)
class SyntheticSizes:
    """How much synthetic data to generate: FOV side and number of FOVs per split."""

    fov_size: int
    n_fov: tuple[int, int, int]  # train, val, test

    @staticmethod
    def default(patch_size: int, quick: bool) -> "SyntheticSizes":
        # Each FOV is 2 x 2 patches. Quick mode: 128 / 8 / 16 patches, small enough for CPU.
        return SyntheticSizes(2 * patch_size, (32, 2, 4) if quick else (64, 4, 8))


@functools.lru_cache(maxsize=160)
def _simulated_fov(case: str, size: int, seed: int, bit_depth: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of one synthetic FOV, kept for the process: training every model of a comparison
    (``teachdiff reproduce``) builds the same splits once per model, and a full-size split
    takes seconds to simulate. 160 FOVs: two cases at full size (76 FOVs of 512², 40 MB each)."""
    sim = simulate_pair(case, size, seed, bit_depth)
    return sim.x, sim.y


def synthetic_patch_sets(
    case: str,
    patch_size: int = 64,
    sizes: SyntheticSizes | None = None,
    seed: int = 0,
    bit_depth: int = 8,
) -> dict[str, PatchSet]:
    """Generate the train/val/test FOVs of a synthetic case in memory and index their patches.

    Every FOV has its own seed derived from ``(seed, split, fov)``, so the splits never share
    a field of view and the data are identical on every machine.
    """
    sizes = sizes or SyntheticSizes.default(patch_size, quick=patch_size <= 64)
    sets = {}
    for s, (split, n) in enumerate(zip(SPLITS, sizes.n_fov)):
        pairs = []
        for f in range(n):
            x, y = (a.copy() for a in _simulated_fov(case, sizes.fov_size, fov_seed(seed, s, f), bit_depth))
            name = f"{split}_fov{f:03d}"
            pairs.append(ArrayPair(x=x[None], y=y[None], fov=name, name=name, bit_depth=bit_depth))
        sets[split] = PatchSet(pairs, patch_size, bit_depth, split=split)
    return sets


def synthetic_fov(case: str, split: str, index: int, sizes: SyntheticSizes, seed: int = 0,
                  bit_depth: int = 8) -> SyntheticPair:
    """Field of view ``index`` of ``split`` exactly as :func:`synthetic_patch_sets` simulates it, with
    its noise-free expected images (to simulate more captures of the same field)."""
    return simulate_pair(case, sizes.fov_size, fov_seed(seed, SPLITS.index(split), index), bit_depth)


# Quick mode on a real dataset keeps this many patches per split (evenly spread over the split).
_QUICK_PATCHES = {"train": 64, "val": 8, "test": 8}


def quick_subset(split: str, n: int) -> np.ndarray | None:
    """Indices of the evenly spread patches quick mode keeps of a split of ``n`` (None: all)."""
    if n <= _QUICK_PATCHES[split]:
        return None
    return np.linspace(0, n - 1, _QUICK_PATCHES[split]).round().astype(np.int64)


def make_datasets(
    name: str,
    root: str | Path | None = None,
    patch_size: int | None = None,
    quick: bool | None = None,
    seed: int = 0,
    augmentation: Augmentation | bool = True,
    synthetic_sizes: SyntheticSizes | None = None,
    progress: bool = True,
    random_crops: bool = False,
) -> dict[str, PairedPatchDataset]:
    """The train/val/test :class:`PairedPatchDataset` of a registered dataset.

    ``patch_size`` defaults to 256 (the paper), or 64 for ``synthetic-*`` in quick mode.
    ``quick`` (default: ``teachdiff.quick_mode()``) shrinks synthetic data to CPU size and
    keeps a small, evenly spread subset of the patches of a real dataset. ``progress=False``
    hides the registration progress bar of a real dataset. ``random_crops``: each training item
    is a fresh crop of its patch's image (:meth:`PatchSet.random_patch`) instead of the fixed
    grid tile; validation and test always use the grid.
    """
    from teachdiff import quick_mode

    info = get_dataset_info(name)
    quick = quick_mode() if quick is None else quick
    if patch_size is None:
        patch_size = 64 if (quick and info.is_synthetic) else 256
    if info.is_synthetic:
        if root is not None:
            raise ValueError(f"'{name}' is generated on the fly and takes no root folder; drop root=.")
        sets = synthetic_patch_sets(info.synthetic_case, patch_size, synthetic_sizes or SyntheticSizes.default(patch_size, quick), seed)
    else:
        sets = prepare_dataset(name, root, patch_size, progress=progress)
    return split_datasets(sets, f"'{name}'", patch_size, augmentation, quick and not info.is_synthetic, info=info,
                          random_crops=random_crops)


def split_datasets(sets, source: str, patch_size: int, augmentation: Augmentation | bool, subset: bool,
                   random_crops: bool = False, **dataset_options) -> dict[str, PairedPatchDataset]:
    """One :class:`PairedPatchDataset` per split of ``sets``: augmentation (and ``random_crops``) on the
    training split only, ``quick_subset`` of each split when ``subset``; a clear error for a split
    without patches."""
    if augmentation is True:
        augmentation = Augmentation()
    datasets = {}
    for split in SPLITS:
        n = len(sets[split])
        if n == 0:
            raise ValueError(f"the {split} split of {source} has no patches of {patch_size}x{patch_size} (FOVs: "
                             f"{', '.join(sets[split].fovs) or 'none'}); add FOVs or use a smaller --patch-size.")
        aug = augmentation if (split == "train" and augmentation) else None
        datasets[split] = PairedPatchDataset(sets[split], aug, indices=quick_subset(split, n) if subset else None,
                                             random_crops=random_crops and split == "train", **dataset_options)
    return datasets


def make_dataloaders(
    name: str,
    root: str | Path | None = None,
    patch_size: int | None = None,
    batch_size: int = 8,
    quick: bool | None = None,
    seed: int = 0,
    num_workers: int = 0,
    augmentation: Augmentation | bool = True,
    synthetic_sizes: SyntheticSizes | None = None,
) -> dict[str, DataLoader]:
    """DataLoaders ``{"train", "val", "test"}`` for a registered dataset (batch format: module docstring).

    The training loader shuffles and augments through :class:`EpochSampler` (deterministic in
    ``seed`` and the epoch, whatever ``num_workers``); validation and test loaders keep the
    patch order and do not augment.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    datasets = make_datasets(name, root, patch_size, quick, seed, augmentation, synthetic_sizes)
    loaders = {}
    for split, dataset in datasets.items():
        train = split == "train"
        loaders[split] = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=EpochSampler(len(dataset), seed=seed, shuffle=train) if train else None,
            shuffle=False,
            num_workers=num_workers,
            generator=torch.Generator().manual_seed(seed),
            pin_memory=torch.cuda.is_available(),
        )
    return loaders
