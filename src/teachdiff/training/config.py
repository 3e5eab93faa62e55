"""TrainConfig: everything a training run is given, as one plain dataclass."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
import teachdiff
from teachdiff.core import choices
from teachdiff.data.folder import FolderConfig

__all__ = ["TrainConfig", "PRESETS", "estimated_minutes", "FINETUNE_LR_FACTOR", "finetune_config", "runs_dir"]


@dataclass
class TrainConfig:
    """Everything a training run needs besides the method's own architecture config."""

    dataset: str = "synthetic-microtubules"
    model: str = "ddpm"
    preset: str = "quick"
    patch_size: int = 64
    random_crops: bool = False  # training items: a fresh crop of the image each time, not the fixed grid
    batch_size: int = 8
    lr: float = 2e-4
    weight_decay: float = 0.0
    epochs: int = 10
    steps_per_epoch: int | None = None  # None: one pass over the training set
    grad_clip: float | None = 1.0
    ema_decay: float | None = None  # e.g. 0.999; the paper uses none
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (teachdiff.core.precision: bf16/fp16 on GPUs, fp32 on CPU)
    compile: bool = False  # torch.compile the network(s)
    channels_last: bool = True  # on CUDA only (precision.prepare_network)
    val_images: int = 16  # validation patches restored and scored each validation
    val_every: int = 1  # epochs
    sample_every: int = 1  # epochs between sample-image PNGs (0: never)
    checkpoint_every: int = 0  # also checkpoint every N steps (0: once per epoch)
    num_workers: int = 0
    seed: int = 0
    max_minutes: float | None = None  # stop (and checkpoint) after this much time
    max_steps: int | None = None  # stop (and checkpoint) after this many optimizer steps
    data_root: str | None = None  # folder of the real dataset (None: the default location)
    data: "FolderConfig | None" = None  # your own folder of pairs instead of `dataset` (teachdiff.data.folder)
    init: str | None = None  # fine-tune from this checkpoint (architecture and weights taken from it)

    @property
    def total_steps(self) -> int | None:
        return None if self.steps_per_epoch is None else self.epochs * self.steps_per_epoch


PRESETS = choices.PRESETS

# Training FLOPs per image (forward + backward) at 256², measured with
# torch.utils.flop_counter.FlopCounterMode on each model's paper configuration (pix2pix: one
# discriminator and one generator step). Used for the colab presets and their time estimates.
TRAIN_TFLOP_PER_IMAGE = {"ddpm": 1.26, "care": 0.091, "n2v": 0.033, "pix2pix": 0.086, "rcan": 1.14}


def estimated_minutes(cfg: TrainConfig, tflops: float) -> float | None:
    """Minutes of training (validation not included) for a config at ``tflops`` TFLOP/s of
    achieved throughput: steps x batch x training FLOPs per image (scaled by the patch area
    from 256²). None when the number of steps depends on the dataset's size."""
    if cfg.total_steps is None or cfg.model not in TRAIN_TFLOP_PER_IMAGE:
        return None
    images = cfg.total_steps * cfg.batch_size
    return images * TRAIN_TFLOP_PER_IMAGE[cfg.model] * (cfg.patch_size / 256) ** 2 / tflops / 60


# Fine-tuning starts from trained weights: a tenth of the preset's learning rate keeps the first
# steps from undoing them (CAREamics and CSBDeep users lower the rate likewise when transferring).
FINETUNE_LR_FACTOR = 0.1


def finetune_config(cfg: TrainConfig, init: str | Path, lr: float | None = None) -> TrainConfig:
    """``cfg`` for fine-tuning from ``init``: the learning rate ``lr``, else the preset's x ``FINETUNE_LR_FACTOR``."""
    return dataclasses.replace(cfg, init=str(init), lr=lr if lr is not None else cfg.lr * FINETUNE_LR_FACTOR)


def runs_dir() -> Path:
    """Where :func:`train_or_load` keeps its runs: ``$TEACHDIFF_RUNS`` or the user cache folder;
    its ``capped`` subfolder under ``TEACHDIFF_CAPPED=1``, so that a capped run is never loaded
    as a finished run of its preset."""
    if os.environ.get("TEACHDIFF_RUNS"):
        base = Path(os.environ["TEACHDIFF_RUNS"])
    else:
        from platformdirs import user_cache_dir

        base = Path(user_cache_dir("teachdiff")) / "runs"
    return base / "capped" if teachdiff.capped_mode() else base
