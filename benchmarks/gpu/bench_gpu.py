"""GPU benchmark of the paper's U-Net at 256²: training throughput and MFU per precision, peak
memory, DDPM-avg and DDIM-avg latency of one patch, next to the authors' recipe.

    bash benchmarks/gpu/run.sh                               # on a GPU: this, then the full-mode smoke
    python benchmarks/gpu/bench_gpu.py --device cpu --smoke  # the same code on a CPU, tiny sizes

Writes ``benchmarks/results/gpu_<device>.md`` (``--smoke``: a temporary file, since its numbers
describe nothing but that the script runs).

Training rows, each the trainer's own step (:class:`teachdiff.core.precision.TrainingPrecision`:
autocast forward, scaled backward, gradient clipping at 1.0, AdamW) on batch 8, median of the
timed steps after warm-up steps:

- **authors' recipe**: float32 with torch's default switches (cuDNN may use TF32 for the
  convolutions on Ampere and newer, matmuls stay float32), NCHW layout, batch 8 -- what the
  authors' released training script does;
- **fp32**: ``--precision fp32``: true float32 (TF32 off), channels-last;
- **auto**: the device's policy (bf16 on cards with bf16, fp16 + GradScaler on older ones),
  TF32 for the rest, channels-last;
- **auto + compile**: the same with ``torch.compile`` (its compilation time is reported
  separately and not in img/s).

FLOPs of one training image are counted with ``torch.utils.flop_counter.FlopCounterMode``
(forward + backward of the network); MFU = achieved FLOP/s / the card's dense peak for the
arithmetic the row uses (``teachdiff.core.precision.peak_tflops``: 16-bit tensor cores for
autocast, TF32 or plain float32 for the fp32 rows).

Sampling rows: DDPM-avg = 15 samples x 200 ancestral steps of one patch, in one batch of 15;
DDIM-avg = 15 samples x 20 DDIM steps. DDPM-avg is extrapolated from ``--ddpm-steps`` measured
steps (x 200 / steps; the sampler's cost per step does not depend on T), to keep the whole
benchmark within its 8-minute budget; the table says which numbers are extrapolated.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import teachdiff
from teachdiff.core import precision
from teachdiff.core.diffusion import NoiseSchedule
from teachdiff.inference.sampling import sample
from teachdiff.methods.ddpm import DiffusionConfig, DiffusionMethod
from teachdiff.core.precision import Precision, TrainingPrecision, prepare_network
from teachdiff.core.unet import UNetConfig, count_parameters

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn, steps: int, warmup: int, device) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _method(unet_config: UNetConfig, device) -> DiffusionMethod:
    torch.manual_seed(0)
    method = DiffusionMethod(DiffusionConfig(unet=unet_config)).to(device)
    with torch.no_grad():  # open the zero-initialised gains so every layer computes
        for p in method.parameters():
            if p.ndim == 0:
                p.fill_(1.0)
    return method


def training_flops_per_image(unet_config: UNetConfig, size: int, device) -> float:
    """Forward + backward FLOPs of the network for one image, counted by FlopCounterMode."""
    method = _method(unet_config, device).train()
    x = torch.randn(1, 1, size, size, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        method(x, x, generator=torch.Generator().manual_seed(0)).backward()
    return float(counter.get_total_flops())


@contextlib.contextmanager
def _torch_default_switches(device):
    """torch's own defaults for TF32 (matmul off, cuDNN on), restored afterwards."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def train_row(label: str, unet_config: UNetConfig, size: int, batch: int, device, mode: str, steps: int,
              warmup: int, compile: bool = False, channels_last: bool = True, torch_defaults: bool = False) -> dict:
    method = _method(unet_config, device).train()
    with _torch_default_switches(device) if torch_defaults else contextlib.nullcontext():
        chosen = Precision("fp32", device.type) if torch_defaults else precision.resolve(mode, device)
        prepare_network(method, device, channels_last=channels_last)
        amp = TrainingPrecision(chosen)
        opt = torch.optim.AdamW(method.parameters(), lr=2e-4)
        if compile:
            prepare_network(method, device, compile=True, channels_last=channels_last)
        memory_format = torch.channels_last if channels_last and device.type == "cuda" else torch.contiguous_format
        x = torch.randn(batch, 1, size, size, device=device).to(memory_format=memory_format)
        y = torch.randn_like(x)
        gen = torch.Generator().manual_seed(0)

        def step():
            with amp.autocast():
                loss = method(x, y, generator=gen)
            opt.zero_grad(set_to_none=True)
            amp.backward(loss)
            amp.step([opt], method.parameters(), max_norm=1.0)
            amp.update()

        compile_s = None
        if compile:
            start = time.perf_counter()
            step()
            _sync(device)
            compile_s = time.perf_counter() - start
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = _median_time(step, steps, warmup, device)
        peak_gib = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        tf32 = (device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8
                and (torch.backends.cudnn.allow_tf32 if torch_defaults else chosen.tf32))
    arithmetic = chosen.mode if chosen.mode != "fp32" else ("tf32" if tf32 else "fp32")
    return {"label": label, "mode": chosen.describe() if not torch_defaults else "fp32 (torch defaults)",
            "arithmetic": arithmetic, "batch": batch, "seconds_per_step": seconds, "img_per_s": batch / seconds,
            "peak_gib": peak_gib, "compile_s": compile_s}


def sampling_row(label: str, unet_config: UNetConfig, size: int, device, mode: str, sampler: str,
                 measured_steps: int, full_steps: int, n_samples: int) -> dict:
    method = _method(unet_config, device).eval()
    prepare_network(method, device, training=False)
    x = torch.zeros(1, 1, size, size, device=device)
    with precision.use_precision(mode):
        # warm-up: cuDNN autotuning and allocator
        sample(method.unet, x, NoiseSchedule(T=2), n_samples=n_samples, batch_size=n_samples, progress=False)
        _sync(device)
        start = time.perf_counter()
        if sampler == "ddpm":
            sample(method.unet, x, NoiseSchedule(T=measured_steps), n_samples=n_samples, sampler="ddpm",
                   batch_size=n_samples, seed=0, progress=False)
        else:
            sample(method.unet, x, NoiseSchedule(T=200), n_samples=n_samples, sampler="ddim",
                   steps=measured_steps, batch_size=n_samples, seed=0, progress=False)
        _sync(device)
        seconds = time.perf_counter() - start
    return {"label": label, "mode": precision.resolve(mode, device).mode, "sampler": sampler,
            "measured_steps": measured_steps, "full_steps": full_steps,
            "seconds": seconds * full_steps / measured_steps, "extrapolated": measured_steps != full_steps}


def _device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def _fmt(value, digits=1, missing="–"):
    return missing if value is None else f"{value:.{digits}f}"


def report(meta: dict, train_rows: list[dict], sample_rows: list[dict], batch: int) -> str:
    lines = [f"# GPU benchmark: {meta['device_name']}", "",
             f"torch {meta['torch']}; {meta['date']}; command `{meta['command']}`{' (SMOKE: tiny sizes)' if meta['smoke'] else ''}.",
             f"Network: {meta['network']} ({meta['params_m']:.2f} M parameters) at {meta['size']}²; "
             f"{meta['tflop_per_image']:.3f} TFLOP per training image (forward + backward, FlopCounterMode).",
             "", "## Training", "",
             "| run | precision | batch | img/s | s/step | TFLOP/s | peak TFLOP/s | MFU | peak memory GiB | compile s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in train_rows:
        if r.get("oom"):
            lines.append(f"| {r['label']} | {r['mode']} | {batch} | – | – | – | – | – | > card | – |")
            continue
        achieved = r["img_per_s"] * meta["tflop_per_image"]
        peak = precision.peak_tflops(meta["device_name"], r["arithmetic"]) if meta["cuda"] else None
        mfu = f"{100 * achieved / peak:.0f} %" if peak else "–"
        lines.append(f"| {r['label']} | {r['mode']} | {r['batch']} | {r['img_per_s']:.2f} | {r['seconds_per_step']:.3f} | "
                     f"{achieved:.3g} | {_fmt(peak, 0)} ({r['arithmetic']}) | {mfu} | {_fmt(r['peak_gib'], 2)} | "
                     f"{_fmt(r['compile_s'], 0)} |")
    lines += ["", f"## Sampling one patch ({meta['n_samples']} samples in one batch)", "",
              "| run | precision | sampler | steps measured | latency s (full) | extrapolated |", "|---|---|---|---:|---:|---|"]
    for r in sample_rows:
        lines.append(f"| {r['label']} | {r['mode']} | {r['sampler']} x {r['full_steps']} | {r['measured_steps']} | "
                     f"{r['seconds']:.1f} | {'yes, x ' + format(r['full_steps'] / r['measured_steps'], '.0f') if r['extrapolated'] else 'no'} |")
    lines += ["", "MFU is against the card's dense peak for the arithmetic shown (teachdiff.core.precision.peak_tflops); "
              "'–' means the card is not in that table. The authors' recipe is fp32 with torch's default "
              "switches (TF32 convolutions on Ampere and newer), NCHW, batch 8.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny network and sizes: proves the script runs on a CPU")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per row")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--ddpm-steps", type=int, default=20, help="DDPM steps measured (extrapolated to 200)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    parser.add_argument("--out", help="output markdown (default benchmarks/results/gpu_<device>.md)")
    args = parser.parse_args(argv)
    device = teachdiff.device(args.device)
    if args.smoke:
        unet_config, size, batch, steps, warmup, ddpm_steps, network = UNetConfig.tiny(), 64, 2, 2, 1, 2, "tiny U-Net"
    else:
        unet_config, size, batch, steps, warmup, ddpm_steps, network = (
            UNetConfig.paper(), 256, 8, args.steps, args.warmup, args.ddpm_steps, "paper U-Net")
    auto = precision.resolve("auto", device).mode
    meta = {"device_name": _device_name(device), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": "python benchmarks/gpu/bench_gpu.py " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
            "smoke": args.smoke, "network": network, "n_samples": 2 if args.smoke else 15, "size": size, "cuda": device.type == "cuda",
            "params_m": count_parameters(_method(unet_config, "cpu").unet) / 1e6}
    meta["tflop_per_image"] = training_flops_per_image(unet_config, size, device) / 1e12
    print(f"{meta['device_name']}: {meta['tflop_per_image']:.3f} TFLOP per training image; auto precision = {auto}", flush=True)

    slug = re.sub(r"[^a-z0-9]+", "_", meta["device_name"].lower()).strip("_") if device.type == "cuda" else "cpu"
    default = Path(tempfile.gettempdir()) / "teachdiff_gpu_smoke.md" if args.smoke else RESULTS / f"gpu_{slug}.md"
    out = Path(args.out) if args.out else default
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(train_rows, sample_rows):  # after every row: a run cut short by run.sh's timeout keeps its rows
        out.write_text(report(meta, train_rows, sample_rows, batch))

    plan = [("authors' recipe", "fp32", False, False, True), ("fp32", "fp32", False, True, False),
            (f"auto ({auto})", "auto", False, True, False)]
    if not args.no_compile:
        plan.append((f"auto ({auto}) + compile", "auto", True, True, False))
    train_rows = []
    for label, mode, compile, channels_last, torch_defaults in plan:
        try:
            row = train_row(label, unet_config, size, batch, device, mode, steps, warmup, compile=compile,
                            channels_last=channels_last, torch_defaults=torch_defaults)
        except torch.OutOfMemoryError:  # e.g. fp32 at batch 8 on a 16 GB card
            row = {"label": label, "mode": f"{mode}: out of memory at batch {batch}", "oom": True}
        print(json.dumps(row), flush=True)
        train_rows.append(row)
        write(train_rows, [])
        if device.type == "cuda":
            torch.cuda.empty_cache()
    sample_rows = []
    for mode in ("fp32", "auto"):
        for sampler, measured, full in (("ddpm", ddpm_steps, 200), ("ddim", 20 if not args.smoke else 2, 20)):
            row = sampling_row(f"{'authors (fp32)' if mode == 'fp32' else 'auto'}", unet_config, size, device,
                               mode, sampler, measured, full, meta["n_samples"])
            print(json.dumps(row), flush=True)
            sample_rows.append(row)
            write(train_rows, sample_rows)
    write(train_rows, sample_rows)
    print(report(meta, train_rows, sample_rows, batch))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
