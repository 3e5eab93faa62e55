"""The presets: one table of every model x preset, and the chapters' choice of preset."""

from __future__ import annotations

import dataclasses
from typing import Callable
import torch
import teachdiff
from teachdiff.methods.care import CAREConfig
from teachdiff.methods.ddpm import DiffusionConfig
from teachdiff.methods.n2v import N2VConfig
from teachdiff.methods.pix2pix import Pix2PixConfig
from teachdiff.methods.rcan import RCANConfig
from teachdiff.methods.base import method_class
from teachdiff.core.unet import UNetConfig
from teachdiff.store.checkpoint import load_checkpoint
from teachdiff.training.config import PRESETS, TrainConfig, estimated_minutes, runs_dir

__all__ = ["PRESET_TABLE", "train_preset", "chapter_preset"]


def train_preset(dataset: str, preset: str = "quick", model: str = "ddpm") -> tuple[TrainConfig, object]:
    """The ``quick``, ``colab`` or ``paper`` configuration for one dataset and model: (TrainConfig, method config).

    ``paper``: the paper's settings (256² patches, batch 8, lr 2e-4, the paper's U-Net). The paper
    does not state the DDPM's number of epochs; we use 200, which ``--epochs`` overrides.
    ``quick``: the same code at 64² with the ``tiny`` network and 500 steps, minutes on a laptop
    CPU. Its learning rate is 1e-2, EDM2's reference value for magnitude-preserving networks:
    with forced weight normalisation every weight has unit scale, so 2e-4 moves them very
    slowly -- fine for the paper's long GPU runs, far too slow for a few hundred CPU steps.

    ``colab``: the paper's network and 256² patches on fewer steps, sized for one session on
    Colab's free T4 (at most about 60 minutes of training, within 15 GB). The arithmetic: a
    training image costs 1.26 TFLOP (``TRAIN_TFLOP_PER_IMAGE``); the T4 peaks at 65 TFLOP/s in
    fp16 (dense) and a U-Net with attention reaches roughly 25-35 % of that (an assumed MFU,
    to be replaced by ``benchmarks/gpu/run.sh``'s measurement), i.e. 16-23 TFLOP/s. 4000 steps
    of batch 8 = 32,000 images = 40 PFLOP: 30-41 minutes, plus 8 validations of 16 patches
    with 10 DDIM steps (67 TFLOP each, seconds). Memory: autocast keeps 1.3 GiB of activations
    per 256² image for the backward pass (2.4 GiB in fp32; measured with saved-tensor hooks on
    the CPU), so batch 8 needs about 10.6 GiB plus 1 GiB of weights and AdamW state: it fits
    the T4's 15 GB in fp16, not in fp32. The learning rate is 1e-3: EDM2's 1.2e-2 at batch
    2048, scaled by sqrt(8 / 2048) as for Adam (7.5e-4) and rounded up, since 4000 steps at
    the paper's 2e-4 barely move unit-scale weights. This choice is reasoned, not yet tuned
    on a GPU. The baselines' presets are sized the same way (``PRESET_TABLE``).

    Under ``TEACHDIFF_CAPPED=1`` (:func:`teachdiff.capped_mode`) every preset keeps its sizes
    and its network and trains one step of batch 1, validated on one image with one DDIM step
    (no sample images).
    """
    cfg, method_cfg = _preset(dataset, preset, model)
    if not teachdiff.capped_mode():
        return cfg, method_cfg
    cfg = dataclasses.replace(cfg, epochs=1, steps_per_epoch=1, batch_size=1, val_images=1, sample_every=0,
                              num_workers=0)
    if hasattr(method_cfg, "val_steps"):
        method_cfg = dataclasses.replace(method_cfg, val_steps=1)
    return cfg, method_cfg


# Every model x preset, in one table: the TrainConfig fields and the method's config.
#
# ``quick``: 64² patches and narrow networks, minutes on two CPU cores. ``colab``: the paper's
# network and recipe on fewer steps, sized for one session on Colab's free T4 (FLOPs per image in
# ``TRAIN_TFLOP_PER_IMAGE``; the baselines' minutes assume 10 % of the T4's 65 TFLOP/s fp16 peak,
# since networks this small are bound by memory traffic). ``paper``: §S3's settings.
#
# - ddpm: paper 256², batch 8, lr 2e-4, 200 epochs (the paper does not state them; ``--epochs``
#   overrides); colab 4000 steps of 8 at lr 1e-3 (see ``train_preset``); quick 500 steps of the tiny
#   network at EDM2's 1e-2.
# - care: paper §S3 (1000 epochs, batch 8, lr 4e-4), CSBDeep's network; colab 4000 steps (32,000
#   images x 0.091 TFLOP = 2.9 PFLOP, ~7.5 min); quick 240 steps, 16 filters, 3x3 kernels (~26 k
#   parameters).
# - n2v: paper §S3 (100 epochs, batch 32, lr 2e-4); colab 2000 steps (64,000 images x 0.033 TFLOP,
#   ~5.4 min); quick 240 steps of 8 at lr 4e-3, 16 filters. Validated only after the last epoch: no
#   model selection with the GT.
# - pix2pix: paper §S3 (5 epochs, batch 1, lr 2e-4, ``unet_256``); colab 10,000 steps of one image
#   (0.86 PFLOP, ~2.2 min, more since batch 1 is bound by kernel launches); quick ``n_down`` 6, ngf 16,
#   batch 4, 240 steps.
# - rcan: paper §S3 (<= 200 epochs, lr 1e-4, batch 1, the reference network); colab 3000 steps of
#   one image (3.4 PFLOP, ~9 min); quick widths 16-32, 2 groups of 2 RCABs, no dropout, batch 4.
_VALIDATE_AT_END_ONLY = 10**9
_PAPER = dict(patch_size=256, val_images=64, num_workers=4)
_COLAB = dict(patch_size=256, val_images=16, num_workers=2)
_QUICK = dict(patch_size=64, val_images=16, sample_every=0)
PRESET_TABLE: dict[tuple[str, str], tuple[dict, Callable[[], object]]] = {
    ("ddpm", "paper"): (dict(_PAPER, batch_size=8, lr=2e-4, epochs=200),
                        lambda: DiffusionConfig(unet=UNetConfig.paper(), val_steps=20)),
    ("ddpm", "colab"): (dict(_COLAB, batch_size=8, lr=1e-3, epochs=8, steps_per_epoch=500, sample_every=2),
                        lambda: DiffusionConfig(unet=UNetConfig.paper(), val_steps=10)),
    ("ddpm", "quick"): (dict(_QUICK, batch_size=8, lr=1e-2, epochs=10, steps_per_epoch=50, val_images=8),
                        lambda: DiffusionConfig(unet=UNetConfig.tiny(), val_steps=20)),
    ("care", "paper"): (dict(_PAPER, batch_size=8, lr=4e-4, epochs=1000, grad_clip=None, sample_every=50),
                        CAREConfig),
    ("care", "colab"): (dict(_COLAB, batch_size=8, lr=4e-4, epochs=8, steps_per_epoch=500, grad_clip=None,
                             sample_every=4), CAREConfig),
    ("care", "quick"): (dict(_QUICK, batch_size=8, lr=1e-3, epochs=4, steps_per_epoch=60, grad_clip=None),
                        lambda: CAREConfig(base_filters=16, kernel_size=3)),
    ("n2v", "paper"): (dict(_PAPER, batch_size=32, lr=2e-4, epochs=100, val_every=_VALIDATE_AT_END_ONLY,
                            grad_clip=None, sample_every=10), N2VConfig),
    ("n2v", "colab"): (dict(_COLAB, batch_size=32, lr=2e-4, epochs=4, steps_per_epoch=500,
                            val_every=_VALIDATE_AT_END_ONLY, grad_clip=None, sample_every=0), N2VConfig),
    ("n2v", "quick"): (dict(_QUICK, batch_size=8, lr=4e-3, epochs=4, steps_per_epoch=60,
                            val_every=_VALIDATE_AT_END_ONLY, grad_clip=None), lambda: N2VConfig(base_filters=16)),
    ("pix2pix", "paper"): (dict(_PAPER, batch_size=1, lr=2e-4, epochs=5, grad_clip=None, sample_every=1),
                           Pix2PixConfig),
    ("pix2pix", "colab"): (dict(_COLAB, batch_size=1, lr=2e-4, epochs=5, steps_per_epoch=2000, grad_clip=None,
                                sample_every=1), Pix2PixConfig),
    ("pix2pix", "quick"): (dict(_QUICK, batch_size=4, lr=1e-3, epochs=4, steps_per_epoch=60, grad_clip=None),
                           lambda: Pix2PixConfig(n_down=6, ngf=16, ndf=32)),
    ("rcan", "paper"): (dict(_PAPER, batch_size=1, lr=1e-4, epochs=200, grad_clip=None, sample_every=10),
                        RCANConfig),
    ("rcan", "colab"): (dict(_COLAB, batch_size=1, lr=1e-4, epochs=3, steps_per_epoch=1000, grad_clip=None,
                             sample_every=1), RCANConfig),
    ("rcan", "quick"): (dict(_QUICK, batch_size=4, lr=1e-3, epochs=4, steps_per_epoch=60, grad_clip=None),
                        lambda: RCANConfig(widths=(16, 32), attention_channels=4, n_groups=2, n_blocks=2,
                                           dropout=0.0)),
}


def _preset(dataset: str, preset: str, model: str) -> tuple[TrainConfig, object]:
    if preset not in PRESETS:
        raise ValueError(f"preset must be {', '.join(map(repr, PRESETS[:-1]))} or {PRESETS[-1]!r}, got {preset!r}.")
    method_class(model)  # a clear error for an unknown kind
    fields, method_config = PRESET_TABLE[(model, preset)]
    return TrainConfig(dataset=dataset, model=model, preset=preset, **fields), method_config()


# Assumed model-FLOPs utilisation (fraction of the card's dense 16-bit peak) for the time
# estimates of chapter_preset: the DDPM's U-Net is large enough for tensor cores to be busy;
# the small baselines are bound by memory traffic and kernel launches.
ASSUMED_MFU = {"ddpm": (0.25, 0.35)}
_SMALL_NETWORK_MFU = (0.05, 0.15)
_T4_FP16_TFLOPS = 65.0


def chapter_preset(dataset: str, *models: str, seed: int = 0) -> str:
    """The preset a chapter trains: ``quick`` in quick mode (``TEACHDIFF_QUICK=1``, silent), else
    ``colab`` (sized for one Colab T4 session, see :func:`train_preset`).

    In full mode it prints, for each of ``models`` (default ``ddpm``), whether the model zoo's
    model or a finished run in :func:`runs_dir` will be loaded (as :func:`train_or_load` does),
    or else how long training will take: steps x
    batch x FLOPs per image over the GPU's dense 16-bit peak at ``ASSUMED_MFU`` (on a CPU or an
    unknown card, the estimate for a Colab T4). The trainer replaces the estimate by a measured
    ETA after its first 20 steps.
    """
    from teachdiff.core.precision import choose_mode, peak_tflops

    if teachdiff.quick_mode():
        return "quick"
    preset = "colab"
    device = teachdiff.device()
    peak, card = None, "a Colab T4"
    if device.type == "cuda":
        card = torch.cuda.get_device_name(device)
        peak = peak_tflops(card, choose_mode(device))
    if peak is None:
        peak, card = _T4_FP16_TFLOPS, "a Colab T4"
    from teachdiff.store import zoo

    lines = []
    for model in models or ("ddpm",):
        run = runs_dir() / f"{dataset}-{model}-{preset}-seed{seed}"
        entry = zoo.find(dataset, model, preset)
        if entry is not None and entry.seed == seed:
            lines.append(f"  {model}: the model zoo's {entry.name} is loaded (no training)")
            continue
        if (run / "last.pt").exists() and load_checkpoint(run / "last.pt").get("finished", False):
            lines.append(f"  {model}: a finished run is loaded from {run}")
            continue
        cfg, _ = train_preset(dataset, preset, model)
        low, high = ASSUMED_MFU.get(model, _SMALL_NETWORK_MFU)
        slow, fast = estimated_minutes(cfg, peak * low), estimated_minutes(cfg, peak * high)
        lines.append(f"  {model}: {cfg.total_steps} steps of {cfg.batch_size} x {cfg.patch_size}², training takes "
                     f"≈ {fast:.0f}-{slow:.0f} min on {card} ({100 * low:.0f}-{100 * high:.0f} % MFU)")
    where = "" if device.type == "cuda" else f" (this {device.type} is many times slower: use a GPU)"
    print(f"full mode: preset {preset!r}{where}\n" + "\n".join(lines))
    return preset
