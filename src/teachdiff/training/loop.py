"""The training loop: one step, validate, checkpoint."""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import json
import math
import os
import random
import time
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
from teachdiff.store.guards import FolderLock, GracefulStop, ignore_interrupts
from teachdiff.methods.base import RestorationMethod, build_method
from teachdiff.core.precision import TrainingPrecision, prepare_network
from teachdiff.store.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from teachdiff.store.resolve import _method_from_checkpoint
from teachdiff.training.config import TrainConfig
from teachdiff.training.presets import train_preset

__all__ = ["TrainResult", "train"]


# ----------------------------------------------------------------------------------------------
# Data order and randomness as functions of (seed, epoch, step)
# ----------------------------------------------------------------------------------------------


def _mix(*keys: int) -> int:
    """A well-spread 63-bit seed from integers (SeedSequence hashing)."""
    return int(np.random.SeedSequence([k & 0xFFFFFFFF for k in keys]).generate_state(2, np.uint64)[0] >> 1)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _SeededItems(Dataset):
    """Indexes by (epoch, index): seeds every RNG from (seed, epoch, index) before reading an item,
    so random augmentation is the same whatever process or worker reads it."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        _seed_all(_mix(self.seed, 1, epoch, index))
        return self.dataset[index]


def _epoch_batches(n_items: int, epoch: int, seed: int, batch_size: int, world_size: int, rank: int,
                   steps: int) -> list[list[tuple[int, int]]]:
    """This process's batches for one epoch: a fresh permutation per epoch (repeated when the
    epoch needs more items than the set has); global batch b holds items b*B*W ... and process r
    takes its slice of B."""
    g = torch.Generator().manual_seed(_mix(seed, 2, epoch))
    need = steps * batch_size * world_size
    order = torch.cat([torch.randperm(n_items, generator=g) for _ in range(math.ceil(need / n_items))])
    batches = []
    for b in range(steps):
        start = (b * world_size + rank) * batch_size
        batches.append([(epoch, int(i)) for i in order[start:start + batch_size]])
    return batches


def _unpack(batch) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, dict):
        return batch["x"], batch["y"]
    return batch[0], batch[1]


# ----------------------------------------------------------------------------------------------
# The loop
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


def _to_uint8_scale(t: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> 0..255 (float), the scale every metric of the paper uses."""
    return ((t.float().clamp(-1, 1) + 1) * 127.5)


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


@torch.no_grad()
def validate(method: RestorationMethod, val_set: Dataset, n_images: int, device, seed: int,
             batch_size: int = 8) -> dict[str, float]:
    """Validation MAE (0..255 scale) of restored images against the targets, and of the raw inputs."""
    was_training = method.training
    method.eval()
    n = min(n_images, len(val_set))
    generator = torch.Generator().manual_seed(_mix(seed, 3))
    mae, mae_input = [], []
    for start in range(0, n, batch_size):
        items = [val_set[i] for i in range(start, min(start + batch_size, n))]
        x = torch.stack([_unpack(it)[0] for it in items]).to(device)
        y = torch.stack([_unpack(it)[1] for it in items]).to(device)
        pred = method.restore(x, generator=generator)
        mae.append((_to_uint8_scale(pred) - _to_uint8_scale(y)).abs().flatten(1).mean(1).cpu())
        mae_input.append((_to_uint8_scale(x) - _to_uint8_scale(y)).abs().flatten(1).mean(1).cpu())
    method.train(was_training)
    return {"val_mae": torch.cat(mae).mean().item(), "val_mae_input": torch.cat(mae_input).mean().item()}


def _save_samples(method, val_set, device, path: Path, seed: int, n: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, len(val_set))
    items = [val_set[i] for i in range(n)]
    x = torch.stack([_unpack(it)[0] for it in items]).to(device)
    y = torch.stack([_unpack(it)[1] for it in items])
    with torch.no_grad():
        pred = method.restore(x, generator=torch.Generator().manual_seed(_mix(seed, 4))).cpu()
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
    cfg = config
    rank, world_size, local_rank = _distributed()
    is_main = rank == 0
    if is_main:
        _prepare_out_dir(out_dir, resume, guards, force)
    stop = guards.enter_context(GracefulStop())
    if world_size > 1:
        dist.barrier()
    if device is None:
        device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else teachdiff.device()
    device = teachdiff.device(device)  # a clear error for a device this machine lacks

    own_datasets = datasets is None  # built from the config, so the config names the training data
    if datasets is None and cfg.data is not None:
        from teachdiff.data.folder import make_folder_datasets

        datasets = make_folder_datasets(cfg.data, patch_size=cfg.patch_size, quick=cfg.preset == "quick",
                                        seed=cfg.seed, progress=progress, random_crops=cfg.random_crops)
    elif datasets is None:
        from teachdiff.data import make_datasets

        datasets = make_datasets(cfg.dataset, root=cfg.data_root, patch_size=cfg.patch_size,
                                 quick=cfg.preset == "quick", seed=cfg.seed, progress=progress and is_main,
                                 random_crops=cfg.random_crops)
    train_set, val_set = datasets["train"], datasets["val"]
    if len(train_set) == 0:
        raise ValueError(f"the training split of {cfg.dataset!r} is empty; check the dataset with "
                         f"`teachdiff data check PATH --dataset {cfg.dataset}`.")
    steps_per_epoch = cfg.steps_per_epoch or max(1, len(train_set) // (cfg.batch_size * world_size))
    total_steps = cfg.epochs * steps_per_epoch

    normalization = getattr(train_set, "normalization", None)
    _seed_all(_mix(cfg.seed, 0))
    if cfg.init is not None:
        method = _method_from_checkpoint(cfg.init, cfg.model)
    else:
        if method_config is None:
            method_config = train_preset(cfg.dataset, cfg.preset, cfg.model)[1]
        method = build_method(cfg.model, method_config)
    if hasattr(method, "calibrate") and cfg.init is None:  # a fine-tuned model keeps its input statistics
        calibration_items = [_SeededItems(train_set, cfg.seed)[(-1, i)] for i in range(min(64, len(train_set)))]
        method.calibrate(calibration_items)
    source = (cfg.data.path if cfg.data is not None else cfg.dataset) if own_datasets else "datasets passed to train()"
    data_card = datacard.from_training_set(source, train_set, cfg.patch_size,
                                           normalization.to_dict() if normalization is not None else None,
                                           getattr(train_set, "bit_depth", None))
    method = prepare_network(method.to(device), device, channels_last=cfg.channels_last)
    amp = TrainingPrecision(precision.resolve(cfg.precision, device))
    optimizers = method.make_optimizers(cfg.lr, cfg.weight_decay)
    schedulers = [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps) for opt in optimizers]
    ema = copy.deepcopy(method).eval().requires_grad_(False) if cfg.ema_decay else None

    step, epoch, batch_in_epoch, best_val = 0, 0, 0, math.inf
    history: list[dict] = []
    if resume:
        state = load_checkpoint(out_dir / "last.pt", map_location=device)
        if state["kind"] != method.kind:
            raise ValueError(f"{out_dir / 'last.pt'} holds a {state['kind']!r} model; this run trains "
                             f"{method.kind!r}. Use a new --out folder.")
        method.load_state_dict(state["model"])
        for opt, opt_state in zip(optimizers, state["optimizers"]):
            opt.load_state_dict(opt_state)
        for sched, sched_state in zip(schedulers, state["schedulers"]):
            sched.load_state_dict(sched_state)
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        amp.load_state_dict(state.get("grad_scaler"))
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        best_val, history = state["best_val_mae"], state["history"]

    prepare_network(method, device, compile=cfg.compile, channels_last=cfg.channels_last)  # after the EMA copy
    trainable = method
    if world_size > 1:
        if method.custom_step:
            raise ValueError(f"{method.kind} uses its own optimisation step and cannot run under torchrun; "
                             "train it in a single process.")
        trainable = torch.nn.parallel.DistributedDataParallel(
            method, device_ids=[device.index] if device.type == "cuda" else None)

    def checkpoint(name: str) -> None:
        if not is_main:
            return
        save_checkpoint(out_dir / name, method, ema=ema.state_dict() if ema is not None else None,
                        optimizers=[o.state_dict() for o in optimizers],
                        schedulers=[s.state_dict() for s in schedulers], grad_scaler=amp.state_dict(),
                        step=step, epoch=epoch,
                        batch_in_epoch=batch_in_epoch, best_val_mae=best_val, history=history,
                        train_config=dataclasses.asdict(cfg), finished=epoch >= cfg.epochs,
                        normalization=normalization.to_dict() if normalization is not None else None,
                        data_card=data_card)

    if is_main:
        atomic_write(out_dir / "config.json", lambda tmp: tmp.write_text(json.dumps(
            {"train": dataclasses.asdict(cfg), "method": method.config_dict(), "world_size": world_size}, indent=1)))

    seeded_train = _SeededItems(train_set, cfg.seed)
    start_time = time.monotonic()
    stopped, stop_reason = False, None
    stop.start()  # from here on, Ctrl-C / SIGTERM end the run with a checkpoint
    bar = tqdm(total=total_steps, initial=step, desc=f"train {cfg.model} on {cfg.dataset}",
               disable=not (progress and is_main), dynamic_ncols=True)
    if is_main and progress:
        bar.write(f"precision: {amp.precision.describe()}{', compiled' if cfg.compile else ''}")
    eta = _ETA(step, total_steps, cfg.max_steps)
    method.train()
    while epoch < cfg.epochs and not stopped:
        batches = _epoch_batches(len(train_set), epoch, cfg.seed, cfg.batch_size, world_size, rank,
                                 steps_per_epoch)[batch_in_epoch:]
        loader = DataLoader(seeded_train, batch_sampler=batches, num_workers=cfg.num_workers,
                            pin_memory=device.type == "cuda",
                            worker_init_fn=ignore_interrupts if cfg.num_workers else None)
        losses, epoch_start, images = [], time.monotonic(), 0
        for batch in loader:
            x, y = (t.to(device, non_blocking=True) for t in _unpack(batch))
            if not method.supervised:
                y = None
            _seed_all(_mix(cfg.seed, 5, step, rank))  # dropout etc.
            noise_gen = torch.Generator().manual_seed(_mix(cfg.seed, 6, step))
            if method.custom_step:
                logs = method.training_step(x, y, optimizers, generator=noise_gen, amp=amp)
                loss_value = logs["loss"]
            else:
                with amp.autocast():
                    loss = trainable(x, y, generator=noise_gen, shard=(rank, world_size))
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"the training loss became {loss.item()} at step {step}; lower the learning rate "
                        f"(--lr, now {cfg.lr}) or check the data for NaN. The last good checkpoint is "
                        f"{out_dir / 'last.pt'}.")
                for opt in optimizers:
                    opt.zero_grad(set_to_none=True)
                amp.backward(loss)
                amp.step(optimizers, method.parameters(), max_norm=cfg.grad_clip)
                loss_value = loss.detach()
                if world_size > 1:
                    dist.all_reduce(loss_value)  # gloo has no AVG: sum, then divide
                    loss_value = loss_value / world_size
                loss_value = loss_value.item()
            amp.update()
            for sched in schedulers:
                sched.step()
            if ema is not None:
                update_ema(ema, method, ema_decay_at(step, cfg.ema_decay))
            losses.append(loss_value)
            images += x.shape[0] * world_size
            step += 1
            batch_in_epoch += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{loss_value:.4f}", lr=f"{schedulers[0].get_last_lr()[0]:.2e}")
            if is_main and progress and (message := eta.update(step)):
                bar.write(message)
            out_of_time = cfg.max_minutes is not None and time.monotonic() - start_time > 60 * cfg.max_minutes
            stop_reason = ("max_steps" if cfg.max_steps is not None and step >= cfg.max_steps else
                           "max_minutes" if out_of_time else stop.requested)
            if world_size > 1:  # a signal or the clock may reach one process first: all stop at one step
                flags = torch.tensor([stop_reason is not None], dtype=torch.float32, device=device)
                dist.all_reduce(flags)
                stop_reason = stop_reason or ("stopped by another process" if flags.item() else None)
            if stop_reason is not None:
                stopped = True
                break
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                checkpoint("last.pt")

        epoch_done = batch_in_epoch >= steps_per_epoch
        row = {"epoch": epoch, "step": step, "train_loss": float(np.mean(losses)) if losses else math.nan,
               "lr": schedulers[0].get_last_lr()[0], "seconds": time.monotonic() - epoch_start,
               "images_per_s": images / max(time.monotonic() - epoch_start, 1e-9), "epoch_complete": epoch_done}
        if epoch_done and ((epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs) and len(val_set):
            with amp.inference():
                row.update(validate(ema if ema is not None else method, val_set, cfg.val_images, device, cfg.seed))
            if is_main and row["val_mae"] < best_val:
                best_val = row["val_mae"]
                row["best"] = True
        if epoch_done:
            epoch, batch_in_epoch = epoch + 1, 0
        history.append(row)
        checkpoint("last.pt")
        if row.get("best"):
            checkpoint("best.pt")
        if is_main:
            _write_logs(out_dir, history)
            if cfg.sample_every and epoch_done and epoch % cfg.sample_every == 0 and len(val_set):
                (out_dir / "samples").mkdir(exist_ok=True)
                with amp.inference():
                    _save_samples(ema if ema is not None else method, val_set, device,
                                  out_dir / "samples" / f"epoch_{epoch:04d}.png", cfg.seed)
            if "val_mae" in row:
                bar.write(f"epoch {epoch}: loss {row['train_loss']:.4f}  val MAE {row['val_mae']:.2f} "
                          f"(input {row['val_mae_input']:.2f})  {row['images_per_s']:.1f} img/s")
    bar.close()
    if is_main and not (out_dir / "best.pt").exists():
        checkpoint("best.pt")  # no validation yet: the latest weights are the best we have
    if world_size > 1:
        dist.barrier()
    if stopped and is_main:
        why = "budget" if stop_reason.startswith("max_") else stop_reason
        print(f"stopped at step {step} ({why}); checkpoint {out_dir / 'last.pt'} written; continue with the "
              f"same command plus --resume --out {out_dir}")
    return TrainResult(out_dir, out_dir / "best.pt", out_dir / "last.pt", history, finished=not stopped,
                       stop_reason=stop_reason if stopped else None)
