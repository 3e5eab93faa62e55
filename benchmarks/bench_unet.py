"""Forward and train-step time per image of the MP-U-Net configs at 64², 128², 256².

    python benchmarks/bench_unet.py [--device cuda] [--sizes 64 128 256] [--configs tiny small paper]

Writes benchmarks/results/unet_speed_<device>.md. On a GPU it also times the paper config at
256² in fp32 and bf16 autocast (img/s). Timings are medians over a few repeats after warm-up.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

import teachdiff
from teachdiff.core.diffusion import NoiseSchedule, training_loss
from teachdiff.core.unet import MPUNet, UNetConfig, count_parameters


def _time(fn, repeats: int, device) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(config_name: str, size: int, batch: int, device, repeats: int, bf16: bool = False) -> dict:
    torch.manual_seed(0)
    model = MPUNet(getattr(UNetConfig, config_name)()).to(device)
    schedule = NoiseSchedule()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 1, size, size, device=device)
    y = torch.randn(batch, 1, size, size, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    @torch.no_grad()
    def forward():
        model.eval()
        with autocast:
            model(x, y, torch.full((batch,), 0.5, device=device))

    def train_step():
        model.train()
        with autocast:
            loss = training_loss(model, x, y, schedule)
        opt.zero_grad()
        loss.backward()
        opt.step()

    fwd = _time(forward, repeats, device)
    step = _time(train_step, repeats, device)
    return {"config": config_name, "params": count_parameters(model), "size": size, "batch": batch,
            "dtype": "bf16" if bf16 else "fp32", "forward_ms_per_img": 1000 * fwd / batch,
            "train_ms_per_img": 1000 * step / batch, "train_img_per_s": batch / step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--configs", nargs="+", default=["tiny", "small", "paper"])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = teachdiff.device(args.device)
    rows = [bench(c, s, args.batch, device, args.repeats) for c in args.configs for s in args.sizes]
    if device.type == "cuda":
        rows += [bench("paper", 256, 8, device, args.repeats * 3, bf16=b) for b in (False, True)]
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    lines = [f"# MP-U-Net speed ({device.type})", "", f"Device: {name}; torch {torch.__version__}; "
             f"date {time.strftime('%Y-%m-%d')}. Median of {args.repeats} repeats after warm-up.", "",
             "| config | params | size | batch | dtype | forward ms/img | train-step ms/img | train img/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['params'] / 1e6:.2f} M | {r['size']}² | {r['batch']} | {r['dtype']} | "
                     f"{r['forward_ms_per_img']:.1f} | {r['train_ms_per_img']:.1f} | {r['train_img_per_s']:.2f} |")
    text = "\n".join(lines) + "\n"
    out = Path(args.out or Path(__file__).parent / "results" / f"unet_speed_{device.type}.md")
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
