"""The paper zoo: train the paper preset on every real dataset that is present, on a GPU.

    python benchmarks/zoo/train_paper_zoo.py --max-minutes 60 --url-base https://example.org/teachdiff-zoo
    python benchmarks/zoo/train_paper_zoo.py --estimate          # only print the expected times

For each of the paper's datasets whose folder is present (``teachdiff data check``), it trains
the DDPM with ``--preset paper`` (the paper U-Net, 256² patches, batch 8, lr 2e-4, 200 epochs) in
``--runs/<dataset>-ddpm-paper``. It is resumable: each call continues the runs where the last
stopped, and ``--max-minutes`` bounds a call (the trainer checkpoints and stops). A finished run
is scored on the test split (``teachdiff reproduce``'s pipeline, the paper's 15 x 200-step
DDPM-avg), exported to ``--release-dir`` and entered in the zoo manifest as a download from
``--url-base/<file>``: the 256 MB files are too large to bundle. Upload the files there, then
commit the manifest. Unfinished runs get no manifest entry.

Expected time, from the measured cost (SPEC §8, torch's FlopCounterMode): one training image of
256² costs 1.26 TFLOP (forward 420 GFLOP, backward twice that), so an epoch costs
``1.26 TFLOP x training patches`` and validation (DDIM-20 on 64 patches) 20 x 64 x 420 GFLOP.
At a model-FLOP utilisation ``--mfu`` of the card's dense bf16/fp16 peak this gives the table
``--estimate`` prints. At 40 % MFU, microtubules (1272 patches, 200 epochs: 4.3e17 FLOP) takes
about 0.3 h on an H100, 1.0 h on an A100 and 4.6 h on a T4; zebrafish, the largest (3600
patches), 0.7 h, 2.3 h and 10.8 h. The four datasets fit one H100 afternoon (about 2 h).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

import teachdiff
from teachdiff.store import zoo
from teachdiff.core.precision import peak_tflops
from teachdiff.training.config import TRAIN_TFLOP_PER_IMAGE
from teachdiff.store.checkpoint import load_checkpoint
from teachdiff.training.loop import train
from teachdiff.training.presets import train_preset

ROOT = Path(__file__).resolve().parents[2]
DATASETS = {"microtubules": 1272, "mitochondria": 2646, "synapses": 1198, "zebrafish": 3600}  # training patches
TRAIN_FLOP_PER_IMAGE = 1e12 * TRAIN_TFLOP_PER_IMAGE["ddpm"]
FORWARD_FLOP = TRAIN_FLOP_PER_IMAGE / 3  # the backward pass costs twice the forward
CARDS = ("H100", "H200", "A100", "L4", "T4", "V100")  # the columns of --estimate


def peak_flops(card: str) -> float:
    """Dense 16-bit tensor-core peak (bf16, or fp16 where the card has no bf16), FLOP/s."""
    return 1e12 * (peak_tflops(card, "bf16") or peak_tflops(card, "fp16"))


def expected_seconds(n_patches: int, epochs: int, peak: float, mfu: float, val_images: int = 64,
                     val_steps: int = 20) -> float:
    flop = epochs * (n_patches * TRAIN_FLOP_PER_IMAGE + val_images * val_steps * FORWARD_FLOP)
    return flop / (peak * mfu)


def print_estimates(mfu: float) -> None:
    epochs = train_preset("zebrafish", "paper", "ddpm")[0].epochs
    print(f"expected training time of the paper preset ({epochs} epochs) at {100 * mfu:.0f} % MFU:")
    print(f"{'dataset':14s}" + "".join(f"{card:>9s}" for card in CARDS))
    for name, n in DATASETS.items():
        cells = "".join(f"{expected_seconds(n, epochs, peak_flops(card), mfu) / 3600:8.1f}h" for card in CARDS)
        print(f"{name:14s}{cells}")


def present(dataset: str) -> bool:
    from teachdiff.data import make_datasets

    try:
        make_datasets(dataset, patch_size=256, quick=False, augmentation=False)
    except (FileNotFoundError, ValueError):
        return False
    return True


def release(dataset: str, run: Path, release_dir: Path, url_base: str, seconds: float) -> zoo.ZooEntry:
    from teachdiff.evaluation.reproduce import ReproduceConfig, reproduce

    table = reproduce(dataclasses.replace(ReproduceConfig.preset_for(dataset, "paper"), models=("ddpm",),
                                          use_zoo=False, classical=False), run.parent.parent)["table"]
    rows = {r["method"]: r for r in table}
    name = f"{dataset}-ddpm-paper"
    file = f"{name}.pt"
    release_dir.mkdir(parents=True, exist_ok=True)
    sha, size = zoo.export_checkpoint(run / "best.pt", release_dir / file, {"name": name})
    state = load_checkpoint(run / "best.pt")
    scores = {k: round(rows["ddpm"][k], 4) for k in ("mae", "psnr", "ms_ssim")}
    scores.update({f"avg_{k}": round(rows["ddpm-avg"][k], 4) for k in ("mae", "psnr", "ms_ssim")})
    return zoo.ZooEntry(name=name, dataset=dataset, model="ddpm", preset="paper", config=state["method_config"],
                        sha256=sha, size=size, file=file, bundled=False, url=f"{url_base.rstrip('/')}/{file}",
                        command=f"teachdiff train --dataset {dataset} --preset paper --out {run}", seed=0,
                        train_seconds=round(seconds, 1), machine=torch.cuda.get_device_name()
                        if torch.cuda.is_available() else "cpu", steps=state["step"], scores=scores,
                        notes="test split, the paper's DDPM-avg (15 x 200 ancestral steps)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "paper-zoo")
    parser.add_argument("--max-minutes", type=float, help="stop every run after this many minutes (resumable)")
    parser.add_argument("--release-dir", type=Path, default=ROOT / "runs" / "paper-zoo" / "release")
    parser.add_argument("--url-base", help="where the released files will be published (needed to release)")
    parser.add_argument("--mfu", type=float, default=0.4, help="assumed model-FLOP utilisation for --estimate")
    parser.add_argument("--estimate", action="store_true", help="print the expected times and stop")
    args = parser.parse_args(argv)
    print_estimates(args.mfu)
    if args.estimate:
        return 0
    if teachdiff.device().type != "cuda":
        print("warning: no GPU; the paper preset takes days on a CPU", file=sys.stderr)
    entries = {e.name: e for e in zoo.read_manifest()}
    for dataset in args.datasets:
        if not present(dataset):
            print(f"{dataset}: not present (see `teachdiff data list`); skipped")
            continue
        run = args.runs / f"{dataset}-ddpm-paper" / "models" / "ddpm"
        cfg, method_cfg = train_preset(dataset, "paper", "ddpm")
        start = time.monotonic()
        result = train(dataclasses.replace(cfg, max_minutes=args.max_minutes), method_cfg, run,
                       resume=(run / "last.pt").exists())
        if not result.finished:
            print(f"{dataset}: stopped (budget); run the same command again to continue")
            continue
        if args.url_base is None:
            print(f"{dataset}: finished; pass --url-base to release it into the manifest")
            continue
        history = load_checkpoint(run / "last.pt")["history"]
        seconds = sum(r.get("seconds", 0.0) for r in history) or time.monotonic() - start
        entry = release(dataset, run, args.release_dir, args.url_base, seconds)
        entries[entry.name] = entry
        zoo.write_manifest(list(entries.values()))
        print(f"{dataset}: released {entry.name} ({entry.size / 1e6:.0f} MB) -> upload "
              f"{args.release_dir / entry.file} to {entry.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
