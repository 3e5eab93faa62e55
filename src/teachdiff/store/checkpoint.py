"""The checkpoint format: one owner for how a run's files are written, read and released.

A checkpoint is a dict saved with ``torch.save``: the method (``format``, ``kind``,
``method_config``, ``model``, ``teachdiff_version``) plus what its writer adds, for a training run
(:func:`teachdiff.training.loop.save_training_checkpoint`) the state that continues it
(:data:`TRAINING_STATE_KEYS`), its position and log, its configuration and its data card.
Every file is written atomically (:func:`atomic_write`), so a crash never leaves half a file.
"""

from __future__ import annotations

import os
from pathlib import Path
import torch
import teachdiff
from teachdiff.methods.base import RestorationMethod

__all__ = ["CHECKPOINT_FORMAT", "TRAINING_STATE_KEYS", "atomic_write", "save_checkpoint", "without_training_state",
           "checkpoint_file", "load_checkpoint"]


CHECKPOINT_FORMAT = "teachdiff-checkpoint-v1"
# What the trainer saves only to continue a run: a released model leaves it out (its EMA weights,
# if any, become its "model" first). The rest stays (step, epoch, best validation MAE,
# configuration, normalisation, data card): it says what the released model is.
TRAINING_STATE_KEYS = ("optimizers", "schedulers", "ema", "history", "grad_scaler")


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: a crash never leaves a
    half-written file in place of a good one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_checkpoint(path: str | Path, method: RestorationMethod, **state) -> Path:
    """Atomically save a method (kind, config, weights) plus any training state."""
    path = Path(path)
    payload = {"format": CHECKPOINT_FORMAT, "kind": method.kind, "method_config": method.config_dict(),
               "model": method.state_dict(), "teachdiff_version": teachdiff.__version__, **state}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def without_training_state(payload: dict) -> dict:
    """A checkpoint's payload without the state that only continues its run (:data:`TRAINING_STATE_KEYS`)."""
    return {k: v for k, v in payload.items() if k not in TRAINING_STATE_KEYS}


def checkpoint_file(path: str | Path) -> Path:
    """The checkpoint file ``path`` names: ``path`` itself, or ``path/best.pt`` when ``path`` is the
    folder of a training run (``teachdiff train --out path``)."""
    path = Path(path)
    if not path.is_dir():
        return path
    if (path / "best.pt").is_file():
        return path / "best.pt"
    found = sorted(p.name for p in path.glob("*.pt"))
    raise FileNotFoundError(f"checkpoint {path} is a folder without best.pt"
                            + (f" (it holds {', '.join(found)}); pass one of those files" if found else
                               "; pass a checkpoint file or the --out folder of a `teachdiff train` run") + ".")


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a checkpoint file with clear errors for a missing, corrupt or foreign file.

    ``path`` may be a run folder: its ``best.pt`` is read (:func:`checkpoint_file`)."""
    path = checkpoint_file(path)
    if isinstance(map_location, (str, torch.device)):
        map_location = teachdiff.device(map_location)  # a clear error for a device this machine lacks
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train one with `teachdiff train ... --out DIR` "
                                "(it writes DIR/best.pt and DIR/last.pt).")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises many types for a damaged file
        raise ValueError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); the file is "
                         "truncated or corrupt. Use another checkpoint (last.pt or best.pt) or retrain.") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a teachdiff checkpoint (format {CHECKPOINT_FORMAT} expected).")
    return payload
