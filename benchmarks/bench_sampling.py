"""DDPM-avg latency on CPU: 15 samples x 200 DDPM steps for one patch, and DDIM vs DDPM.

Writes ``benchmarks/results/sampling.md``. Run: ``python benchmarks/bench_sampling.py``
(``TEACHDIFF_QUICK=1`` times fewer steps and extrapolates, for a smoke run).

What is timed is :func:`teachdiff.inference.sampling.sample` with ``n_samples=15`` in one batch of 15
(``batch_size=15``) -- the network calls plus the position-keyed noise -- for the ``tiny`` and
``small`` U-Net configurations at 64 x 64. The 256 x 256 figure is an estimate: the measured
time of a few 15-image network calls at 256 x 256 times the number of steps. The untrained
networks' gains are opened (set to 1) so every layer computes; timing does not depend on
the weights. One thread: on this shared 2-core machine a second OpenMP thread made every call
up to 20x *slower* (each op waits for a busy core), so the single-thread time is the honest one.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

import teachdiff
from teachdiff.core.diffusion import NoiseSchedule
from teachdiff.inference.sampling import sample
from teachdiff.core.unet import MPUNet, UNetConfig, count_parameters

MACHINE = "2-core CPU (CI machine)"
N_SAMPLES, T, DDIM_STEPS = 15, 200, 20
OUT = Path(__file__).parent / "results" / "sampling.md"


def build(name: str) -> MPUNet:
    torch.manual_seed(0)
    model = MPUNet(getattr(UNetConfig, name)()).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 0:
                p.fill_(1.0)
    return model


def time_sampling(model, size: int, sampler: str, steps: int, schedule_T: int) -> float:
    x = torch.zeros(1, 1, size, size)
    schedule = NoiseSchedule(T=schedule_T)
    sample(model, x, NoiseSchedule(T=2), n_samples=N_SAMPLES, batch_size=N_SAMPLES, progress=False)  # warm-up
    start = time.perf_counter()
    sample(model, x, schedule, n_samples=N_SAMPLES, sampler=sampler, steps=steps, batch_size=N_SAMPLES,
           seed=0, progress=False)
    return time.perf_counter() - start


@torch.no_grad()
def time_call(model, size: int, repeats: int = 1) -> float:
    x = torch.zeros(N_SAMPLES, 1, size, size)
    level = torch.full((N_SAMPLES,), 0.5)
    start = time.perf_counter()
    for _ in range(repeats):
        model(x, x, level)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    torch.set_num_threads(1)
    quick = teachdiff.quick_mode()
    ddpm_T = 20 if quick else T  # quick: time 20 steps and scale to 200
    rows = []
    for name in ("tiny", "small"):
        model = build(name)
        ddpm = time_sampling(model, 64, "ddpm", DDIM_STEPS, ddpm_T) * T / ddpm_T
        ddim = time_sampling(model, 64, "ddim", DDIM_STEPS, T)
        call_256 = time_call(model, 256)
        rows.append((name, count_parameters(model), ddpm, ddim, call_256 * T, call_256 * DDIM_STEPS))
        print(f"{name}: DDPM-avg 64^2 {ddpm:.1f} s, DDIM-20 avg {ddim:.1f} s, est. 256^2 {call_256 * T:.0f} s")

    lines = [
        "# Sampling latency (DDPM-avg, CPU)",
        "",
        f"Machine: {MACHINE} ({platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), shared with other jobs). Script: `benchmarks/bench_sampling.py`"
        + (" (quick mode: DDPM timed over 20 steps and scaled to 200)." if quick else "."),
        "",
        f"One patch, {N_SAMPLES} samples drawn in one batch of {N_SAMPLES}; DDPM = {T} ancestral steps (the paper), "
        f"DDIM = {DDIM_STEPS} deterministic steps (ours). 256² is estimated from the measured time of one "
        f"{N_SAMPLES}-image network call at 256² times the number of steps.",
        "",
        "| U-Net config | parameters | DDPM-avg 64² (15 × 200 steps) | DDIM-avg 64² (15 × 20 steps) | speed-up | "
        "DDPM-avg 256² (est.) | DDIM-avg 256² (est.) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, params, ddpm, ddim, est_ddpm, est_ddim in rows:
        lines.append(f"| `{name}` | {params / 1e6:.2f} M | {ddpm:.1f} s | {ddim:.2f} s | {ddpm / ddim:.1f}× | "
                     f"{est_ddpm:.0f} s | {est_ddim:.0f} s |")
    lines += [
        "",
        "The machine is shared with other jobs, so single numbers can vary by a factor of about 2; the DDIM/DDPM "
        "ratio is close to the ratio of network calls (200 / 20 = 10). Whether 20 DDIM steps reach the DDPM-avg "
        "MAE needs a trained model (see the GPU benchmark of issue 5).",
        "",
    ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
