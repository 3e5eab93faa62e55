"""One training loop for every method: the paper's recipe plus what users of EDM2/CAREamics expect.

The paper's recipe (§3.4): AdamW, batch size 8, lr 2e-4, cosine annealing of the learning rate,
and the checkpoint with the lowest validation MAE (computed on restored images) is the one kept.

Added for real use: optional EMA of the weights, mixed precision on a GPU (bf16, or fp16 with a
gradient scaler on cards without bf16: :mod:`teachdiff.core.precision`), channels-last and an
optional ``torch.compile``, gradient clipping, an ETA measured from the first steps, a tqdm
progress bar, a CSV + JSON log of every epoch, sample images,
atomic checkpoints that make an interrupted run resume to *the same weights* as an
uninterrupted one, a time budget, and multi-GPU training under ``torchrun``.

Reproducibility: all randomness of step k (data order, augmentation, dropout, diffusion
noise) is a function of ``(seed, epoch, k)``, never of a generator's history. That is what
makes resume exact without replaying the data.
"""

from __future__ import annotations

import os
from pathlib import Path
import torch
import teachdiff
from teachdiff.methods.base import RestorationMethod

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "checkpoint_file", "load_checkpoint"]


CHECKPOINT_FORMAT = "teachdiff-checkpoint-v1"


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
