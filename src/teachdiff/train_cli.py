"""``teachdiff train``: train the DDPM or a baseline on a registered dataset."""

from __future__ import annotations

import argparse
import dataclasses
import signal

from teachdiff.cli import non_negative_int, positive_float, positive_int, unit_interval

EXAMPLES = """
examples:
  # minutes on a laptop CPU, on the synthetic microscope (no download needed)
  teachdiff train --dataset synthetic-microtubules --preset quick --out runs/mt-quick

  # the paper's settings on a GPU; the data folder as described by `teachdiff data list`
  teachdiff train --dataset zebrafish --preset paper --out runs/zebrafish

  # stop after 60 minutes (a checkpoint is written), continue later
  teachdiff train --dataset zebrafish --preset paper --out runs/zebrafish --max-minutes 60
  teachdiff train --dataset zebrafish --preset paper --out runs/zebrafish --resume

  # a benchmark model with the same loop and data
  teachdiff train --model care --dataset synthetic-microtubules --preset quick --out runs/care

  # several GPUs (effective batch = batch size x GPUs; the learning rate is not rescaled)
  torchrun --nproc_per_node 4 -m teachdiff train --dataset microtubules --preset paper --out runs/mt
"""

OVERRIDES = {  # option -> TrainConfig field
    "epochs": "epochs", "steps_per_epoch": "steps_per_epoch", "batch_size": "batch_size", "lr": "lr",
    "ema": "ema_decay", "seed": "seed", "num_workers": "num_workers", "max_minutes": "max_minutes",
    "max_steps": "max_steps", "data_root": "data_root", "patch_size": "patch_size",
}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model (DDPM or a baseline)",
                              description=__doc__, epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="a name from `teachdiff data list`")
    p.add_argument("--model", default="ddpm", choices=["ddpm", "care", "n2v", "pix2pix", "rcan"])
    p.add_argument("--preset", default="quick", choices=["quick", "paper"],
                   help="quick: minutes on a CPU; paper: the paper's settings (GPU)")
    p.add_argument("--out", required=True, help="folder for checkpoints (best.pt, last.pt) and logs")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    p.add_argument("--max-minutes", type=positive_float, help="stop after this many minutes (resumable)")
    p.add_argument("--max-steps", type=positive_int, help="stop after this many optimizer steps (resumable)")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--steps-per-epoch", type=positive_int)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--patch-size", type=positive_int)
    p.add_argument("--lr", type=positive_float)
    p.add_argument("--ema", type=unit_interval, help="EMA decay of the weights, e.g. 0.999 (default: none, as the paper)")
    p.add_argument("--seed", type=non_negative_int)
    p.add_argument("--num-workers", type=non_negative_int)
    p.add_argument("--data-root", help="folder of the dataset (default: the teachdiff data folder)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.set_defaults(func=run)


def run(args) -> int:
    from teachdiff.train import train, train_preset

    cfg, method_cfg = train_preset(args.dataset, args.preset, args.model)
    changes = {field: getattr(args, option) for option, field in OVERRIDES.items()
               if getattr(args, option) is not None}
    cfg = dataclasses.replace(cfg, **changes)
    if args.patch_size is not None and hasattr(method_cfg, "unet"):
        method_cfg = dataclasses.replace(method_cfg, unet=dataclasses.replace(method_cfg.unet, image_size=args.patch_size))
    result = train(cfg, method_cfg, args.out, resume=args.resume, progress=not args.no_progress)
    best = [r["val_mae"] for r in result.history if "val_mae" in r]
    summary = f"best validation MAE {min(best):.2f}" if best else "no validation yet"
    print(f"{'finished' if result.finished else 'stopped'}: {summary}; checkpoints in {result.out_dir}")
    return 128 + signal.Signals[result.stop_reason] if result.stop_reason in ("SIGINT", "SIGTERM") else 0
