"""Re-run a paper result: train (or load) every model, restore the test split, score, compare.

``teachdiff reproduce DATASET --preset quick|paper --out DIR`` does, for one dataset:

1. train each model with its preset, or load ``DIR/models/<model>/best.pt`` when that run finished
   (``teachdiff.train.train_or_load``; an interrupted run is resumed);
2. restore the test patches: DDPM (one sample), DDPM-avg (mean of N samples, N = 15 in the
   paper), the baselines and two classical filters;
3. post-process as the paper (§S2): CARE, Noise2Void and UNet-RCAN outputs are clipped to
   [0, 255] and linearly rescaled to the GT training distribution; DDPM and pix2pix are clipped;
4. score every image with every metric (``teachdiff.metrics.evaluate``), write ``scores.csv``,
   the median table next to the paper's numbers with the difference (``table.md``), box plots
   like Figs. 1A-4A (``boxplots.png``) and the averaging curve of Fig. S1 (``averaging.png``).

In the ``quick`` preset everything is small (64² training patches, a tiny network, 4 test
patches of 192² -- the smallest size MS-SSIM's five scales accept is 176² --, 4 DDIM samples of
10 steps) so it runs on a CPU in minutes; the numbers then say that the
pipeline works, not what the paper measured. Synthetic datasets are compared with the paper's
numbers of the matching real dataset only as a reference point, and the table says so.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import teachdiff
from teachdiff import metrics, stats
from teachdiff.paper import METHOD_LABELS, paper_value

__all__ = ["ReproduceConfig", "reproduce", "add_parser"]

RESCALED = ("care", "n2v", "rcan")  # §S2: these outputs are rescaled to the GT distribution
TABLE_METRICS = ("mae", "psnr", "ms_ssim", "lpips", "nrmse", "pearson", "resolution_ratio")


@dataclass
class ReproduceConfig:
    dataset: str
    preset: str = "quick"
    models: tuple[str, ...] = ("ddpm", "care", "n2v", "pix2pix", "rcan")
    n_avg: int = 15  # samples averaged for DDPM-avg (paper: 15)
    sampler: str = "ddpm"  # the paper's ancestral sampler; "ddim" for speed
    steps: int = 20  # DDIM steps when sampler == "ddim"
    test_images: int | None = None  # None: the whole test split
    test_patch_size: int = 256
    classical: bool = True
    seed: int = 0

    @classmethod
    def preset_for(cls, dataset: str, preset: str) -> "ReproduceConfig":
        if preset == "paper":
            return cls(dataset, preset)
        if preset == "quick":
            return cls(dataset, preset, n_avg=4, sampler="ddim", steps=10, test_images=4, test_patch_size=192)
        raise ValueError(f"preset must be 'quick' or 'paper', got {preset!r}.")


def _to255(t: torch.Tensor) -> np.ndarray:
    return ((t.float().clamp(-1, 1) + 1) * 127.5).cpu().numpy()


def _trained(model: str, cfg: ReproduceConfig, out_dir: Path, progress: bool):
    from teachdiff.train import train_or_load

    return train_or_load(cfg.dataset, cfg.preset, model, out_dir / "models" / model, seed=cfg.seed,
                         progress=progress)


def _stack(dataset, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(dataset) if n is None else min(n, len(dataset))
    items = [dataset[i] for i in range(n)]
    return torch.stack([it["x"] for it in items]), torch.stack([it["y"] for it in items])


def reproduce(cfg: ReproduceConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Run the whole comparison for ``cfg.dataset``; returns the median table rows."""
    from teachdiff.data import get_dataset_info, make_datasets
    from teachdiff.infer import sample_tiled

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"--out {out_dir} is a file; give a folder.")
    out_dir.mkdir(parents=True, exist_ok=True)
    info = get_dataset_info(cfg.dataset)
    quick = cfg.preset == "quick"
    test_sets = make_datasets(cfg.dataset, patch_size=cfg.test_patch_size, quick=quick, seed=cfg.seed,
                              augmentation=False)
    x, y = _stack(test_sets["test"], cfg.test_images)
    gt = _to255(y[:, 0])
    reference = metrics.IntensityReference.from_images(
        _to255(_stack(test_sets["train"], 64)[1][:, 0]))
    device = teachdiff.device()
    generator = torch.Generator().manual_seed(cfg.seed)

    predictions: dict[str, np.ndarray] = {"raw": _to255(x[:, 0])}
    averaging_curve = None
    for model in cfg.models:
        method = _trained(model, cfg, out_dir, progress)
        if model == "ddpm":
            # Tiles of the training patch size: the network then sees what it was trained on, and
            # its bottleneck attention stays as small as in training.
            tile = method.unet.config.image_size
            samples = sample_tiled(method.unet, x.to(device), method.schedule, n_samples=cfg.n_avg,
                                   sampler=cfg.sampler, steps=cfg.steps, tile=tile if tile < x.shape[-1] else None,
                                   overlap=tile // 4, generator=generator, progress=progress).cpu()
            predictions["ddpm"] = _to255(samples[:, 0, 0])
            predictions["ddpm-avg"] = _to255(samples[:, :, 0].mean(1))
            averaging_curve = [np.median([metrics.mae(_to255(samples[i, :k, 0].mean(0)), gt[i])
                                          for i in range(len(gt))]) for k in range(1, cfg.n_avg + 1)]
            continue
        with torch.no_grad():
            pred = _to255(method.restore(x.to(device), generator=generator)[:, 0])
        predictions[model] = metrics.clip_and_rescale(pred, reference) if model in RESCALED else np.clip(pred, 0, 255)
    if cfg.classical:
        from teachdiff.baselines.classical import GaussianFilter, NonLocalMeans

        x_val, y_val = _stack(test_sets["val"], 8)
        for name, cls in (("gaussian", GaussianFilter), ("nlm", NonLocalMeans)):
            predictions[name] = _to255(cls.fit(x_val, y_val).restore(x)[:, 0])

    rows = []
    for name, pred in tqdm(predictions.items(), desc="scoring", disable=not progress):
        for i in range(len(gt)):
            scores = metrics.evaluate(pred[i], gt[i], pixel_size=info.pixel_size_nm)
            rows.append({"method": name, "image": i, **scores})
    _write_csv(out_dir / "scores.csv", rows)
    table = _median_table(rows, cfg.dataset)
    (out_dir / "table.md").write_text(_table_markdown(table, cfg))
    _plot_boxplots(rows, out_dir / "boxplots.png", cfg.dataset)
    if averaging_curve is not None:
        _plot_averaging(averaging_curve, out_dir / "averaging.png", cfg)
    return {"table": table, "rows": rows, "averaging_curve": averaging_curve, "predictions": predictions,
            "x": x, "gt": gt}


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _median_table(rows: list[dict], dataset: str) -> list[dict]:
    """One row per method: median of each metric, the paper's value and our minus the paper's."""
    table = []
    methods = list(dict.fromkeys(r["method"] for r in rows))
    reference_dataset = dataset.removeprefix("synthetic-")
    for method in methods:
        values = {m: np.array([r[m] for r in rows if r["method"] == method], dtype=float) for m in TABLE_METRICS}
        row = {"method": method}
        for metric, v in values.items():
            ours = float(np.nanmedian(v)) if np.isfinite(v).any() else math.nan
            paper = paper_value(reference_dataset, method, metric)
            row[metric] = ours
            row[f"{metric}_paper"] = math.nan if paper is None else paper
            row[f"{metric}_diff"] = ours - paper if paper is not None else math.nan
        if method != "ddpm-avg" and "ddpm-avg" in methods:
            mae_ours = np.array([r["mae"] for r in rows if r["method"] == method], dtype=float)
            mae_avg = np.array([r["mae"] for r in rows if r["method"] == "ddpm-avg"], dtype=float)
            row["mae_vs_ddpm_avg"] = stats.stars(stats.mood_median_test(mae_ours, mae_avg).p_value)
        table.append(row)
    return table


def _fmt(v: float, digits: int = 2) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def _table_markdown(table: list[dict], cfg: ReproduceConfig) -> str:
    synthetic = cfg.dataset.startswith("synthetic-")
    lines = [f"# {cfg.dataset}: medians over {cfg.test_images or 'all'} test patches ({cfg.preset} preset)", ""]
    if synthetic:
        lines += [f"*Synthetic stand-in data.* The paper's column is its result on the real "
                  f"`{cfg.dataset.removeprefix('synthetic-')}` data, shown as a reference point only.", ""]
    header = "| method | " + " | ".join(f"{m} (ours / paper / Δ)" for m in TABLE_METRICS) + " | MAE vs DDPM-avg |"
    lines += [header, "|" + "---|" * (len(TABLE_METRICS) + 2)]
    for row in table:
        cells = [f"{_fmt(row[m])} / {_fmt(row[m + '_paper'])} / {_fmt(row[m + '_diff'])}" for m in TABLE_METRICS]
        label = METHOD_LABELS.get(row["method"], row["method"])
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {row.get('mae_vs_ddpm_avg', '')} |")
    lines += ["", "Stars: Mood's median test of the per-image MAE against DDPM-avg "
              "(*** p < .001, ** p < .01, * p < .05, ns otherwise), as in Fig. 1A."]
    return "\n".join(lines) + "\n"


def _plot_boxplots(rows: list[dict], path: Path, dataset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    shown = ("mae", "psnr", "ms_ssim", "lpips")
    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.6))
    for ax, metric in zip(axes, shown):
        data = [[r[metric] for r in rows if r["method"] == m and np.isfinite(r[metric])] for m in methods]
        if any(data):
            ax.boxplot([d if d else [np.nan] for d in data], showfliers=False)
        ax.set_xticks(range(1, len(methods) + 1), [METHOD_LABELS.get(m, m) for m in methods], rotation=60,
                      fontsize=7)
        arrow = "↓" if metric in ("mae", "lpips") else "↑"
        ax.set_title(f"{metric.upper()} {arrow}" + ("" if any(data) else " (n/a here)"))
    fig.suptitle(dataset)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_averaging(curve: list[float], path: Path, cfg: ReproduceConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(range(1, len(curve) + 1), curve, "o-")
    ax.set_xlabel("number of averaged samples")
    ax.set_ylabel("median MAE ↓")
    ax.set_title(f"DDPM-avg on {cfg.dataset} (Fig. S1)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


EXAMPLES = """
examples:
  teachdiff reproduce synthetic-zebrafish --preset quick --out runs/repro-zf   # minutes on a CPU
  teachdiff reproduce zebrafish --preset paper --out runs/zebrafish             # Table 5 (GPU, hours)
  teachdiff reproduce microtubules --preset paper --models ddpm care --out runs/mt
"""


def add_parser(subparsers) -> None:
    import argparse

    p = subparsers.add_parser("reproduce", help="train, restore and score a dataset like the paper's tables",
                              description=__doc__, epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", help="a name from `teachdiff data list`")
    p.add_argument("--preset", default="quick", choices=["quick", "paper"])
    p.add_argument("--out", required=True, help="folder for models, scores.csv, table.md and figures")
    p.add_argument("--models", nargs="+", choices=["ddpm", "care", "n2v", "pix2pix", "rcan"])
    p.add_argument("--samples", type=int, help="samples averaged for DDPM-avg (paper: 15)")
    p.add_argument("--test-images", type=int, help="score only the first N test patches")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)


def _run(args) -> int:
    cfg = ReproduceConfig.preset_for(args.dataset, args.preset)
    changes = {"models": tuple(args.models) if args.models else None, "n_avg": args.samples,
               "test_images": args.test_images}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in changes.items() if v is not None})
    reproduce(cfg, args.out, progress=not args.no_progress)
    print((Path(args.out) / "table.md").read_text())
    return 0
