"""Train once, then load: the runs folder and the zoo shortcut the chapters use."""

from __future__ import annotations

import dataclasses
from pathlib import Path
import teachdiff
from teachdiff.methods.base import RestorationMethod
from teachdiff.store.checkpoint import load_checkpoint
from teachdiff.store.resolve import load_method, load_zoo_model
from teachdiff.training.config import runs_dir
from teachdiff.training.loop import train
from teachdiff.training.presets import train_preset

__all__ = ["train_or_load", "trained_checkpoint"]


def train_or_load(dataset: str, preset: str = "quick", model: str = "ddpm", out_dir: str | Path | None = None,
                  seed: int = 0, progress: bool = True, use_zoo: bool = True) -> RestorationMethod:
    """The trained method of a preset: the zoo's model when there is one, else loaded from
    ``out_dir/best.pt`` when that run finished, otherwise trained (an interrupted run is resumed).

    ``dataset`` may also be a zoo model's name. ``use_zoo=False`` ignores the zoo (to train the
    preset yourself). Training is deterministic, so a loaded run is the same model a fresh one
    would give; chapters use this so that they do not each train the same quick model again.
    ``out_dir`` defaults to ``runs_dir()/<dataset>-<model>-<preset>-seed<seed>``."""
    from teachdiff.store import zoo

    if zoo.is_zoo_name(dataset):
        return load_zoo_model(dataset)
    entry = _zoo_entry(dataset, preset, model, seed, use_zoo)
    if entry is not None:
        return load_zoo_model(entry.name)
    out_dir = Path(out_dir) if out_dir is not None else runs_dir() / f"{dataset}-{model}-{preset}-seed{seed}"
    finished = (out_dir / "last.pt").exists() and load_checkpoint(out_dir / "last.pt").get("finished", False)
    if not finished:
        cfg, method_cfg = train_preset(dataset, preset, model)
        resume = (out_dir / "last.pt").exists()  # else the folder holds no checkpoint worth keeping: start over
        train(dataclasses.replace(cfg, seed=seed), method_cfg, out_dir, resume=resume, progress=progress,
              force=not resume)
    return load_method(out_dir / "best.pt", map_location=teachdiff.device(), expect_kind=model)


def trained_checkpoint(dataset: str, preset: str = "quick", model: str = "ddpm", out_dir: str | Path | None = None,
                       seed: int = 0, use_zoo: bool = True) -> Path:
    """The checkpoint file behind :func:`train_or_load` with the same arguments: the zoo model's
    file when the zoo has one (fetched if need be), else ``out_dir/best.pt`` (trained first if the
    run has not finished). For commands that take a path, such as ``teachdiff restore --checkpoint``."""
    from teachdiff.store import zoo

    entry = _zoo_entry(dataset, preset, model, seed, use_zoo)
    if entry is not None:
        return zoo.fetch(entry.name, progress=False)
    out_dir = Path(out_dir) if out_dir is not None else runs_dir() / f"{dataset}-{model}-{preset}-seed{seed}"
    train_or_load(dataset, preset, model, out_dir, seed=seed, progress=False, use_zoo=False)
    return out_dir / "best.pt"


def _zoo_entry(dataset: str, preset: str, model: str, seed: int, use_zoo: bool):
    """The zoo entry that stands for this preset's run, or None (no zoo wanted, none, another seed)."""
    from teachdiff.store import zoo

    entry = zoo.find(dataset, model, preset) if use_zoo else None
    return entry if entry is not None and entry.seed == seed else None
