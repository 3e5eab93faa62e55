"""One training loop for every method: the paper's recipe plus what users of EDM2/CAREamics expect.

The paper's recipe (§3.4): AdamW, batch size 8, lr 2e-4, cosine annealing of the learning rate,
and the checkpoint with the lowest validation MAE (computed on restored images) is the one kept.

Added for real use: optional EMA of the weights, mixed precision on a GPU (bf16, or fp16 with a
gradient scaler on cards without bf16: :mod:`teachdiff.core.precision`), channels-last and an
optional ``torch.compile``, gradient clipping, an ETA measured from the first steps, a tqdm
progress bar, a CSV + JSON log of every epoch, sample images,
atomic checkpoints that make an interrupted run resume to *the same weights* as an
uninterrupted one, a time budget, and multi-GPU training under ``torchrun``.

Reproducibility: all randomness of step k (data order, augmentation, dropout, diffusion noise)
is a function of ``(seed, epoch, k)`` (:mod:`teachdiff.training.data_order`): resume is exact.

Reading order: :func:`train` sets a run up (:func:`_training_data`, :func:`_method_to_train`,
:func:`_trainee`, :func:`_resume`); each epoch then runs :func:`train_step` on every batch
(:func:`_train_epoch`) and ends with :func:`validate` and :func:`save_training_checkpoint`
(:func:`_end_epoch`).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
import teachdiff
from teachdiff.store import datacard
from teachdiff.core import precision
from teachdiff.core.scale import to_display_range
from teachdiff.store.guards import FolderLock, GracefulStop, ignore_interrupts
from teachdiff.methods.base import RestorationMethod, build_method
from teachdiff.core.precision import TrainingPrecision, prepare_network
from teachdiff.store.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from teachdiff.store.resolve import method_to_finetune
from teachdiff.training.config import TrainConfig
from teachdiff.training.data_order import SeededItems, derive_seed, epoch_batches, seed_all, unpack_batch
from teachdiff.training.presets import train_preset

__all__ = ["TrainResult", "Trainee", "RunState", "RunSetup", "train", "train_step", "validate",
           "save_training_checkpoint"]


# ----------------------------------------------------------------------------------------------
# The run: what stays fixed, what is trained, where it stands
# ----------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    out_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict] = field(default_factory=list)
    finished: bool = True  # False when stopped by max_steps / max_minutes / a signal (resume with resume=True)
    stop_reason: str | None = None  # when stopped early: "max_steps", "max_minutes", "SIGINT", "SIGTERM"


# What a run writes into --out; a new run refuses to start over any of them without --force.
RUN_FILES = ("last.pt", "best.pt", "config.json", "log.json", "log.csv", "samples")


@dataclass
class RunSetup:
    """What stays fixed during a run: its configuration, where it writes, which process this is
    (under ``torchrun``) and what the checkpoints record about the training data."""

    cfg: TrainConfig
    out_dir: Path
    device: torch.device
    rank: int
    world_size: int
    steps_per_epoch: int
    progress: bool
    normalization: dict | None  # the data's intensity mapping: a restoring user scales new images alike
    data_card: dict  # what the model was trained on (teachdiff.store.datacard)

    @property
    def is_main(self) -> bool:
        """Process 0 writes the files and the messages."""
        return self.rank == 0

    @property
    def total_steps(self) -> int:
        return self.cfg.epochs * self.steps_per_epoch


@dataclass
class Trainee:
    """The method being trained and what updates it: its optimisers, their learning-rate
    schedules, the precision policy (autocast and gradient scaler) and the EMA copy of its weights."""

    method: RestorationMethod
    optimizers: list[torch.optim.Optimizer]
    schedulers: list[torch.optim.lr_scheduler.LRScheduler]
    amp: TrainingPrecision
    ema: RestorationMethod | None
    trainable: torch.nn.Module  # what computes the loss: the method, or its DistributedDataParallel wrapper

    @property
    def averaged(self) -> RestorationMethod:
        """The weights that are validated and sampled: the EMA when the run keeps one."""
        return self.ema if self.ema is not None else self.method


@dataclass
class RunState:
    """Where a run stands: with the trainee's state, what ``last.pt`` holds to continue exactly."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches of the current epoch already taken
    best_val_mae: float = math.inf
    history: list[dict] = field(default_factory=list)  # one row per epoch (or part of one before a stop)


# ----------------------------------------------------------------------------------------------
# Setting a run up
# ----------------------------------------------------------------------------------------------


def _prepare_out_dir(out_dir: Path, resume: bool, guards: contextlib.ExitStack, force: bool = False) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"--out {out_dir} is a file; give a folder for the checkpoints and logs.")
    if resume and not (out_dir / "last.pt").exists():
        raise FileNotFoundError(f"--resume: {out_dir / 'last.pt'} does not exist; start without --resume.")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"cannot write to {out_dir} ({err.strerror}); choose a writable --out folder "
                              "with free space.") from None
    guards.enter_context(FolderLock(out_dir))  # before reading last.pt: another run may be writing it
    existing = [name for name in RUN_FILES if (out_dir / name).exists()]
    if existing and not resume:
        if not force:
            raise FileExistsError(f"{out_dir} already holds a training run ({', '.join(existing)}); pass --resume to "
                                  "continue it, --force to replace it, or choose a new --out folder. Nothing was "
                                  "overwritten.")
        for name in existing:  # --force: the old run goes, so no stale best.pt outlives it
            target = out_dir / name
            if target.is_dir():
                for png in target.glob("epoch_*.png"):
                    png.unlink()
            else:
                target.unlink()


def _distributed() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if world_size > 1:
        return dist.get_rank(), world_size, int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0


def _training_data(cfg: TrainConfig, datasets: dict[str, Dataset] | None, progress: bool,
                   is_main: bool) -> tuple[Dataset, Dataset, str]:
    """The training and validation sets: ``datasets`` when given, else the folder of ``cfg.data``
    or the registered ``cfg.dataset``; and the source that the data card names."""
    if datasets is not None:
        source = "datasets passed to train()"
    elif cfg.data is not None:
        from teachdiff.data.folder import make_folder_datasets

        datasets = make_folder_datasets(cfg.data, patch_size=cfg.patch_size, quick=cfg.preset == "quick",
                                        seed=cfg.seed, progress=progress, random_crops=cfg.random_crops)
        source = cfg.data.path
    else:
        from teachdiff.data import make_datasets

        datasets = make_datasets(cfg.dataset, root=cfg.data_root, patch_size=cfg.patch_size,
                                 quick=cfg.preset == "quick", seed=cfg.seed, progress=progress and is_main,
                                 random_crops=cfg.random_crops)
        source = cfg.dataset
    train_set, val_set = datasets["train"], datasets["val"]
    if len(train_set) == 0:
        raise ValueError(f"the training split of {cfg.dataset!r} is empty; check the dataset with "
                         f"`teachdiff data check PATH --dataset {cfg.dataset}`.")
    return train_set, val_set, source


def _method_to_train(cfg: TrainConfig, method_config, train_set: Dataset) -> RestorationMethod:
    """The method at step 0: the checkpoint ``cfg.init`` to fine-tune, which keeps its input
    statistics; else a new ``cfg.model`` (``method_config``, default the preset's) whose input
    statistics are measured on the training set."""
    seed_all(derive_seed(cfg.seed, 0))  # the initial weights
    if cfg.init is not None:
        return method_to_finetune(cfg.init, cfg.model)
    if method_config is None:
        method_config = train_preset(cfg.dataset, cfg.preset, cfg.model)[1]
    method = build_method(cfg.model, method_config)
    if hasattr(method, "calibrate"):
        calibration_items = [SeededItems(train_set, cfg.seed)[(-1, i)] for i in range(min(64, len(train_set)))]
        method.calibrate(calibration_items)
    return method


def _trainee(method: RestorationMethod, run: RunSetup) -> Trainee:
    """``method`` on the run's device with its optimisers (AdamW for the paper's recipe), cosine
    annealing of their learning rates over the whole run, the precision policy and, with
    ``ema_decay``, an EMA copy of the weights."""
    cfg, device = run.cfg, run.device
    method = prepare_network(method.to(device), device, channels_last=cfg.channels_last)
    amp = TrainingPrecision(precision.resolve(cfg.precision, device))
    optimizers = method.make_optimizers(cfg.lr, cfg.weight_decay)
    schedulers = [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=run.total_steps) for opt in optimizers]
    ema = copy.deepcopy(method).eval().requires_grad_(False) if cfg.ema_decay else None
    return Trainee(method, optimizers, schedulers, amp, ema, trainable=method)


def _resume(path: Path, trainee: Trainee, device: torch.device) -> RunState:
    """Load the checkpoint ``path`` (the run's ``last.pt``) into ``trainee``; returns where the run stood."""
    payload = load_checkpoint(path, map_location=device)
    if payload["kind"] != trainee.method.kind:
        raise ValueError(f"{path} holds a {payload['kind']!r} model; this run trains "
                         f"{trainee.method.kind!r}. Use a new --out folder.")
    trainee.method.load_state_dict(payload["model"])
    for opt, opt_state in zip(trainee.optimizers, payload["optimizers"]):
        opt.load_state_dict(opt_state)
    for sched, sched_state in zip(trainee.schedulers, payload["schedulers"]):
        sched.load_state_dict(sched_state)
    if trainee.ema is not None and payload.get("ema") is not None:
        trainee.ema.load_state_dict(payload["ema"])
    trainee.amp.load_state_dict(payload.get("grad_scaler"))
    return RunState(payload["step"], payload["epoch"], payload["batch_in_epoch"], payload["best_val_mae"],
                    payload["history"])


def _compile_and_distribute(trainee: Trainee, run: RunSetup) -> None:
    """``torch.compile`` the network when asked (after the EMA copy was taken: the copy stays a
    plain module), and under ``torchrun`` wrap it in ``DistributedDataParallel``."""
    cfg, method = run.cfg, trainee.method
    prepare_network(method, run.device, compile=cfg.compile, channels_last=cfg.channels_last)
    if run.world_size > 1:
        if method.custom_step:
            raise ValueError(f"{method.kind} uses its own optimisation step and cannot run under torchrun; "
                             "train it in a single process.")
        trainee.trainable = torch.nn.parallel.DistributedDataParallel(
            method, device_ids=[run.device.index] if run.device.type == "cuda" else None)


# ----------------------------------------------------------------------------------------------
# One step
# ----------------------------------------------------------------------------------------------


def ema_decay_at(step: int, decay: float) -> float:
    r"""The EMA decay used after optimizer step ``step`` (0 for the first), with warm-up:

    .. math::  \beta_n = \min\Big(\beta, \frac{1 + n}{10 + n}\Big), \qquad
               \theta^{\text{EMA}} \leftarrow \beta_n\, \theta^{\text{EMA}} + (1 - \beta_n)\, \theta

    as ``tf.train.ExponentialMovingAverage(decay, num_updates=n)``. Without it an EMA of 0.999
    still holds e^{-1} ≈ 37 % of the random initial weights after 1000 steps, which on a short
    CPU run makes the averaged model look worse than the raw one for most of the run.
    """
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    r"""One EMA step: :math:`\theta^{\text{EMA}} \leftarrow \beta\, \theta^{\text{EMA}} + (1 - \beta)\, \theta`
    for the parameters; buffers (batch-norm running statistics) are copied, since their own
    running average already smooths them and a stale copy would normalise with the initial ones."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p.detach(), 1 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def train_step(trainee: Trainee, x: torch.Tensor, y: torch.Tensor, step: int, run: RunSetup) -> float:
    """One optimisation step on the batch ``(x, y)``; returns its loss, averaged over processes.

    The method's ``forward`` is its loss: for the DDPM, Eq. 3 of the paper
    (:func:`teachdiff.core.diffusion.training_loss`). Backpropagation, gradient clipping and the
    optimiser step go through the precision policy (autocast, fp16 gradient scaling); then the
    learning rates take their cosine step and the EMA its share of the new weights. A method
    with its own step (pix2pix: a discriminator and a generator step) runs that instead. The
    step's randomness (dropout, diffusion noise) is a function of ``(seed, step)``.
    """
    cfg, method, amp, optimizers = run.cfg, trainee.method, trainee.amp, trainee.optimizers
    if not method.supervised:
        y = None  # self-supervised (Noise2Void): the target must never reach the loss
    seed_all(derive_seed(cfg.seed, 5, step, run.rank))  # dropout etc.
    noise_generator = torch.Generator().manual_seed(derive_seed(cfg.seed, 6, step))
    if method.custom_step:
        loss_value = method.training_step(x, y, optimizers, generator=noise_generator, amp=amp)["loss"]
    else:
        with amp.autocast():
            loss = trainee.trainable(x, y, generator=noise_generator, shard=(run.rank, run.world_size))
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the training loss became {loss.item()} at step {step}; lower the learning rate "
                f"(--lr, now {cfg.lr}) or check the data for NaN. The last good checkpoint is "
                f"{run.out_dir / 'last.pt'}.")
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        amp.backward(loss)
        amp.step(optimizers, method.parameters(), max_norm=cfg.grad_clip)
        loss_value = _mean_over_processes(loss.detach(), run.world_size)
    amp.update()
    for sched in trainee.schedulers:
        sched.step()
    if trainee.ema is not None:
        update_ema(trainee.ema, method, ema_decay_at(step, cfg.ema_decay))
    return loss_value


def _mean_over_processes(value: torch.Tensor, world_size: int) -> float:
    if world_size > 1:
        dist.all_reduce(value)  # gloo has no AVG: sum, then divide
        value = value / world_size
    return value.item()


# ----------------------------------------------------------------------------------------------
# Validate and checkpoint
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def validate(method: RestorationMethod, val_set: Dataset, n_images: int, device, seed: int,
             batch_size: int = 8) -> dict[str, float]:
    """Validation MAE (0..255 scale) of restored images against the targets, and of the raw inputs."""
    was_training = method.training
    method.eval()
    n = min(n_images, len(val_set))
    generator = torch.Generator().manual_seed(derive_seed(seed, 3))
    mae, mae_input = [], []
    for start in range(0, n, batch_size):
        items = [val_set[i] for i in range(start, min(start + batch_size, n))]
        x = torch.stack([unpack_batch(it)[0] for it in items]).to(device)
        y = torch.stack([unpack_batch(it)[1] for it in items]).to(device)
        pred = method.restore(x, generator=generator)
        mae.append((to_display_range(pred) - to_display_range(y)).abs().flatten(1).mean(1).cpu())
        mae_input.append((to_display_range(x) - to_display_range(y)).abs().flatten(1).mean(1).cpu())
    method.train(was_training)
    return {"val_mae": torch.cat(mae).mean().item(), "val_mae_input": torch.cat(mae_input).mean().item()}


def save_training_checkpoint(path: Path, trainee: Trainee, state: RunState, run: RunSetup) -> None:
    """Write what ``resume=True`` needs to continue as if the run had never stopped: the weights
    and their EMA, the optimiser, learning-rate schedule and gradient-scaler states, the position
    in the data, the best validation MAE and the log; and what a user of the model needs: the
    configuration, the data's normalisation and data card."""
    save_checkpoint(path, trainee.method, ema=trainee.ema.state_dict() if trainee.ema is not None else None,
                    optimizers=[o.state_dict() for o in trainee.optimizers],
                    schedulers=[s.state_dict() for s in trainee.schedulers], grad_scaler=trainee.amp.state_dict(),
                    step=state.step, epoch=state.epoch, batch_in_epoch=state.batch_in_epoch,
                    best_val_mae=state.best_val_mae, history=state.history,
                    train_config=dataclasses.asdict(run.cfg), finished=state.epoch >= run.cfg.epochs,
                    normalization=run.normalization, data_card=run.data_card)


def _save_samples(method, val_set, device, path: Path, seed: int, n: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, len(val_set))
    items = [val_set[i] for i in range(n)]
    x = torch.stack([unpack_batch(it)[0] for it in items]).to(device)
    y = torch.stack([unpack_batch(it)[1] for it in items])
    with torch.no_grad():
        pred = method.restore(x, generator=torch.Generator().manual_seed(derive_seed(seed, 4))).cpu()
    fig, axes = plt.subplots(3, n, figsize=(2.2 * n, 6.6), squeeze=False)
    for j in range(n):
        for i, (img, title) in enumerate(((x[j].cpu(), "input"), (pred[j], "restored"), (y[j], "target"))):
            axes[i, j].imshow(img[0].float().numpy(), cmap="magma", vmin=-1, vmax=1)
            axes[i, j].set_title(title, fontsize=8)
            axes[i, j].axis("off")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)


def _write_logs(out_dir: Path, history: list[dict]) -> None:
    atomic_write(out_dir / "log.json", lambda tmp: tmp.write_text(json.dumps(history, indent=1)))
    keys = list(dict.fromkeys(k for row in history for k in row))

    def write_csv(tmp):
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(history)

    atomic_write(out_dir / "log.csv", write_csv)


class _ETA:
    """Time per optimizer step measured over ``window`` steps after ``skip`` warm-up steps (the
    first steps pay for compilation, cuDNN autotuning and caches), turned into the time the
    run will take. Validation and sample images are not included."""

    def __init__(self, first_step: int, total_steps: int, max_steps: int | None, skip: int = 3, window: int = 20):
        self.start, self.end = first_step + skip, first_step + skip + window
        last = min(total_steps, max_steps) if max_steps is not None else total_steps
        self.first_step, self.remaining = first_step, last - first_step
        self.t_start = None

    def update(self, step: int) -> str | None:
        if step == self.start:
            self.t_start = time.monotonic()
        if step != self.end or self.t_start is None or self.remaining < self.end - self.first_step:
            return None
        per_step = (time.monotonic() - self.t_start) / (self.end - self.start)
        minutes = per_step * self.remaining / 60
        return (f"ETA: {per_step:.3g} s/step (measured over steps {self.start}-{self.end}) -> "
                f"≈ {minutes:.1f} min for the run's {self.remaining} steps, validation not included")


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------


def train(config: TrainConfig, method_config=None, out_dir: str | Path = "runs/train", resume: bool = False,
          datasets: dict[str, Dataset] | None = None, progress: bool = True,
          device: torch.device | str | None = None, force: bool = False) -> TrainResult:
    """Train ``config.model`` on ``config.dataset`` and write checkpoints and logs to ``out_dir``.

    ``datasets`` (``{"train": ..., "val": ...}``, items ``{"x", "y"}`` in [-1, 1]) overrides the
    dataset registry, e.g. for your own data. ``resume=True`` continues ``out_dir/last.pt``.
    Under ``torchrun --nproc_per_node N`` each process takes ``batch_size`` images per step: the
    effective batch is ``N * batch_size``; the learning rate is not rescaled (pass ``lr`` yourself).

    One run at a time writes to ``out_dir``: a second one fails at once, naming the process that
    holds the folder (:class:`teachdiff.store.guards.FolderLock`). Ctrl-C (SIGINT) or SIGTERM stops
    the run after the current step with the checkpoint ``resume=True`` continues exactly, as
    ``max_steps`` does (:class:`teachdiff.store.guards.GracefulStop`); a second Ctrl-C aborts at once.

    ``config.data`` (a :class:`~teachdiff.data.folder.FolderConfig`) trains on your own folder of
    pairs; its normalisation is saved in the checkpoints. ``config.init`` fine-tunes from a
    checkpoint: its architecture and weights replace ``method_config`` (see :func:`finetune_config`).
    A folder that holds a run is refused unless ``resume`` (continue) or ``force`` (replace).
    """
    with contextlib.ExitStack() as guards:
        return _train(config, method_config, Path(out_dir), resume, datasets, progress, device, guards, force)


def _train(config: TrainConfig, method_config, out_dir: Path, resume: bool, datasets: dict[str, Dataset] | None,
           progress: bool, device, guards: contextlib.ExitStack, force: bool = False) -> TrainResult:
    """:func:`train` inside ``guards``: the folder lock and the signal handler end with the run."""
    cfg = config
    rank, world_size, local_rank = _distributed()
    if rank == 0:
        _prepare_out_dir(out_dir, resume, guards, force)
    stop = guards.enter_context(GracefulStop())
    if world_size > 1:
        dist.barrier()
    if device is None:
        device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else teachdiff.device()
    device = teachdiff.device(device)  # a clear error for a device this machine lacks

    train_set, val_set, source = _training_data(cfg, datasets, progress, is_main=rank == 0)
    normalization = getattr(train_set, "normalization", None)
    normalization = normalization.to_dict() if normalization is not None else None
    method = _method_to_train(cfg, method_config, train_set)
    run = RunSetup(cfg, out_dir, device, rank, world_size, progress=progress,
                   steps_per_epoch=cfg.steps_per_epoch or max(1, len(train_set) // (cfg.batch_size * world_size)),
                   normalization=normalization,
                   data_card=datacard.from_training_set(source, train_set, cfg.patch_size, normalization,
                                                        getattr(train_set, "bit_depth", None)))
    trainee = _trainee(method, run)
    state = _resume(out_dir / "last.pt", trainee, device) if resume else RunState()
    _compile_and_distribute(trainee, run)
    if run.is_main:
        atomic_write(out_dir / "config.json", lambda tmp: tmp.write_text(json.dumps(
            {"train": dataclasses.asdict(cfg), "method": trainee.method.config_dict(), "world_size": world_size},
            indent=1)))
    return _run_epochs(trainee, state, run, train_set, val_set, stop)


def _run_epochs(trainee: Trainee, state: RunState, run: RunSetup, train_set: Dataset, val_set: Dataset,
                stop: GracefulStop) -> TrainResult:
    """The loop: epochs of :func:`train_step`, each ended by validation and checkpoints, until the
    last epoch or a stop (``max_steps``, ``max_minutes``, Ctrl-C, SIGTERM)."""
    cfg = run.cfg
    seeded_train = SeededItems(train_set, cfg.seed)
    start_time = time.monotonic()
    stop.start()  # from here on, Ctrl-C / SIGTERM end the run with a checkpoint
    bar = tqdm(total=run.total_steps, initial=state.step, desc=f"train {cfg.model} on {cfg.dataset}",
               disable=not (run.progress and run.is_main), dynamic_ncols=True)
    if run.is_main and run.progress:
        bar.write(f"precision: {trainee.amp.precision.describe()}{', compiled' if cfg.compile else ''}")
    eta = _ETA(state.step, run.total_steps, cfg.max_steps)
    trainee.method.train()
    stop_reason = None
    while state.epoch < cfg.epochs and stop_reason is None:
        row, stop_reason = _train_epoch(trainee, state, run, seeded_train, bar, eta,
                                        lambda step: _stop_reason(run, step, start_time, stop))
        _end_epoch(trainee, state, run, row, val_set, bar)
    bar.close()
    if run.is_main and not (run.out_dir / "best.pt").exists():  # no validation yet: the latest is the best
        save_training_checkpoint(run.out_dir / "best.pt", trainee, state, run)
    if run.world_size > 1:
        dist.barrier()
    if stop_reason is not None and run.is_main:
        why = "budget" if stop_reason.startswith("max_") else stop_reason
        print(f"stopped at step {state.step} ({why}); checkpoint {run.out_dir / 'last.pt'} written; continue "
              f"with the same command plus --resume --out {run.out_dir}")
    return TrainResult(run.out_dir, run.out_dir / "best.pt", run.out_dir / "last.pt", state.history,
                       finished=stop_reason is None, stop_reason=stop_reason)


def _train_epoch(trainee: Trainee, state: RunState, run: RunSetup, seeded_train: SeededItems, bar: tqdm, eta: _ETA,
                 stop_reason_after: Callable[[int], str | None]) -> tuple[dict, str | None]:
    """The remaining batches of epoch ``state.epoch``, one :func:`train_step` each, until the epoch
    ends or ``stop_reason_after(step)`` gives a reason to stop. Returns the epoch's log row and that reason."""
    cfg = run.cfg
    batches = epoch_batches(len(seeded_train), state.epoch, cfg.seed, cfg.batch_size, run.world_size, run.rank,
                            run.steps_per_epoch)[state.batch_in_epoch:]
    loader = DataLoader(seeded_train, batch_sampler=batches, num_workers=cfg.num_workers,
                        pin_memory=run.device.type == "cuda",
                        worker_init_fn=ignore_interrupts if cfg.num_workers else None)
    losses, epoch_start, images, reason = [], time.monotonic(), 0, None
    for batch in loader:
        x, y = (t.to(run.device, non_blocking=True) for t in unpack_batch(batch))
        loss_value = train_step(trainee, x, y, state.step, run)
        losses.append(loss_value)
        images += x.shape[0] * run.world_size
        state.step += 1
        state.batch_in_epoch += 1
        bar.update(1)
        bar.set_postfix(epoch=state.epoch, loss=f"{loss_value:.4f}",
                        lr=f"{trainee.schedulers[0].get_last_lr()[0]:.2e}")
        if run.is_main and run.progress and (message := eta.update(state.step)):
            bar.write(message)
        reason = stop_reason_after(state.step)
        if reason is not None:
            break
        if run.is_main and cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0:
            save_training_checkpoint(run.out_dir / "last.pt", trainee, state, run)
    row = {"epoch": state.epoch, "step": state.step, "train_loss": float(np.mean(losses)) if losses else math.nan,
           "lr": trainee.schedulers[0].get_last_lr()[0], "seconds": time.monotonic() - epoch_start,
           "images_per_s": images / max(time.monotonic() - epoch_start, 1e-9),
           "epoch_complete": state.batch_in_epoch >= run.steps_per_epoch}
    return row, reason


def _stop_reason(run: RunSetup, step: int, start_time: float, stop: GracefulStop) -> str | None:
    """Why the run stops after ``step``: ``max_steps``, ``max_minutes``, a signal's name; None to go on."""
    cfg = run.cfg
    out_of_time = cfg.max_minutes is not None and time.monotonic() - start_time > 60 * cfg.max_minutes
    reason = ("max_steps" if cfg.max_steps is not None and step >= cfg.max_steps else
              "max_minutes" if out_of_time else stop.requested)
    if run.world_size > 1:  # a signal or the clock may reach one process first: all stop at one step
        flags = torch.tensor([reason is not None], dtype=torch.float32, device=run.device)
        dist.all_reduce(flags)
        reason = reason or ("stopped by another process" if flags.item() else None)
    return reason


def _end_epoch(trainee: Trainee, state: RunState, run: RunSetup, row: dict, val_set: Dataset, bar: tqdm) -> None:
    """After an epoch, or the part of one before a stop: :func:`validate` when due, then write
    ``last.pt``, ``best.pt`` when the validation MAE is the lowest yet, the logs and sample images."""
    cfg = run.cfg
    epoch_done = row["epoch_complete"]
    if epoch_done and ((state.epoch + 1) % cfg.val_every == 0 or state.epoch + 1 == cfg.epochs) and len(val_set):
        with trainee.amp.inference():
            row.update(validate(trainee.averaged, val_set, cfg.val_images, run.device, cfg.seed))
        if run.is_main and row["val_mae"] < state.best_val_mae:
            state.best_val_mae = row["val_mae"]
            row["best"] = True
    if epoch_done:
        state.epoch, state.batch_in_epoch = state.epoch + 1, 0  # from here on: the epochs completed
    state.history.append(row)
    if not run.is_main:
        return
    save_training_checkpoint(run.out_dir / "last.pt", trainee, state, run)
    if row.get("best"):
        save_training_checkpoint(run.out_dir / "best.pt", trainee, state, run)
    _write_logs(run.out_dir, state.history)
    if cfg.sample_every and epoch_done and state.epoch % cfg.sample_every == 0 and len(val_set):
        (run.out_dir / "samples").mkdir(exist_ok=True)
        with trainee.amp.inference():
            _save_samples(trainee.averaged, val_set, run.device,
                          run.out_dir / "samples" / f"epoch_{state.epoch:04d}.png", cfg.seed)
    if "val_mae" in row:
        bar.write(f"epoch {state.epoch}: loss {row['train_loss']:.4f}  val MAE {row['val_mae']:.2f} "
                  f"(input {row['val_mae_input']:.2f})  {row['images_per_s']:.1f} img/s")
