"""Time each metric on 256 x 256 images and the full scoring of a 265-image test set.

    python benchmarks/bench_metrics.py            # runs all 265 images (about a minute)
    TEACHDIFF_QUICK=1 python benchmarks/bench_metrics.py   # 20 images, extrapolated to 265

Writes benchmarks/results/metrics.md. 265 is the size of the microtubule test split (Table S1).
"""

from __future__ import annotations

import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

import teachdiff
from teachdiff.evaluation import metrics, stats

TEST_SET_SIZE = 265
RESULTS = Path(__file__).parent / "results" / "metrics.md"
MACHINE = "2-core CPU (CI machine)"


def synthetic_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A filament-like ground truth and a noisy, slightly blurred 'restoration' on 0..255."""
    rng = np.random.default_rng(seed)
    gt = ndimage.gaussian_filter(rng.random((256, 256)) ** 8, 1.5)
    gt = gt / gt.max() * 230 + 10
    pred = np.clip(ndimage.gaussian_filter(gt, 0.8) + rng.normal(0, 6, gt.shape), 0, 255)
    return pred, gt


def time_call(function, repeats: int = 7) -> float:
    """Median wall time in milliseconds of ``function()`` after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    warnings.simplefilter("ignore", metrics.MetricWarning)
    # One thread: the per-image convolutions are small, and the CI machine's 2 cores are shared
    # with other jobs, where two spinning threads were several times slower than one.
    torch.set_num_threads(1)
    pred, gt = synthetic_pair(0)
    lpips_net = metrics.get_lpips_network()
    per_metric = {
        "MAE": lambda: metrics.mae(pred, gt),
        "NRMSE": lambda: metrics.nrmse(pred, gt),
        "PSNR": lambda: metrics.psnr(pred, gt),
        "Pearson": lambda: metrics.pearson(pred, gt),
        "MS-SSIM (torchmetrics, float32)": lambda: metrics.ms_ssim(pred, gt),
        "Decorrelation resolution (one image)": lambda: metrics.decorrelation_resolution(gt),
        "Resolution ratio (two analyses)": lambda: metrics.resolution_ratio(pred, gt),
        "evaluate() without LPIPS": lambda: metrics.evaluate(pred, gt, lpips=False),
    }
    if lpips_net is not None:
        per_metric["LPIPS (AlexNet)"] = lambda: metrics.lpips(pred, gt)
    timings = {name: time_call(function) for name, function in per_metric.items()}

    n_images = 20 if teachdiff.quick_mode() else TEST_SET_SIZE
    pairs = [synthetic_pair(seed) for seed in range(n_images)]
    start = time.perf_counter()
    scores = metrics.evaluate_batch(
        [p for p, _ in pairs], [g for _, g in pairs], pixel_size=15.0, lpips=lpips_net is not None
    )
    scoring_seconds = time.perf_counter() - start
    total_seconds = scoring_seconds * TEST_SET_SIZE / n_images

    methods = {f"method {i}": {name: scores[name] + i for name in ("mae", "psnr", "ms_ssim")} for i in range(7)}
    table_ms = time_call(lambda: stats.median_table(methods, seed=0), repeats=3)

    lines = [
        "# Metric timings",
        "",
        f"Machine: {MACHINE} ({platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} torch thread; other jobs were sharing "
        f"the cores, so these are upper bounds; load average at start: {_load()}).",
        "Images: synthetic 256 x 256 filament-like pairs on the 0..255 scale (benchmarks/bench_metrics.py).",
        "",
        "| metric | time per 256² image (ms) |",
        "|---|---|",
    ]
    lines += [f"| {name} | {ms:.2f} |" for name, ms in timings.items()]
    if lpips_net is None:
        lines.append("| LPIPS (AlexNet) | n/a: torchvision / weights unavailable here, scored as nan |")
    how = "measured on all" if n_images == TEST_SET_SIZE else f"measured on {n_images}, extrapolated to"
    lines += [
        "",
        f"Full scoring of a {TEST_SET_SIZE}-image test set with `evaluate_batch` (all metrics, "
        f"{'with' if lpips_net is not None else 'without'} LPIPS; {how} {TEST_SET_SIZE} images): "
        f"**{total_seconds:.1f} s** for one method ({1000 * total_seconds / TEST_SET_SIZE:.0f} ms per image).",
        f"A paper-style table of 7 methods x 3 metrics x {TEST_SET_SIZE} images with 10,000 bootstrap "
        f"resamples per median and Mood's tests: {table_ms / 1000:.2f} s.",
        "",
        "The decorrelation analysis runs twice per pair (prediction and ground truth; 21 curves each);",
        "the ground truth's resolution could be cached across methods, which `evaluate` does not do.",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _load() -> str:
    try:
        import os

        return ", ".join(f"{value:.1f}" for value in os.getloadavg())
    except (AttributeError, OSError):
        return "unknown"


if __name__ == "__main__":
    main()
