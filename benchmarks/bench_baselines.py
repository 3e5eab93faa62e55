"""Every method side by side on synthetic data in quick mode: median MAE / PSNR / MS-SSIM and training time.

    python benchmarks/bench_baselines.py                                  # zebrafish + microtubules
    python benchmarks/bench_baselines.py --datasets synthetic-mitochondria synthetic-synapses
    python benchmarks/bench_baselines.py --ddpm-checkpoint runs/ddpm/best.pt --datasets synthetic-zebrafish

Each trainable model (CARE, Noise2Void, pix2pix, UNet-RCAN and the DDPM) is trained with its
``quick`` preset through ``teachdiff.training.loop.train`` on 64² patches, timed, and then restores
full 256² synthetic fields of view of the test split (the networks are fully convolutional; 256²
is large enough for 5-scale MS-SSIM). DDPM is one DDIM sample (``--ddpm-steps``, 20), DDPM-avg the
mean of ``--ddpm-samples`` (5; the paper: 15 ancestral samples); on one CPU thread a 256² network call
of the quick DDPM takes about a second, so these dominate the run time. The Gaussian and non-local-means filters have their parameter
chosen on validation patches. Outputs are post-processed as in the paper (§4, §S2): CARE, N2V and
UNet-RCAN are clipped and linearly rescaled to the GT training distribution, the others clipped;
the MAE before rescaling is shown too. Quick-mode numbers say that the pipeline works and how
the methods rank on easy synthetic data, not what the paper measured.

Writes benchmarks/results/baselines_quick.md (refuses to overwrite it unless --overwrite).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import teachdiff
from teachdiff.evaluation import metrics
from teachdiff.methods import GaussianFilter, NonLocalMeans
from teachdiff.data import get_dataset_info, make_datasets, simulate_pair, to_model_range
from teachdiff.data.synthetic import fov_seed
from teachdiff.store.resolve import load_method
from teachdiff.training.loop import train
from teachdiff.training.presets import train_preset

RESULTS = Path(__file__).parent / "results" / "baselines_quick.md"
MACHINE = "2-core CPU (CI machine)"
MODELS = ("care", "n2v", "pix2pix", "rcan", "ddpm")
LABELS = {"raw": "Raw input", "gaussian": "Gaussian filter", "nlm": "Non-local means", "care": "CARE",
          "n2v": "Noise2Void", "pix2pix": "pix2pix", "rcan": "UNet-RCAN", "ddpm": "DDPM", "ddpm-avg": "DDPM-avg"}
RESCALED = ("care", "n2v", "rcan")  # §S2
TEST_SPLIT = 2  # index of "test" in teachdiff.data.pairs.SPLITS (the seed stream of test FOVs)


def to255(t: torch.Tensor) -> np.ndarray:
    return ((t.float().clamp(-1, 1) + 1) * 127.5).cpu().numpy()


def test_images(case: str, n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Full synthetic FOVs from the test split's seed stream (never seen in training)."""
    pairs = [simulate_pair(case, size, fov_seed(seed, TEST_SPLIT, 1000 + f)) for f in range(n)]
    x = torch.stack([torch.from_numpy(to_model_range(p.x, 8))[None] for p in pairs]).float()
    y = torch.stack([torch.from_numpy(to_model_range(p.y, 8))[None] for p in pairs]).float()
    return x, y


def stack(dataset, n=None):
    n = len(dataset) if n is None else min(n, len(dataset))
    items = [dataset[i] for i in range(n)]
    return torch.stack([it["x"] for it in items]), torch.stack([it["y"] for it in items])


def restore_all(model: str, method, x: torch.Tensor, seed: int, ddpm_samples: int = 5,
                ddpm_steps: int = 20) -> dict[str, np.ndarray]:
    generator = torch.Generator().manual_seed(seed)
    if model == "ddpm":
        from teachdiff.inference.sampling import sample

        samples = sample(method.unet, x, method.schedule, n_samples=ddpm_samples, sampler="ddim", steps=ddpm_steps,
                         generator=generator, progress=False)
        return {"ddpm": to255(samples[:, 0, 0]), "ddpm-avg": to255(samples[:, :, 0].mean(1))}
    with torch.no_grad():
        return {model: to255(method.restore(x, generator=generator)[:, 0])}


def score(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    pred = np.clip(pred, 0, 255)
    return {"mae": float(np.median([metrics.mae(p, g) for p, g in zip(pred, gt)])),
            "psnr": float(np.median([metrics.psnr(p, g) for p, g in zip(pred, gt)])),
            "ms_ssim": float(np.median([metrics.ms_ssim(p, g) for p, g in zip(pred, gt)]))
            if min(gt.shape[-2:]) >= metrics.ms_ssim_min_size() else float("nan")}


def run_dataset(name: str, work: Path, n_test: int, size: int, seed: int, ddpm_checkpoint: str | None,
                models: tuple[str, ...], ddpm_samples: int, ddpm_steps: int) -> list[dict]:
    case = get_dataset_info(name).synthetic_case
    data = make_datasets(name, quick=True, seed=seed)
    x, y = test_images(case, n_test, size, seed)
    gt = to255(y[:, 0])
    reference = metrics.IntensityReference.from_images(to255(stack(data["train"])[1][:, 0]))
    rows = [{"method": "raw", "train_s": 0.0, "steps": 0, **score(to255(x[:, 0]), gt)}]
    x_val, y_val = stack(data["val"])
    for key, cls in (("gaussian", GaussianFilter), ("nlm", NonLocalMeans)):
        start = time.perf_counter()
        filt = cls.fit(x_val, y_val)
        fit_s = time.perf_counter() - start
        param = f"sigma={filt.sigma}" if key == "gaussian" else f"h={filt.h_factor}·sigma"
        rows.append({"method": key, "train_s": fit_s, "steps": 0, "note": f"{param} (fit on val)",
                     **score(to255(filt.restore(x)[:, 0]), gt)})
    for model in models:
        cfg, method_cfg = train_preset(name, "quick", model)
        cfg = dataclasses.replace(cfg, seed=seed)
        if model == "ddpm" and ddpm_checkpoint:
            method, train_s, note = load_method(ddpm_checkpoint, expect_kind="ddpm"), float("nan"), "given checkpoint"
        else:
            start = time.perf_counter()
            result = train(cfg, method_cfg, work / name / model, datasets=data, progress=False)
            train_s = time.perf_counter() - start
            method, note = load_method(result.best_checkpoint, expect_kind=model), ""
        for key, pred in restore_all(model, method, x, seed, ddpm_samples, ddpm_steps).items():
            row = {"method": key, "train_s": train_s, "steps": cfg.epochs * cfg.steps_per_epoch, "note": note}
            if key in RESCALED:
                row["mae_unrescaled"] = score(pred, gt)["mae"]
                pred = metrics.clip_and_rescale(pred, reference)
            rows.append({**row, **score(pred, gt)})
        print(f"{name} {model}: done", flush=True)
    return rows


def markdown(results: dict[str, list[dict]], args, threads: int, elapsed: float) -> str:
    lines = ["# Benchmark models on synthetic data, quick presets", "",
             f"Machine: {MACHINE} ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
             f"{threads} thread(s); teachdiff {teachdiff.__version__}. Whole run: {elapsed / 60:.1f} min.",
             f"Test: {args.n_test} synthetic fields of view of {args.size}² per dataset (test-split seeds, never "
             "trained on), medians over images. Training: each model's `quick` preset (64² patches) through "
             "`teachdiff.training.loop.train`; time = wall-clock of the whole `train()` call incl. validation.",
             "CARE, Noise2Void and UNet-RCAN are clipped and rescaled to the GT training distribution before "
             "scoring (paper §S2); the column 'MAE no rescale' is their MAE without it. DDPM: one DDIM sample "
             f"({args.ddpm_steps} steps); DDPM-avg: mean of {args.ddpm_samples}.",
             f"Command: `python benchmarks/bench_baselines.py {' '.join(args.argv)}`", ""]
    for name, rows in results.items():
        lines += [f"## {name}", "",
                  "| method | MAE ↓ | PSNR ↑ | MS-SSIM ↑ | MAE no rescale | training (s) | steps | note |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            fmt = lambda v, d=2: "n/a" if v is None or not np.isfinite(v) else f"{v:.{d}f}"
            lines.append(f"| {LABELS[r['method']]} | {fmt(r['mae'])} | {fmt(r['psnr'])} | {fmt(r['ms_ssim'], 3)} | "
                         f"{fmt(r.get('mae_unrescaled', float('nan')))} | {fmt(r['train_s'], 1)} | {r['steps']} | "
                         f"{r.get('note', '')} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["synthetic-zebrafish", "synthetic-microtubules"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--n-test", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ddpm-samples", type=int, default=5, help="samples averaged for DDPM-avg (paper: 15)")
    parser.add_argument("--ddpm-steps", type=int, default=20, help="DDIM steps per DDPM sample")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core machine 2 threads are much slower)")
    parser.add_argument("--ddpm-checkpoint", help="a quick DDPM best.pt to use instead of training one "
                                                  "(only with a single --datasets entry)")
    parser.add_argument("--work", help="folder for the training runs (default: a temporary folder)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise SystemExit(f"{out} exists; pass --overwrite to replace it or --out for another file.")
    if args.ddpm_checkpoint and len(args.datasets) != 1:
        raise SystemExit("--ddpm-checkpoint belongs to one dataset; pass exactly one --datasets entry.")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        for name in args.datasets:  # the file is rewritten after each dataset: a long run keeps what it did
            results[name] = run_dataset(name, work, args.n_test, args.size, args.seed, args.ddpm_checkpoint,
                                        tuple(args.models), args.ddpm_samples, args.ddpm_steps)
            out.write_text(markdown(results, args, torch.get_num_threads(), time.perf_counter() - start))
    print(out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
