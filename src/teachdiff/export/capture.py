"""The capture a package is tested on: a real image from the model's own test data, or the user's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from teachdiff.data.folder import Normalization

# ----------------------------------------------------------------------------------------------
# A raw capture for the test tensors and the cover
# ----------------------------------------------------------------------------------------------


def sample_capture(train_config: dict, side: int, sample: str | Path | None = None) -> tuple[np.ndarray, str]:
    """A raw 2-D capture of at least ``side`` pixels per side, and where it came from.

    ``sample`` (a TIFF/PNG; the middle plane of a stack) if given; else for a synthetic dataset
    the first test FOV of its training data (simulated again from the training seed); else the
    first test FOV of the training folder, when it is still there.
    """
    from teachdiff.data import read_image
    from teachdiff.data.registry import DATASETS

    if sample is not None:
        stack = read_image(sample)
        image, where = stack[stack.shape[0] // 2], f"{Path(sample).name} (given with --sample)"
    else:
        image, where = _training_test_capture(train_config, side, DATASETS)
    if min(image.shape) < side:
        raise ValueError(f"the capture {where} is {image.shape[0]}x{image.shape[1]} pixels, smaller than one "
                         f"{side}x{side} tile of this model; pass a larger raw capture with --sample.")
    return image, where


def _training_test_capture(train_config: dict, side: int, datasets: dict) -> tuple[np.ndarray, str]:
    from teachdiff.data import read_image
    from teachdiff.data.folder import FolderConfig, folder_info
    from teachdiff.data.loaders import SyntheticSizes
    from teachdiff.data.pairs import SPLITS, assign_splits, find_pairs
    from teachdiff.data.registry import default_root
    from teachdiff.data.synthetic import fov_seed, simulate_pair

    dataset, folder = train_config.get("dataset"), train_config.get("data")
    info = datasets.get(dataset) if folder is None else None
    if info is not None and info.is_synthetic:
        patch = int(train_config.get("patch_size") or side)
        fov = max(SyntheticSizes.default(patch, quick=patch <= 64).fov_size, side)
        seed = fov_seed(int(train_config.get("seed", 0)), SPLITS.index("test"), 0)
        pair = simulate_pair(info.synthetic_case, fov, seed, info.bit_depth)
        return pair.x, f"the first test FOV of {dataset} (simulated, {fov}x{fov}, seed {seed})"
    if folder is not None:
        config = FolderConfig(**{**folder, "split_fractions": tuple(folder.get("split_fractions", (0.8, 0.1, 0.1)))})
        info, root, split_seed = folder_info(config), Path(config.path).expanduser(), config.split_seed
    elif info is not None:
        root, split_seed = Path(train_config.get("data_root") or default_root(dataset)), 0
    if info is None or not root.exists():
        raise FileNotFoundError("no raw capture to make the test tensors and the cover from: the model's training "
                                "data is not on this machine. Pass one with --sample IMAGE (a raw capture of the "
                                "kind the model was trained for).")
    found = find_pairs(root, info)
    if None in found:
        assignment = assign_splits([p.fov for p in found[None]], info, seed=split_seed)
        pairs = [p for p in found[None] if assignment[p.fov] == "test"]
    else:
        pairs = found["test"]
    stack = read_image(pairs[0].x_path)
    return stack[stack.shape[0] // 2], f"{pairs[0].x_path.name}, the first test FOV of {root}"


def _check_capture(capture: np.ndarray, where: str, norm: Normalization) -> None:
    """The capture must be on the intensity scale the package states: else its test tensors
    would show the model on data it never saw."""
    from teachdiff.data.io import bit_depth_of

    if norm.mode == "percentile" and bit_depth_of(capture.dtype) != norm.container_bits:
        raise ValueError(f"the capture {where} is not {norm.container_bits}-bit like the model's training images; "
                         "pass a capture of the kind it was trained on with --sample.")
    top = 2**norm.bit_depth - 1
    if norm.mode == "bitdepth" and float(capture.max()) > top:
        raise ValueError(f"the capture {where} has values up to {float(capture.max()):.0f}, beyond the "
                         f"{norm.bit_depth}-bit range 0..{top} of the model's inputs; pass a capture of the kind it "
                         "was trained for with --sample, or the captures' real bit depth with --bit-depth.")


def _brightest_crop(image: np.ndarray, side: int) -> np.ndarray:
    """The ``side``-pixel crop with the highest mean among crops at half-tile steps (structure, not background)."""
    step = max(side // 2, 1)
    rows, cols = range(0, image.shape[0] - side + 1, step), range(0, image.shape[1] - side + 1, step)
    corners = [(r, c) for r in rows for c in cols]
    r, c = max(corners, key=lambda rc: float(image[rc[0]:rc[0] + side, rc[1]:rc[1] + side].mean()))
    return image[r:r + side, c:c + side]
