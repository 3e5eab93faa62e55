"""Why teachdiff's Noise2Void fell behind CAREamics' (issue 29): one factor at a time.

The data mirror the CAREamics comparison of issue 29 at a smaller scale: ``--fovs`` simulated
synthetic-microtubules training images of 256² (the fixed 64² grid gives 16 patches each), Noise2Void
with depth 2 and 32 filters, batch 16, AdamW at ``--lr`` with the trainer's cosine schedule, flips and
90° rotations. Each run scores held-out 256² images simulated from seeds no split uses, in grey
levels: MAE to the GT raw, and after the least-squares affine map of the prediction onto its GT
(the dose change Noise2Void cannot learn, fitted away), for the last weights and for their EMA
(0.999 with warm-up), which does not change the training itself.

Factors:

* ``--replace``: the replacement of a blind spot. ``window``: a pixel drawn uniformly from the 11x11
  window minus its centre, the window shifted inside the patch at the border (teachdiff before issue
  29, n2v's ``uniform_withoutCP``); ``careamics``: CAREamics 0.3.5's ``uniform_manipulate`` as it is
  written (each axis's offset is indexed out of the ROI span without 0 by ``randint(-5, 6)``, so the
  replacement never lies on the centre's row or column and an offset of +1 is twice as likely; the
  position is clamped to the patch); ``nocross``: uniform over the window without its centre row and
  column (CAREamics' support without the doubled +1).
* ``--blur``: probability of the input-blur augmentation (teachdiff's default 0.25; CAREamics: none).
  Noise2Void's target is its input, so blurring it also blurs (and correlates) the target's noise.
* ``--crops``: a fresh random 64² crop per item instead of the fixed grid.
* ``--net``: ``teachdiff`` is the library's Noise2Void U-Net (PyTorch's default initialisation since
  this benchmark found it, 2026-12-04); ``glorot`` re-initialises it Glorot-uniform as CSBDeep does
  (what teachdiff's Noise2Void did before, and CARE still does: the rows of ``n2v_factors.md``
  named ``teachdiff``, ``torch-init`` is today's ``teachdiff``); ``careamics`` is the
  U-Net as CAREamics builds it, the same layer layout (333,185 parameters in both) with bilinear
  instead of nearest up-sampling, and ``bilinear`` is the same thing.

Usage (one thread, minutes per run):
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_n2v_factors.py --replace careamics \
        --crops --out /tmp/n2v-factors/a >> results.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from teachdiff.methods import n2v
from teachdiff.data import make_datasets
from teachdiff.data.loaders import Augmentation, SyntheticSizes
from teachdiff.core.scale import from_model_range, to_model_range
from teachdiff.data.synthetic import simulate_pair
from teachdiff.training.config import TrainConfig
from teachdiff.store.resolve import load_method
from teachdiff.training.loop import train

TEST_SEEDS = range(900_001, 900_005)  # held-out 256² test images (no split derives these seeds)


def careamics_replace(x, masked_percentage, radius, generator=None):
    """CAREamics 0.3.5's ``uniform_manipulate`` (pixel_manipulation.py) on (N, 1, H, W), with
    teachdiff's stratified coordinates (the same boxes: sqrt(100 / 0.198) vs sqrt(100 / 0.2))."""
    n, _, h, w = x.shape
    b, r, c = n2v.blind_spot_coords(n, h, w, masked_percentage, generator)
    span = torch.arange(-radius, radius + 1)
    span = span[span != 0]
    idx = torch.randint(-radius, radius + 1, (len(b), 2), generator=generator)  # their index, negatives wrap
    rr, cc = (r + span[idx[:, 0]]).clamp(0, h - 1), (c + span[idx[:, 1]]).clamp(0, w - 1)
    x_tilde = x.clone()
    x_tilde[b, 0, r, c] = x[b, 0, rr, cc]
    return x_tilde, (b, r, c)


def nocross_replace(x, masked_percentage, radius, generator=None):
    """Uniform over the (2r+1)² window without the centre's row and column, clamped to the patch."""
    n, _, h, w = x.shape
    b, r, c = n2v.blind_spot_coords(n, h, w, masked_percentage, generator)
    span = torch.cat([torch.arange(-radius, 0), torch.arange(1, radius + 1)])
    idx = torch.randint(0, len(span), (len(b), 2), generator=generator)
    rr, cc = (r + span[idx[:, 0]]).clamp(0, h - 1), (c + span[idx[:, 1]]).clamp(0, w - 1)
    x_tilde = x.clone()
    x_tilde[b, 0, r, c] = x[b, 0, rr, cc]
    return x_tilde, (b, r, c)


def change_network(bilinear_upsampling: bool = False, glorot_init: bool = False) -> None:
    """Make every CSBDeepUNet built from now on up-sample bilinearly and/or start from CSBDeep's
    Glorot-uniform weights (``torch.nn.functional`` itself is left alone: the module gets its own view)."""
    import types

    import torch.nn.functional as F

    from teachdiff.methods import care

    def bilinear(x, scale_factor, mode):
        return F.interpolate(x, scale_factor=scale_factor, mode="bilinear", align_corners=False)

    if bilinear_upsampling:
        care.F = types.SimpleNamespace(max_pool2d=F.max_pool2d, interpolate=bilinear)
    if not glorot_init:
        return
    build = care.CSBDeepUNet.__init__

    def init_as_csbdeep(self, *args, **kwargs):
        build(self, *args, **kwargs)
        for module in self.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)

    care.CSBDeepUNet.__init__ = init_as_csbdeep


def affine_mae(pred: np.ndarray, gt: np.ndarray) -> float:
    a, b = np.polyfit(pred.ravel().astype(np.float64), gt.ravel().astype(np.float64), 1)
    return float(np.abs(a * pred + b - gt).mean())


@torch.no_grad()
def score(method) -> dict:
    method.eval()
    raw, fitted = [], []
    for seed in TEST_SEEDS:
        pair = simulate_pair("microtubules", 256, seed, 8)
        x = torch.from_numpy(to_model_range(pair.x, 8).astype(np.float32))[None, None]
        pred = np.asarray(from_model_range(method.restore(x)[0, 0].numpy(), 8), dtype=np.float64)
        gt = pair.y.astype(np.float64)
        raw.append(float(np.abs(pred - gt).mean()))
        fitted.append(affine_mae(pred, gt))
    return {"mae": round(float(np.mean(raw)), 3), "mae_affine": round(float(np.mean(fitted)), 3)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=336)
    p.add_argument("--replace", choices=["window", "careamics", "nocross"], default="window")
    p.add_argument("--blur", type=float, default=0.0)
    p.add_argument("--crops", action="store_true")
    p.add_argument("--net", choices=["teachdiff", "glorot", "careamics", "bilinear"], default="teachdiff",
                   help="glorot: CSBDeep's initialisation (teachdiff's before); careamics = bilinear up-sampling")
    p.add_argument("--fovs", type=int, default=28)
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--seed", type=int, default=0, help="training seed: initialisation, order, blind spots")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the simulated training images")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    change_network(bilinear_upsampling=a.net in ("careamics", "bilinear"), glorot_init=a.net == "glorot")
    n2v.mask_blind_spots = {"window": n2v.mask_blind_spots, "careamics": careamics_replace,
                            "nocross": nocross_replace}[a.replace]
    datasets = make_datasets("synthetic-microtubules", quick=True, seed=a.data_seed,
                             augmentation=Augmentation(blur_probability=a.blur), random_crops=a.crops,
                             synthetic_sizes=SyntheticSizes(256, (a.fovs, 1, 1)), progress=False)
    epochs = max(1, a.steps // 56)
    cfg = TrainConfig(dataset="synthetic-microtubules", model="n2v", patch_size=64, batch_size=16, lr=a.lr,
                      epochs=epochs, steps_per_epoch=a.steps // epochs, val_every=10**9, grad_clip=None,
                      val_images=1, sample_every=0, seed=a.seed, ema_decay=0.999, random_crops=a.crops)
    t0 = time.time()
    train(cfg, n2v.N2VConfig(), a.out, datasets=datasets, progress=False, force=True)
    row = {k: v for k, v in vars(a).items() if k != "out"}
    row["train_s"] = round(time.time() - t0)
    row["last"] = score(load_method(Path(a.out) / "last.pt", use_ema=False))
    row["ema"] = score(load_method(Path(a.out) / "last.pt", use_ema=True))
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
