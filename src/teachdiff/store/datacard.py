"""The training data card: what a model was trained on, and whether an image looks like it.

A model restores images like the ones it was trained on; given anything else it still returns
an image, often a convincing one, and nothing in the pixels says it is wrong. The zoo's
synthetic STED models, given real confocal captures, return results about 7x too bright. The
card is the defence: a small JSON-able dict stored in every checkpoint the trainer writes
(``data_card``) and in every zoo manifest entry, holding

- ``dataset``, ``title``: the training data (a registry name, or the folder of ``--data``);
- ``modality``: the microscope technique of the inputs (``DatasetInfo.imaging``);
- ``relation``: what input is mapped to what target (``DatasetInfo.modality``);
- ``pixel_size_nm`` and ``pixel_size_kind`` ("stated", "upper bound", "nominal"; None: unknown);
- ``bit_depth``, ``normalization`` (the :class:`~teachdiff.data.folder.Normalization` as a dict,
  None for the paper's "the file's bit depth") and ``scaling`` (the same in words);
- ``patch_size``: the side of the training patches;
- ``input_percentiles``: the 1st, 50th, 99th and 99.9th percentiles of the training inputs
  *after* normalisation (the network's range [-1, 1]), pooled over ``input_patches`` training
  patches spread evenly over the training split, with ``input_mean`` and ``input_std``.

:func:`build` makes a card (the trainer and :func:`for_checkpoint` call it); :func:`compare`
measures how far an image's percentiles, mapped the way the model maps its inputs, lie from the
training inputs'. The distance is the largest difference over the four percentiles, in units of
the training inputs' own range (99.9th minus 1st percentile):

.. math::  d = \\max_q \\frac{|P_q(\\text{image}) - P_q(\\text{train})|}{P_{99.9}(\\text{train}) - P_1(\\text{train})}

``d > FAR_OUTSIDE`` (1: a percentile moved by more than the whole training range) is "far
outside". Calibrated against the zoo's four cards with new simulations (``tests/test_datacard.py``
checks the pattern): the datasets' own images, other seeds, from 64² crops to whole 512² fields,
give d <= 0.65 (the 99.9th percentile of a small crop is the noisiest); 7x brighter copies
d = 1.1-6 (zebrafish, the brightest, saturates first), simulated widefield captures (wide PSF,
high background) d = 1.4-10, a confocal zebrafish image given to the STED microtubule models
d = 7. Not flagged: 2x brighter copies (d = 0.6-1.0) and a microtubule image given to the
zebrafish models (0.9). Intensities only: the card cannot see structure, so a STED image of the
wrong organelle at the right brightness passes unnoticed.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:
    from teachdiff.data.registry import DatasetInfo

__all__ = ["PERCENTILES", "FAR_OUTSIDE", "CARD_PATCHES", "build", "from_training_set", "for_checkpoint", "stored",
           "image_percentiles", "Comparison", "compare", "describe", "input_levels", "check_sizes",
           "pixel_size_words"]

PERCENTILES = (1.0, 50.0, 99.0, 99.9)
FAR_OUTSIDE = 1.0
CARD_PATCHES = 64  # training patches measured (the calibration set of CARE and Noise2Void is as large)
_MIN_RANGE = 0.02  # floor of the training range in model units (1.3 grey levels of 8 bits): a blank set
_MAX_PIXELS = 4_000_000  # pixels of an image measured, subsampled on a regular grid


def _key(q: float) -> str:
    return f"p{q:g}"


def image_percentiles(values) -> dict[str, float]:
    """``{"p1": ..., "p50": ..., "p99": ..., "p99.9": ...}`` of an array (any shape), NaNs ignored.

    At most 4 M pixels on a regular grid are used, so a 2560² z-stack costs what a 2000² image does."""
    import numpy as np

    flat = np.asarray(values, dtype=np.float32).ravel()
    flat = flat[:: max(1, math.ceil(flat.size / _MAX_PIXELS))]
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return {_key(q): math.nan for q in PERCENTILES}
    return {_key(q): round(float(v), 5) for q, v in zip(PERCENTILES, np.percentile(flat, PERCENTILES))}


def build(source: "DatasetInfo | str", inputs: Iterable, patch_size: int, normalization: dict | None = None,
          bit_depth: int | None = None) -> dict:
    """The card of a model trained on ``source`` (a registry name or :class:`DatasetInfo`; any other
    string is a folder of your own) whose training inputs, in the network range, are ``inputs``
    (arrays or tensors of any shape). ``normalization``: the ``Normalization.to_dict()`` the
    trainer saves, or None for the paper's bit-depth scaling."""
    import numpy as np

    from teachdiff.data.registry import DATASETS, DatasetInfo

    info = source if isinstance(source, DatasetInfo) else DATASETS.get(str(source))
    arrays = [np.asarray(x.detach().cpu().float() if hasattr(x, "detach") else x, dtype=np.float32).ravel()
              for x in inputs]
    pooled = np.concatenate(arrays) if arrays else np.zeros(0, np.float32)
    if normalization is not None:
        bit_depth = normalization.get("bit_depth", bit_depth)
    if bit_depth is None and info is not None:
        bit_depth = info.bit_depth
    known = info is not None
    return {
        "dataset": info.name if known else str(source),
        "title": info.title if known else f"your own data ({source})",
        "modality": (info.imaging or None) if known else None,
        "relation": info.modality if known else "raw -> gt (your microscope)",
        "pixel_size_nm": info.pixel_size_nm if known else None,
        "pixel_size_kind": info.pixel_size_kind if known else None,
        "bit_depth": bit_depth,
        "normalization": normalization,
        "scaling": _scaling_words(normalization, bit_depth),
        "patch_size": int(patch_size),
        "input_percentiles": image_percentiles(pooled) if pooled.size else None,
        "input_mean": round(float(pooled.mean()), 5) if pooled.size else None,
        "input_std": round(float(pooled.std()), 5) if pooled.size else None,
        "input_patches": len(arrays),
    }


def _scaling_words(normalization: dict | None, bit_depth: int | None) -> str:
    if normalization is not None:
        from teachdiff.data.folder import Normalization

        return Normalization.from_dict(normalization).describe()
    if bit_depth:
        return f"bitdepth: 0..{2**bit_depth - 1} ({bit_depth}-bit) -> [-1, 1]"
    return "bitdepth: the file's pixel type -> [-1, 1]"


@contextlib.contextmanager
def _global_rng_kept():
    """Reading training items may draw from the global RNGs (a dataset's own augmentation); the
    trainer's later draws must not change because a card was made, so their states are put back."""
    import random

    import numpy as np
    import torch

    state = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    try:
        yield
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.random.set_rng_state(state[2])


def from_training_set(source, train_set, patch_size: int, normalization: dict | None = None,
                      bit_depth: int | None = None, n: int = CARD_PATCHES) -> dict:
    """The card of a training split (items ``{"x": ...}`` in the network range): :func:`build` on
    ``n`` items spread evenly over it, read without augmentation (new images are not blurred
    either: the training blur lowers the 99th percentile of the zebrafish inputs by a third) and
    at their grid positions even when training crops at random (the card describes the training
    images, the same whatever the random state). The global random state is left as it was."""
    import copy

    import numpy as np

    if getattr(train_set, "augmentation", None) is not None or getattr(train_set, "random_crops", False):
        train_set = copy.copy(train_set)
        train_set.augmentation = None
        train_set.random_crops = False
    count = min(n, len(train_set))
    picks = np.unique(np.linspace(0, len(train_set) - 1, count).round().astype(int)) if count else []
    with _global_rng_kept():
        inputs = [train_set[int(i)]["x"] for i in picks]
    return build(source, inputs, patch_size, normalization, bit_depth)


def stored(payload: dict) -> dict | None:
    """The card a checkpoint holds; for a zoo file released before cards existed, its manifest
    entry's; for any other older checkpoint, the registry's facts about its ``train_config``'s
    dataset without input statistics; None if none of these."""
    if payload.get("data_card"):
        return payload["data_card"]
    released = (payload.get("zoo") or {}).get("name")
    if released:
        from teachdiff.store import zoo

        if zoo.is_zoo_name(released) and zoo.get(released).data_card:
            return zoo.get(released).data_card
    config = payload.get("train_config") or {}
    if not config.get("dataset"):
        return None
    return build(config["data"]["path"] if config.get("data") else config["dataset"], [],
                 config.get("patch_size") or 0, payload.get("normalization"))


def for_checkpoint(checkpoint) -> dict:
    """The card of a checkpoint (a path or a loaded payload): the stored one, or else one measured
    now on the training split its ``train_config`` describes (a synthetic dataset is made again;
    a real dataset or folder must be where it was). For releasing models of any age."""
    from teachdiff.store.checkpoint import load_checkpoint

    payload = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    if payload.get("data_card"):
        return payload["data_card"]
    config = payload.get("train_config") or {}
    if not config.get("dataset"):
        raise ValueError("this checkpoint records neither a data card nor the training data it came from.")
    quick = config.get("preset") == "quick"
    patch_size, seed = config["patch_size"], config.get("seed", 0)
    if config.get("data"):
        from teachdiff.data.folder import FolderConfig, make_folder_datasets

        datasets = make_folder_datasets(FolderConfig(**config["data"]), patch_size=patch_size, quick=quick, seed=seed,
                                        progress=False)
    else:
        from teachdiff.data import make_datasets

        datasets = make_datasets(config["dataset"], root=config.get("data_root"), patch_size=patch_size, quick=quick,
                                 seed=seed, progress=False)
    source = config["data"]["path"] if config.get("data") else config["dataset"]
    return from_training_set(source, datasets["train"], patch_size, payload.get("normalization"),
                             getattr(datasets["train"], "bit_depth", None))


# ----------------------------------------------------------------------------------------------
# An image against the card
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """An image's input percentiles against the training inputs' (both in the network range).

    ``distance``: the largest percentile difference in units of the training range (module
    docstring); ``far``: ``distance > FAR_OUTSIDE``; ``worst``: the percentiles that differ most."""

    image: dict[str, float]
    training: dict[str, float]
    distance: float
    training_range: float

    @property
    def far(self) -> bool:
        return not self.distance <= FAR_OUTSIDE  # a NaN distance (an empty image) counts as far

    def differences(self) -> list[tuple[str, float, float, float]]:
        """(percentile, image value, training value, difference in training ranges), largest first."""
        rows = [(k, self.image[k], self.training[k], (self.image[k] - self.training[k]) / self.training_range)
                for k in self.training]
        return sorted(rows, key=lambda r: -abs(r[3]) if math.isfinite(r[3]) else -math.inf)

    def explain(self, levels=None, n: int = 2) -> str:
        """The ``n`` largest differences in words; ``levels`` maps network values to file intensities."""
        show = levels or (lambda v: v)
        parts = []
        for key, ours, theirs, d in self.differences()[:n]:
            word = "brighter" if d > 0 else "darker"
            parts.append(f"{key} {show(ours):.3g} vs {show(theirs):.3g} in training ({abs(d):.1f}x the training "
                         f"range {word})")
        return "; ".join(parts)


def compare(card: dict | None, values) -> Comparison | None:
    """How far ``values`` (an image after the model's normalisation) lie from the card's training
    inputs; None when the card has no input statistics (a checkpoint from before cards)."""
    if not card or not card.get("input_percentiles"):
        return None
    training = card["input_percentiles"]
    image = image_percentiles(values)
    spread = max(training[_key(PERCENTILES[-1])] - training[_key(PERCENTILES[0])], _MIN_RANGE)
    distance = max(abs(image[k] - training[k]) for k in training) / spread
    return Comparison(image=image, training=dict(training), distance=distance, training_range=spread)


def input_levels(normalization: dict | None, bit_depth: int | None):
    """A function from network values back to input file intensities under ``normalization`` (a
    ``Normalization.to_dict()``, or None: ``bit_depth``), to quote statistics in grey levels."""
    if normalization is not None and normalization.get("mode") == "percentile":
        low, high = normalization["x_low"], normalization["x_high"]
        return lambda v: low + (v + 1.0) / 2.0 * (high - low)
    bits = (normalization or {}).get("bit_depth") or bit_depth or 8
    return lambda v: (v + 1.0) / 2.0 * (2**bits - 1)


# ----------------------------------------------------------------------------------------------
# In words, for `teachdiff weights list`
# ----------------------------------------------------------------------------------------------


def pixel_size_words(card: dict) -> str:
    size, kind = card.get("pixel_size_nm"), card.get("pixel_size_kind")
    if not size or kind is None:
        return "unknown"
    return f"{size:g} nm" + ("" if kind == "stated" else f" ({kind})")


def describe(card: dict | None, width: int = 96, indent: str = "") -> list[str]:
    """The card as ``label  text`` lines, none wider than ``width``: the training data, modality,
    input -> target relation, pixel size and patch size, scaling, and the training inputs'
    percentiles in file intensities."""
    import textwrap

    if not card:
        return [f"{indent}not recorded (a checkpoint from before teachdiff kept data cards)"]
    lines = [("trained on", f"{card['dataset']}: {card['title']}"),
             ("modality", card.get("modality") or "not recorded"),
             ("input->target", card.get("relation") or "not recorded"),
             ("pixel size", f"{pixel_size_words(card)}; training patches {card.get('patch_size')}²"),
             ("scaling", card.get("scaling") or "not recorded")]
    stats = card.get("input_percentiles")
    if stats:
        levels = input_levels(card.get("normalization"), card.get("bit_depth"))
        text = ", ".join(f"{k} {levels(v):.3g}" for k, v in stats.items())
        lines.append(("inputs", f"{text} (file intensities, {card.get('input_patches')} training patches)"))
    else:
        lines.append(("inputs", "intensity statistics not recorded"))
    out = []
    for label, text in lines:
        out += textwrap.wrap(text, width=width, initial_indent=f"{indent}{label:<14}",
                             subsequent_indent=indent + " " * 14)
    return out


def check_sizes(card: dict | None, shape: Sequence[int]) -> str | None:
    """Why an image of ``shape`` (..., H, W) is too small for the model, or None."""
    patch = (card or {}).get("patch_size") or 0
    h, w = int(shape[-2]), int(shape[-1])
    if patch and min(h, w) < patch:
        return (f"{h}x{w} pixels is smaller than the {patch}x{patch} patches the model was trained on: most "
                "of its pixels lie near a border, where the network sees padding instead of the context it "
                "learned from, so the result is less reliable; restore a larger field of view")
    return None
