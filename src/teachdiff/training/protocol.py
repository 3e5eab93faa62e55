"""The benchmark's training protocol: one rule for every model that the comparison tables rank.

A table that ranks methods means something only if every method was trained the same way. This
module is the one place where that way is written down; the model zoo's builder
(``benchmarks/zoo/build_quick_zoo.py``) follows it and records in the manifest what each model got.

* **Budget.** Every model sees ``IMAGES`` training images: ``steps = IMAGES / batch``, whatever the
  model's batch size (the DDPM's 4000 x 8 = 32,000 images set the figure).
* **Data.** The same fresh random crops of the training images (``TrainConfig.random_crops``) and
  the same augmentation (flips, 90° rotations, input blur) for every model.
* **Averaging.** Every model is trained with the same EMA of its weights (``EMA_DECAY``, with
  warm-up), which the DDPM needs and which no other model is denied.
* **Learning rate.** Chosen per model by the same sweep: the preset's rate times each of
  ``LR_FACTORS``, each trained on ``SWEEP_FRACTION`` of the budget with its own cosine schedule;
  the lowest best value of :func:`curve_key` on the validation split wins.
* **Selection.** The checkpoint with the lowest validation MAE (the trainer's ``best.pt``), except
  for Noise2Void, which must never see the ground truth: its last weights.
* **Flags, not extensions.** Runs are not lengthened (that would break the equal budget). A run
  whose best checkpoint lies in the first ``EARLY_FRACTION`` of its steps (:func:`best_too_early`:
  a curve that never improved after its start) or whose curve still fell by ``FLAT_GAIN`` or more
  over its last quarter (:func:`plateau`) is released with that flag in the manifest and the tables.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from teachdiff.training.config import TrainConfig
from teachdiff.training.presets import train_preset

__all__ = ["IMAGES", "EMA_DECAY", "LR_FACTORS", "SWEEP_FRACTION", "MARKS", "FLAT_GAIN", "EARLY_FRACTION",
           "STEPS_PER_EPOCH", "VAL_IMAGES", "recipe", "images_seen", "curve_key", "plateau", "best_step", "best_too_early",
           "choose_lr", "run_flags"]

IMAGES = 32_000  # training images every model sees
EMA_DECAY = 0.999
LR_FACTORS = (1 / 3, 1.0, 3.0)  # the sweep, relative to the preset's learning rate
SWEEP_FRACTION = 0.25  # share of the budget each sweep run trains
MARKS = 8  # learning-curve points per run
FLAT_GAIN = 0.02  # a best value still improving by this much over the last quarter: not flattened
EARLY_FRACTION = 0.25  # a best checkpoint in this first share of the steps: flagged
STEPS_PER_EPOCH = 100  # validation (and a best.pt candidate) every this many steps
VAL_IMAGES = 16  # validation patches of every curve point and epoch


def recipe(dataset: str, model: str, lr: float | None = None, fraction: float = 1.0,
           scale: float = 1.0) -> tuple[TrainConfig, object, list[int]]:
    """The protocol's run of one model: (TrainConfig, method config, curve marks in steps).

    The model's ``quick`` preset (network, patch size, batch, optimiser) with the protocol's
    budget, crops, EMA and validation; ``lr`` replaces the preset's rate (the sweep's choice);
    ``fraction`` of the budget (a sweep run); ``scale`` shortens every epoch (a smoke run only).
    """
    cfg, method_cfg = train_preset(dataset, "quick", model)
    steps = round(IMAGES * fraction / cfg.batch_size)
    epochs = max(1, steps // STEPS_PER_EPOCH)
    cfg = dataclasses.replace(cfg, epochs=epochs, steps_per_epoch=max(1, round(STEPS_PER_EPOCH * scale)),
                              val_images=VAL_IMAGES, ema_decay=EMA_DECAY, random_crops=True,
                              lr=cfg.lr if lr is None else lr)
    total = cfg.epochs * cfg.steps_per_epoch
    marks = sorted({total * k // MARKS for k in range(1, MARKS + 1)})
    return cfg, method_cfg, marks


def images_seen(cfg: TrainConfig) -> int:
    """Training images a run of ``cfg`` sees (single process)."""
    return cfg.epochs * cfg.steps_per_epoch * cfg.batch_size


def curve_key(model: str) -> str:
    """The validation value that ranks a model's checkpoints, learning rates and curve: the MAE of
    its restoration, or for Noise2Void, which must never see the ground truth, its blind-spot loss
    on the validation inputs."""
    return "val_loss_self" if model == "n2v" else "val_mae"


def plateau(curve: list[dict], key: str = "val_mae") -> tuple[bool, float]:
    """(flattened?, relative improvement of the best ``key`` value over the last quarter of the steps).

    A curve that never went below its first point has not learned, so it has not flattened either."""
    steps = np.array([p["step"] for p in curve])
    values = np.array([p[key] for p in curve])
    before = values[steps <= 0.75 * steps.max()]
    if len(before) == 0:
        return False, float("nan")
    gain = (before.min() - values.min()) / before.min()
    return bool(gain < FLAT_GAIN and values.min() < values[0]), float(gain)


def best_step(history: list[dict], model: str) -> int:
    """The step of the released weights: the last epoch the trainer marked best (lowest validation
    MAE), or the last step for Noise2Void (released with its last weights)."""
    if model == "n2v":
        return max(row["step"] for row in history)
    best = [row["step"] for row in history if row.get("best")]
    return best[-1] if best else max(row["step"] for row in history)


def best_too_early(history: list[dict], model: str) -> bool:
    """Whether the released checkpoint comes from the first ``EARLY_FRACTION`` of the run."""
    total = max(row["step"] for row in history)
    return best_step(history, model) <= EARLY_FRACTION * total


def choose_lr(sweep: dict[float, list[dict]], model: str) -> float:
    """The learning rate whose sweep curve reached the lowest :func:`curve_key` value."""
    key = curve_key(model)
    return min(sweep, key=lambda lr: min(p[key] for p in sweep[lr]))


def run_flags(curve: list[dict], history: list[dict], model: str) -> list[str]:
    """What a released run must say about itself (empty: nothing)."""
    flags = []
    flat, gain = plateau(curve, curve_key(model))
    if best_too_early(history, model):
        flags.append(f"best checkpoint at step {best_step(history, model)} of "
                     f"{max(r['step'] for r in history)} (first quarter)")
    if not flat:
        flags.append(f"still improving at the end of the budget ({100 * gain:.1f} % over the last quarter)"
                     if gain == gain and gain >= FLAT_GAIN else "its curve never went below its first point")
    return flags
