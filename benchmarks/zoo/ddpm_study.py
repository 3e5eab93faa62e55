"""Choose the quick zoo's DDPM: candidate configurations at (about) equal CPU cost, by their curves.

    python benchmarks/zoo/ddpm_study.py --dataset synthetic-microtubules --candidates tiny-ema tiny

Each candidate is the protocol's DDPM recipe (``teachdiff.training.protocol.recipe``) with one change: the U-Net's
width, the EMA, or the number of steps. Steps are set so that every candidate costs about the same
single-core training time (``STEP_MS``: measured ms per step of batch 8 at 64², 1 thread, on the
2-core CI machine). The runs are resumable and live in ``--runs/<dataset>/study/<candidate>``; the
table and curves go to ``benchmarks/results/zoo/ddpm_study.md`` and ``ddpm_study.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_quick_zoo as zoo_build  # noqa: E402
from teachdiff.training import protocol  # noqa: E402
from teachdiff.core.unet import UNetConfig  # noqa: E402

BUDGET_S = 940  # single-core training seconds per candidate (4000 steps of the tiny U-Net)
STEP_MS = {"tiny": 235, "w24": 409, "w32": 608, "small": 1255}  # /tmp/cost.py-style measurement
WIDTH = {"tiny": UNetConfig.tiny(),
         "w24": dataclasses.replace(UNetConfig.tiny(), channels=24, channels_per_head=24),
         "w32": dataclasses.replace(UNetConfig.tiny(), channels=32, channels_per_head=32),
         "small": UNetConfig.small()}
# name: (network, EMA decay or None)
CANDIDATES = {"tiny-ema": ("tiny", 0.999), "tiny": ("tiny", None), "w32-ema": ("w32", 0.999),
              "w24-ema": ("w24", 0.999), "small-ema": ("small", 0.999)}


def candidate(dataset: str, name: str):
    """(TrainConfig, DiffusionConfig, marks) of one candidate at the common budget."""
    cfg, method_cfg, _ = protocol.recipe(dataset, "ddpm")
    width, ema = CANDIDATES[name]
    steps = round(BUDGET_S * 1000 / STEP_MS[width] / 100) * 100
    cfg = dataclasses.replace(cfg, epochs=steps // 100, steps_per_epoch=100, ema_decay=ema)
    method_cfg = dataclasses.replace(method_cfg, unet=WIDTH[width])
    return cfg, method_cfg, sorted({steps * k // 8 for k in range(1, 9)})


def write_results(dataset: str, runs: Path, names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from teachdiff.store.checkpoint import load_checkpoint

    fig, ax = plt.subplots(figsize=(6, 4))
    lines = [f"# Choosing the quick zoo's DDPM ({dataset})", "",
             f"Each candidate trains for about {BUDGET_S} s of one CPU core (steps = budget / measured time per "
             "step). Validation MAE of DDPM-avg (mean of "
             f"{zoo_build.CURVE_SAMPLES} DDIM-10 samples, median over {zoo_build.CURVE_IMAGES} patches of 64²). "
             f"Machine: {zoo_build.machine()}.", "",
             "| candidate | parameters | steps | train s | best DDPM-avg val MAE | 1 sample | gain in last quarter |",
             "|---|---|---|---|---|---|---|"]
    for name in names:
        run = runs / dataset / "study" / name
        curve = json.loads((run / "curve.json").read_text())
        state = load_checkpoint(run / "last.pt")
        params = sum(v.numel() for k, v in state["model"].items() if not k.endswith(("cond_mean", "cond_std")))
        _, gain = protocol.plateau(curve)
        best = min(curve, key=lambda p: p["val_mae"])
        seconds = sum(r.get("seconds", 0) for r in state["history"])
        ax.plot([p["step"] for p in curve], [p["val_mae"] for p in curve], marker="o", label=name)
        lines.append(f"| {name} | {params:,} | {curve[-1]['step']} | {seconds:.0f} | {best['val_mae']:.3f} | "
                     f"{best['val_mae_single']:.3f} | {100 * gain:.1f} % |")
    ax.set(xlabel="optimizer steps", ylabel="DDPM-avg validation MAE", title=f"DDPM candidates, {dataset}",
           ylim=(None, 2 * curve[0]["val_mae_input"]))
    ax.legend(fontsize=8)
    fig.tight_layout()
    zoo_build.RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(zoo_build.RESULTS / "ddpm_study.png", dpi=90)
    plt.close(fig)
    (zoo_build.RESULTS / "ddpm_study.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="synthetic-microtubules", choices=zoo_build.DATASETS)
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--runs", type=Path, default=zoo_build.ROOT / "runs" / "zoo")
    parser.add_argument("--report", nargs="*", default=None,
                        help="only write the table of these finished candidates (all given: --candidates)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.report is None:
        for name in args.candidates:
            cfg, method_cfg, marks = candidate(args.dataset, name)
            zoo_build.train_marks(args.runs / args.dataset / "study" / name, cfg, method_cfg, marks,
                                  not args.no_progress)
    names = args.report or args.candidates
    write_results(args.dataset, args.runs, names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
