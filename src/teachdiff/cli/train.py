"""``teachdiff train``: train the DDPM or a baseline on a registered dataset."""

from __future__ import annotations

import argparse
import dataclasses
import signal

from teachdiff.cli.args import non_negative_int, positive_float, positive_int, unit_interval
from teachdiff.core import choices
from teachdiff.cli.data import add_folder_options

EXAMPLES = """
examples:
  # minutes on a laptop CPU, on the synthetic microscope (no download needed)
  teachdiff train --dataset synthetic-microtubules --preset quick --out runs/mt-quick

  # the paper's settings on a GPU; the data folder as described by `teachdiff data list`
  teachdiff train --dataset zebrafish --preset paper --out runs/zebrafish

  # stop after 60 minutes (a checkpoint is written), continue later
  teachdiff train --dataset zebrafish --preset paper --out runs/zebrafish --max-minutes 60
  teachdiff train --dataset zebrafish --preset paper --out runs/zebrafish --resume

  # one Colab T4 session: the paper's network at 256², 4000 steps in fp16 (about 30-40 min
  # if it runs at an assumed 25-35 % of the T4's peak; the trainer prints a measured ETA)
  teachdiff train --dataset zebrafish --preset colab --out /content/drive/MyDrive/runs/zebrafish

  # a benchmark model with the same loop and data
  teachdiff train --model care --dataset synthetic-microtubules --preset quick --out runs/care

  # your own folder of pairs (raw/ + gt/, see `teachdiff data check --help`), 12-bit camera data
  teachdiff train --data ~/my-pairs --bit-depth 12 --out runs/mine
  teachdiff train --data ~/my-pairs --normalize percentile --model care --out runs/mine-care

  # fine-tune an existing model on your pairs (architecture from the checkpoint, lr / 10)
  teachdiff train --data ~/my-pairs --bit-depth 12 --init runs/mt-quick/best.pt --out runs/mt-mine

  # several GPUs (effective batch = batch size x GPUs; the learning rate is not rescaled)
  torchrun --nproc_per_node 4 -m teachdiff train --dataset microtubules --preset paper --out runs/mt
"""

OVERRIDES = {  # option -> TrainConfig field
    "epochs": "epochs", "steps_per_epoch": "steps_per_epoch", "batch_size": "batch_size", "lr": "lr",
    "ema": "ema_decay", "seed": "seed", "num_workers": "num_workers", "max_minutes": "max_minutes",
    "max_steps": "max_steps", "data_root": "data_root", "patch_size": "patch_size",
    "precision": "precision", "compile": "compile", "random_crops": "random_crops",
}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model (DDPM or a baseline)",
                              description=__doc__, epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="a name from `teachdiff data list`")
    source.add_argument("--data", metavar="PATH", help="your own folder of image pairs (raw/ + gt/, see below)")
    p.add_argument("--model", default=None, choices=choices.MODEL_KINDS,
                   help="default: ddpm, or the model of --init")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="fine-tune from this checkpoint (or run folder): its architecture, lr / 10 unless --lr")
    p.add_argument("--force", action="store_true", help="replace a run already in --out (default: refuse)")
    p.add_argument("--preset", default="quick", choices=choices.PRESETS,
                   help="quick: minutes on a CPU; colab: one Colab T4 session (<= ~60 min); "
                        "paper: the paper's settings (GPU, hours)")
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
    p.add_argument("--random-crops", action="store_true", default=None,
                   help="train on a fresh random crop of each image every time (the benchmark protocol, "
                        "teachdiff.training.protocol) instead of the fixed grid of patches")
    p.add_argument("--num-workers", type=non_negative_int)
    p.add_argument("--data-root", help="folder of the dataset (default: the teachdiff data folder)")
    p.add_argument("--precision", choices=choices.PRECISIONS,
                   help="auto (default): bf16 on GPUs with bf16, fp16 + gradient scaling on older GPUs "
                        "(T4, V100), fp32 on the CPU")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the network(s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    add_folder_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from teachdiff.cli.data import folder_config
    from teachdiff.store.resolve import checkpoint_kind
    from teachdiff.training.config import finetune_config
    from teachdiff.training.loop import train
    from teachdiff.training.presets import train_preset

    if args.data is None and (args.bit_depth is not None or args.normalize != "bitdepth" or args.register):
        raise ValueError("--bit-depth, --normalize and --register describe your own folder; use them with --data "
                         "PATH (a registered --dataset has its own settings).")
    model = args.model or (checkpoint_kind(args.init) if args.init else "ddpm")
    cfg, method_cfg = train_preset(args.data or args.dataset, args.preset, model)
    changes = {field: getattr(args, option) for option, field in OVERRIDES.items()
               if getattr(args, option) is not None and option != "lr"}
    cfg = dataclasses.replace(cfg, **changes)
    if args.data is not None:
        cfg = dataclasses.replace(cfg, data=folder_config(args, args.data))
    if args.init is not None:
        cfg = finetune_config(cfg, args.init, lr=args.lr)
    elif args.lr is not None:
        cfg = dataclasses.replace(cfg, lr=args.lr)
    if args.patch_size is not None and hasattr(method_cfg, "unet"):
        method_cfg = dataclasses.replace(method_cfg, unet=dataclasses.replace(method_cfg.unet, image_size=args.patch_size))
    result = train(cfg, method_cfg, args.out, resume=args.resume, progress=not args.no_progress, force=args.force)
    best = [r["val_mae"] for r in result.history if "val_mae" in r]
    summary = f"best validation MAE {min(best):.2f}" if best else "no validation yet"
    print(f"{'finished' if result.finished else 'stopped'}: {summary}; checkpoints in {result.out_dir}")
    return 128 + signal.Signals[result.stop_reason] if result.stop_reason in ("SIGINT", "SIGTERM") else 0
