"""Full-mode smoke: every chapter's full-mode code path at the paper's sizes, with capped counts.

    python benchmarks/gpu/full_mode_smoke.py --device cuda     # part of benchmarks/gpu/run.sh
    python benchmarks/gpu/full_mode_smoke.py --device cpu

On the CPU, CI runs the chapters themselves instead (tests/test_notebooks_full_mode.py, under
``TEACHDIFF_CAPPED=1``); this script keeps checking the GPU side: autocast, channels-last and
the memory of the paper's sizes on a real card.

Full mode (``TEACHDIFF_QUICK`` unset) runs the same code as the book's quick mode with other
sizes; this script makes sure those sizes work without the hours they cost. It keeps what
full mode changes -- 256² patches, the paper's U-Net and the baselines' paper networks, the
``colab`` presets that :func:`teachdiff.training.presets.chapter_preset` picks, full-size synthetic data
-- and caps only the counts: ``--train-steps`` optimizer steps of batch 1 per model,
``--samples`` samples, ``--images`` test images and ``--sampler-steps`` sampler steps (the DDPM
sampler runs on a ``T = --sampler-steps`` schedule: the same code, fewer steps).

What it runs, chapter by chapter (the runs go to a temporary ``TEACHDIFF_RUNS`` folder):

- 4: ``chapter_preset`` (the estimate it prints), ``train`` of the colab preset capped, stopped
  by ``max_steps`` and resumed (checkpoint, validation, sample images), then ``train_or_load``;
- 5: ``teachdiff.inference.sampling.sample`` with the DDPM and the DDIM sampler on 256² test patches;
- 6: ``restore`` (DDPM-avg with its std and entropy maps);
- 7: ``metrics.evaluate`` (MAE, PSNR, MS-SSIM, LPIPS, decorrelation resolution) at 256²;
- 8-12: the four baselines trained capped in the folders ``train_or_load`` uses, then
  ``reproduce`` with the colab preset (every model, classical filters, scores, table, plots);
- 13: ``teachdiff restore`` on a 256 x 288 TIFF in 256-pixel tiles (checkpoint load, tiling;
  one DDIM step).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

MODELS = ("ddpm", "care", "n2v", "pix2pix", "rcan")
DATASET = "synthetic-microtubules"


def _capped(model: str, train_steps: int, images: int):
    """The colab preset of ``model`` with capped counts and the paper's sizes."""
    from teachdiff.training.presets import train_preset

    cfg, method_cfg = train_preset(DATASET, "colab", model)
    cfg = dataclasses.replace(cfg, epochs=1, steps_per_epoch=train_steps, batch_size=1, val_images=images,
                              sample_every=0, num_workers=0)
    if model == "ddpm":  # two epochs: one to interrupt and resume, sample images after the second
        cfg = dataclasses.replace(cfg, epochs=2, sample_every=2)
        method_cfg = dataclasses.replace(method_cfg, val_steps=1)
    return cfg, method_cfg


def run_smoke(device: str, work: Path, train_steps: int = 1, samples: int = 2, images: int = 1,
              sampler_steps: int = 2) -> dict[str, float]:
    """Run every chapter's full-mode path; returns the seconds each part took."""
    os.environ.pop("TEACHDIFF_QUICK", None)
    os.environ["TEACHDIFF_RUNS"] = str(work / "runs")
    import teachdiff
    from teachdiff.evaluation import metrics
    from teachdiff.cli.main import main as cli_main
    from teachdiff.data import get_dataset_info, make_datasets
    from teachdiff.core.diffusion import NoiseSchedule
    from teachdiff.inference.restore import restore
    from teachdiff.inference.sampling import sample
    from teachdiff.evaluation.reproduce import ReproduceConfig, reproduce
    from teachdiff.training.presets import chapter_preset
    from teachdiff.training.config import runs_dir
    from teachdiff.training.loop import train
    from teachdiff.training.runs import train_or_load

    assert not teachdiff.quick_mode()
    times: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        times[name] = time.perf_counter() - clock
        print(f"[smoke] {name}: {times[name]:.1f} s", flush=True)
        clock = time.perf_counter()

    # Chapter 4: the preset full mode picks, trained (capped), interrupted, resumed, loaded.
    preset = chapter_preset(DATASET, *MODELS)
    assert preset == "colab", preset
    cfg, method_cfg = _capped("ddpm", train_steps, images)
    run = runs_dir() / f"{DATASET}-ddpm-{preset}-seed0"
    stopped = train(dataclasses.replace(cfg, max_steps=train_steps), method_cfg, run, progress=False,
                    device=device)
    assert not stopped.finished
    finished = train(cfg, method_cfg, run, resume=True, progress=False, device=device)
    assert finished.finished and (run / "samples").is_dir()
    method = train_or_load(DATASET, preset=preset, seed=0, progress=False, use_zoo=False).to(device)
    assert method.unet.config.image_size == 256 and method.unet.config.channels == 64
    lap("ch4 train, resume, load (paper U-Net, 256²)")

    # Chapter 5: both samplers on 256² test patches.
    test_set = make_datasets(DATASET, patch_size=256, quick=False, seed=0)["test"]
    x = torch.stack([test_set[i]["x"] for i in range(images)]).to(device)
    y = torch.stack([test_set[i]["y"] for i in range(images)])
    short = NoiseSchedule(T=sampler_steps)
    ddpm = sample(method.unet, x, short, n_samples=1, sampler="ddpm", seed=0, progress=False)
    ddim = sample(method.unet, x, method.schedule, n_samples=1, sampler="ddim", steps=sampler_steps, seed=0,
                  progress=False)
    assert ddpm.shape == ddim.shape == (images, 1, 1, 256, 256)
    lap("ch5 DDPM and DDIM sampling")

    # Chapter 6: DDPM-avg with uncertainty maps.
    result = restore(method.unet, x, short, n_samples=samples, sampler="ddpm", keep_samples=True, seed=0,
                     progress=False)
    assert result.samples.shape[1] == samples and torch.isfinite(result.std).all()
    lap("ch6 DDPM-avg and uncertainty maps")

    # Chapter 7: the metrics at the paper's size.
    to255 = lambda t: ((t.float().clamp(-1, 1) + 1) * 127.5).cpu().numpy()  # noqa: E731
    pixel_size = get_dataset_info(DATASET).pixel_size_nm
    scores = metrics.evaluate(to255(result.mean[0, 0]), to255(y[0, 0]), pixel_size=pixel_size)
    assert np.isfinite(scores["mae"]) and np.isfinite(scores["psnr"])
    lap("ch7 metrics")

    # Chapters 8-12: every baseline (capped) where train_or_load finds it, then reproduce.
    for model in MODELS[1:]:
        cfg_b, method_cfg_b = _capped(model, train_steps, images)
        train(cfg_b, method_cfg_b, runs_dir() / f"{DATASET}-{model}-{preset}-seed0", progress=False, device=device)
    lap("ch8 baselines trained (paper networks)")
    repro = dataclasses.replace(ReproduceConfig.preset_for(DATASET, preset), test_images=images, n_avg=samples,
                                sampler="ddim", steps=sampler_steps, shared_models=True, use_zoo=False)
    out = reproduce(repro, work / "reproduce", progress=False)
    assert {r["method"] for r in out["table"]} >= {"ddpm", "ddpm-avg", *MODELS[1:]}
    assert (work / "reproduce" / "table.md").is_file()
    lap("ch8-12 reproduce (colab preset)")

    # Chapter 13: the restore command on a TIFF larger than one tile.
    import tifffile

    image = (np.random.default_rng(0).random((256, 288)) * 255).astype(np.uint8)
    tifffile.imwrite(work / "capture.tif", image)
    code = cli_main(["restore", "--checkpoint", str(run / "best.pt"), str(work / "capture.tif"), "--out",
                     str(work / "restored"), "--samples", str(samples), "--sampler", "ddim", "--steps", "1",
                     "--tile", "256", "--overlap", "32", "--device", device, "--no-progress"])
    assert code == 0 and tifffile.imread(work / "restored" / "capture_mean.tif").shape == (256, 288)
    lap("ch13 restore command (tiled)")
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the best available)")
    parser.add_argument("--train-steps", type=int, default=1)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--sampler-steps", type=int, default=2)
    parser.add_argument("--work", help="folder for the runs (default: a temporary folder, deleted after)")
    args = parser.parse_args(argv)
    import teachdiff

    device = str(teachdiff.device(args.device))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="teachdiff-smoke-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        run_smoke(device, work, args.train_steps, args.samples, args.images, args.sampler_steps)
    print(f"[smoke] full-mode smoke passed on {device} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
