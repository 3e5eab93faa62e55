"""Restore time of a 512 x 512 image on a CPU: the new tiling defaults against the old ones.

Writes ``benchmarks/results/restore_cpu.md``. Run:
``python benchmarks/bench_restore.py --threads 2 1`` (``--full`` adds end-to-end restores of the
whole image; ``--precision-only`` appends just the bf16-autocast section; ``--layout-only`` appends
just the section on memory layout, allocator and compilation).

The setting is issue 12's: one 512² synthetic-microtubules capture, DDPM-avg of 15 samples with
DDIM-10, the quick zoo's DDPM of synthetic microtubules (the ``tiny`` U-Net of chapter 4's quick
model). Each setting's plan (tiles, images per call, network calls) comes from
:func:`teachdiff.core.tiling.plan_tiles`; its time is the measured time of one network call of its
shape (median of 3 after a warm-up) times its number of calls -- the network is all but the
whole cost, and this keeps the old defaults (which take many minutes) measurable. Settings:

1. **new default**: ``tile="auto"`` (:func:`teachdiff.inference.budget.default_tile`), overlap 1/8, the
   (tile, sample) pairs packed into full calls of ``default_batch_size`` images;
2. the training size 64 with overlap 1/8, packed the same way (what ``"auto"`` adds);
3. **old CLI default** ``tile=256, overlap=32``: one tile at a time in calls of 3 images (the
   old ``default_batch_size``), 5 calls per tile and step;
4. **issue 12's run** ``tile=64, overlap=32``: one tile at a time, calls of 8 + 7 images (the
   7-image calls are timed as 8).

Then the per-pixel CPU time of one call against the tile size (the attention cost) and against the
batch size (the batching cap). The machine is shared with other jobs: the load average is
printed, and the process CPU time (``time.process_time``) is given beside the wall clock --
with one thread it is about what the run takes on one unloaded core.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).parent / "results" / "restore_cpu.md"
N_SAMPLES, STEPS, SIZE = 15, 10, 512
MODEL = "synthetic-microtubules-ddpm-quick"  # the zoo's quick DDPM (same tiny network as chapter 4's)


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def per_pixel_call(net, batch: int, side: int, repeats: int = 5, mode: str = "fp32") -> float:
    """Least CPU time of one network call per image pixel (ns), under the autocast of precision
    ``mode``: with one thread, about the unloaded time, however busy the machine."""
    from teachdiff.core import precision

    x = torch.zeros(batch, 1, side, side)
    level = torch.full((batch,), 0.5)
    best = math.inf
    with torch.inference_mode(), precision.autocast("cpu", mode):
        net(x, x, level)
        for _ in range(repeats):
            start = time.process_time()
            net(x, x, level)
            best = min(best, time.process_time() - start)
    return best / (batch * side * side) * 1e9


def precision_section(net, schedule, pair, threads: int, crop: int = 128, full: bool = False) -> list[str]:
    """bf16 autocast on the CPU (``--precision bf16``): the cost of a call, the whole restore it
    implies, and what it does to a restoration (a ``crop``² corner restored in both modes);
    ``full``: also the whole 512² restore end to end in both modes, and with the fast default."""
    from teachdiff.evaluation import metrics
    from teachdiff.core import precision
    from teachdiff.inference.sampling import _calls_per_run
    from teachdiff.inference.budget import default_batch_size, default_tile
    from teachdiff.core.tiling import plan_tiles
    from teachdiff.inference.restore import restore_image

    torch.set_num_threads(threads)
    auto = default_tile(net, pair.x.shape)
    plan = plan_tiles(pair.x.shape, auto, None, net.config.size_multiple)
    batch = default_batch_size(net, plan.tile_h, plan.tile_w, "cpu")
    calls = math.ceil(plan.n_tiles * N_SAMPLES / batch) * _calls_per_run("ddim", STEPS, schedule)
    cost = {mode: per_pixel_call(net, batch, plan.tile_h, mode=mode) for mode in ("fp32", "bf16")}
    x, gt = pair.x[:crop, :crop], pair.y[:crop, :crop].astype(float)
    means = {}
    for mode in cost:
        with precision.use_precision(mode):
            means[mode] = restore_image(net, x, schedule, n_samples=N_SAMPLES, sampler="ddim", steps=STEPS, seed=0,
                                        progress=False).mean.astype(float)
    lines = [f"### bf16 autocast on the CPU ({threads} thread(s))", "",
             f"`teachdiff restore --precision bf16` (the CPU's default stays fp32), model `{MODEL}`. "
             f"CPU time per pixel of one call of {batch} tiles of {plan.tile_h}², least of 5, and the new "
             f"default's whole {SIZE}² restore ({calls} calls) at that cost; quality: the {crop}² top-left corner restored in both modes from "
             "the same seed, MAE against the ground truth (0..255).", "",
             "| precision | CPU ns / pixel | 512² restore, CPU time | MAE of the mean vs GT |", "|---|---|---|---|"]
    for mode, ns in cost.items():
        seconds = ns * 1e-9 * batch * plan.tile_h * plan.tile_w * calls
        lines.append(f"| {mode} | {ns:.0f} | {seconds:.0f} s | {metrics.mae(means[mode], gt):.3f} |")
    diff = np.abs(means["bf16"] - means["fp32"])
    lines += ["", f"bf16 is {cost['fp32'] / cost['bf16']:.2f}x faster per pixel; its mean differs from the fp32 "
              f"mean by {diff.mean():.3f} grey levels on average (largest {diff.max():.2f}).", ""]
    if full:
        from teachdiff.inference.sampling import FAST_SAMPLING as fast

        lines += [f"End to end, the whole {SIZE}² image (`restore_image`, {threads} thread(s)), MAE of the mean "
                  "against the ground truth:", "", "| setting | precision | network calls per tile | wall | "
                  "CPU time | MAE |", "|---|---|---|---|---|---|"]
        runs = [(f"{N_SAMPLES} x DDIM-{STEPS} (issue 12's)", "ddim", STEPS, N_SAMPLES, 0.0, mode) for mode in cost]
        runs += [(f"fast default: {fast.samples} x DDIM-{fast.steps}, eta {fast.eta:g}", fast.sampler, fast.steps,
                  fast.samples, fast.eta, mode) for mode in cost]
        for label, sampler, steps, n, eta, mode in runs:
            with precision.use_precision(mode):
                result, wall, cpu = timed(lambda: restore_image(net, pair.x, schedule, n_samples=n, sampler=sampler,
                                                                steps=steps, eta=eta, seed=0, progress=False))
            lines.append(f"| {label} | {mode} | {steps * n} | {wall:.0f} s | {cpu:.0f} s | "
                         f"{metrics.mae(result.mean.astype(float), pair.y.astype(float)):.3f} |")
            print(lines[-1], flush=True)
        lines.append("")
    return lines


LAYOUT_RUNS = [  # (label, memory layout, glibc's own thresholds kept, precision, torch.compile)
    ("before: default layout, glibc's own thresholds", "default", True, "fp32", False),
    ("channels-last layout", "channels_last", True, "fp32", False),
    ("**now: channels-last + keep_freed_memory**", "channels_last", False, "fp32", False),
    ("now, and `--precision bf16`", "channels_last", False, "bf16", False),
    ("now, and `--compile` (compilation included)", "channels_last", False, "fp32", True),
]


def one_restore(layout: str, glibc_thresholds: bool, mode: str, compile: bool, n_samples: int, eta: float,
                threads: int) -> dict:
    """One whole 512² restore with DDIM-10, in this (fresh) process: the allocator setting is
    process-wide and cannot be undone, so each configuration runs in its own process."""
    from teachdiff.evaluation import metrics
    from teachdiff.core import precision
    from teachdiff.data.synthetic import simulate_pair
    from teachdiff.inference.restore import restore_image
    from teachdiff.store.resolve import load_method

    torch.set_num_threads(threads)
    if glibc_thresholds:  # what load_method did before: no keep_freed_memory
        precision.keep_freed_memory = lambda: False
    method = load_method(MODEL)
    net = method.unet.to(memory_format=torch.channels_last if layout == "channels_last" else torch.contiguous_format)
    if compile:
        net.compile()
    pair = simulate_pair("microtubules", SIZE, seed=7)
    before = resource.getrusage(resource.RUSAGE_SELF)
    with precision.use_precision(mode):
        result, wall, cpu = timed(lambda: restore_image(net, pair.x, method.schedule, n_samples=n_samples,
                                                        sampler="ddim", steps=STEPS, eta=eta, seed=0, progress=False))
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall": wall, "cpu": cpu, "sys": after.ru_stime - before.ru_stime,
            "faults": after.ru_minflt - before.ru_minflt,
            "mae": metrics.mae(result.mean.astype(float), pair.y.astype(float))}


def layout_section(threads: int) -> list[str]:
    """Memory layout, allocator and compilation: issue 12's whole 512² restore (15 x DDIM-10) in
    each configuration of :data:`LAYOUT_RUNS`, then the fast default with today's settings."""
    from teachdiff.inference.sampling import FAST_SAMPLING as fast

    lines = [f"### Memory layout, allocator and compilation ({threads} threads)", "",
             f"Load before: `{load()}`", "",
             f"The whole {SIZE}² image (`restore_image`, tile 72, overlap 8, 8 images per call), each run in a "
             "fresh process. *Kernel* is the system CPU time, mostly page faults; MAE of the mean against the "
             "ground truth (0..255).", "",
             "| configuration | samples x DDIM steps | wall | CPU time | kernel | page faults | MAE |",
             "|---|---|---|---|---|---|---|"]
    runs = [(label, args, N_SAMPLES, 0.0) for label, *args in LAYOUT_RUNS]
    runs.append((f"now, fast default (eta {fast.eta:g})", ("channels_last", False, "fp32", False), fast.samples,
                 fast.eta))
    for label, (layout, glibc_thresholds, mode, compile), n_samples, eta in runs:
        spec = json.dumps([layout, glibc_thresholds, mode, compile, n_samples, eta, threads])
        child = subprocess.run([sys.executable, __file__, "--one-restore", spec], capture_output=True, text=True,
                               check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        r = json.loads(child.stdout.strip().splitlines()[-1])
        lines.append(f"| {label} | {n_samples} x {STEPS} | {r['wall']:.0f} s | {r['cpu']:.0f} s | {r['sys']:.1f} s | "
                     f"{r['faults']:,} | {r['mae']:.3f} |")
        print(lines[-1], flush=True)
    return lines + ["", f"Load after: `{load()}`", ""]


def per_call(net, batch: int, side: int, repeats: int = 3) -> tuple[float, float]:
    """Median (wall, CPU) seconds of one network call of ``batch`` images of side ``side``."""
    x = torch.zeros(batch, 1, side, side)
    level = torch.full((batch,), 0.5)
    walls, cpus = [], []
    with torch.inference_mode():
        net(x, x, level)
        for _ in range(repeats):
            _, wall, cpu = timed(lambda: net(x, x, level))
            walls.append(wall)
            cpus.append(cpu)
    return sorted(walls)[len(walls) // 2], sorted(cpus)[len(cpus) // 2]


def measure(net, schedule, image, threads: int) -> list[str]:
    from teachdiff.inference.sampling import _calls_per_run
    from teachdiff.inference.budget import default_batch_size, default_tile
    from teachdiff.core.tiling import plan_tiles

    torch.set_num_threads(threads)
    steps = _calls_per_run("ddim", STEPS, schedule)
    m = net.config.size_multiple
    lines = [f"### {threads} torch thread(s)", "", f"Load before: `{load()}`", ""]
    auto = default_tile(net, image.shape)
    settings = []
    for name, tile, overlap in ((f"new default: tile {auto} (auto), overlap 1/8", auto, None),
                                ("training size: tile 64, overlap 1/8", 64, None)):
        plan = plan_tiles(image.shape, tile, overlap, m)
        batch = default_batch_size(net, plan.tile_h, plan.tile_w, "cpu")
        settings.append((name, plan, batch, math.ceil(plan.n_tiles * N_SAMPLES / batch) * steps))
    for name, tile, batch in (("old CLI default: tile 256, overlap 32", 256, 3),
                              ("issue 12's run: tile 64, overlap 32", 64, 8)):
        plan = plan_tiles(image.shape, tile, 32, m)
        settings.append((name, plan, batch, plan.n_tiles * math.ceil(N_SAMPLES / batch) * steps))
    lines += ["| setting | tiles | pixels per sample-step | images per call | network calls | wall | CPU time |",
              "|---|---|---|---|---|---|---|"]
    for name, plan, batch, calls in settings:
        wall, cpu = per_call(net, batch, plan.tile_h)
        lines.append(f"| {name} | {plan.n_tiles} | {plan.pixels} | {batch} | {calls} | {wall * calls:.0f} s | "
                     f"{cpu * calls:.0f} s |")
        print(lines[-1], flush=True)

    from teachdiff.inference.budget import _flop_model

    tile_costs = {side: per_pixel_call(net, 8, side) for side in (64, 72, 96, 128)}
    batch_costs = {b: per_pixel_call(net, b, 64) for b in (1, 4, 8, 15, 30, 60, 120)}
    a, b = _flop_model(net)
    share = {side: b * side**2 / (a + b * side**2) for side in tile_costs}
    ratio = tile_costs[128] / tile_costs[64]
    lines += [
        "",
        "Per-pixel CPU time of one network call (8 images per call), least of 5:",
        "",
        "| tile | CPU ns / pixel | attention share of the FLOPs |",
        "|---|---|---|",
        *[f"| {side}² | {cost:.0f} | {share[side]:.1%} |" for side, cost in tile_costs.items()],
        "",
        f"From 64² to 128² the time per pixel changes {ratio:.2f}x; the FLOPs per pixel grow "
        f"{(a + 4 * b * 64**2) / (a + b * 64**2):.2f}x (attention {share[64]:.1%} of the FLOPs at 64², "
        f"{share[128]:.1%} at 128²).",
        "",
        "Per-pixel CPU time of one call at 64² against the images per call, least of 5:",
        "",
        "| images per call | CPU ns / pixel |",
        "|---|---|",
        *[f"| {b} | {cost:.0f} |" for b, cost in batch_costs.items()],
        "",
        f"Load after: `{load()}`",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--full", action="store_true", help="also restore the whole image end to end (fp32 and "
                        "bf16; issue 12's setting and the fast default)")
    parser.add_argument("--precision-only", action="store_true", help="only the bf16 section (appended)")
    parser.add_argument("--layout-only", action="store_true", help="only the layout/allocator section (appended)")
    parser.add_argument("--one-restore", help=argparse.SUPPRESS)  # a child process of --layout-only
    args = parser.parse_args()
    if args.one_restore:
        print(json.dumps(one_restore(*json.loads(args.one_restore))))
        return
    if args.layout_only:
        text = [line for threads in args.threads for line in layout_section(threads)]
        with OUT.open("a") as f:
            f.write("\n".join(text) + "\n")
        return

    from teachdiff.data.synthetic import simulate_pair
    from teachdiff.store.resolve import load_method

    method = load_method(MODEL)
    net, schedule = method.unet.eval(), method.schedule
    pair = simulate_pair("microtubules", SIZE, seed=7)
    image = pair.x
    if args.precision_only:
        text = [f"Load before: `{load()}`", ""]
        for threads in args.threads:
            text += precision_section(net, schedule, pair, threads, full=args.full)
        with OUT.open("a") as f:
            f.write("\n".join(text) + "\n")
        print("\n".join(text))
        return
    text = [
        "# Restoring a 512² image on a CPU (issue 12, item 4)",
        "",
        f"Machine: {platform.machine()} CPU ({os.cpu_count()} cores), torch {torch.__version__}; shared with "
        "other jobs. Script: `benchmarks/bench_restore.py`.",
        "",
        f"Setting: one {SIZE}² synthetic-microtubules capture, DDPM-avg of {N_SAMPLES} samples with DDIM-{STEPS}, "
        f"the quick zoo's `{MODEL}` (`tiny` U-Net, trained on 64² patches). Times are the measured time of one "
        "network call of each setting's shape times its number of calls.",
        "",
    ]
    for threads in args.threads:
        text += measure(net, schedule, image, threads)
    for threads in args.threads:
        text += precision_section(net, schedule, pair, threads, full=args.full)
    if args.full:
        text += [line for threads in args.threads for line in layout_section(threads)]
    OUT.write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
