"""Rebuild the quick model zoo: train every model to a plateau on 2 CPU cores, score, release.

    python benchmarks/zoo/build_quick_zoo.py                       # everything (hours on 2 cores)
    python benchmarks/zoo/build_quick_zoo.py --datasets synthetic-microtubules --models ddpm care

For each synthetic dataset and model it

1. trains the zoo recipe below in ``--runs/<dataset>/models/<model>`` (resumable: run the same
   command again after an interruption and it continues from ``last.pt`` to the same weights),
   stopping at fixed step marks to measure the learning curve: the validation MAE of the model's
   restoration and, for the DDPM, of DDPM-avg (the mean of ``CURVE_SAMPLES`` DDIM-10 samples: the
   ancestral sampler's 200 steps per sample are too dear to repeat at every mark on a CPU);
2. scores the finished models on the test split with ``teachdiff reproduce``'s pipeline (every
   model, DDPM-avg, the Gaussian filter and non-local means; medians of MAE, PSNR, MS-SSIM);
3. writes a released copy of each best checkpoint to ``src/teachdiff/weights/`` and its entry to
   the manifest, and the curves and tables to ``benchmarks/results/zoo/``.

Every model gets the same protocol: a cosine learning-rate schedule long enough for its
validation curve to flatten, and the checkpoint with the lowest validation MAE. A curve whose
best value still improved by 2 % or more over the last quarter of its run has not flattened: that
model is trained again from scratch for twice as many steps (the cosine schedule must span the
whole run, so a finished run cannot simply go on), up to 4x its recipe; the shorter runs are kept
as ``models/<model>@<steps>steps`` and reported. Noise2Void must never see the ground truth: its
flatness is judged on its own blind-spot loss on the validation inputs (``curve_key``), and it is
released with its last weights.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import teachdiff
from teachdiff import zoo
from teachdiff.train import TrainConfig, load_checkpoint, load_method, train, train_preset

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "zoo"
DATASETS = ("synthetic-microtubules", "synthetic-zebrafish", "synthetic-mitochondria", "synthetic-synapses")
MODELS = ("ddpm", "care", "n2v", "pix2pix", "rcan")
CURVE_SAMPLES = 8  # DDIM-10 samples averaged for the DDPM-avg learning curve
CURVE_IMAGES = 16  # validation patches of every curve point
N2V_MASK_DRAWS = 32  # blind-spot masks averaged for Noise2Void's own validation loss (~4000 pixels)


MAX_LENGTH = 4  # a curve still falling after 4x its recipe's steps is released and reported as such


def recipe(dataset: str, model: str, scale: float = 1.0, length: int = 1) -> tuple[TrainConfig, object, list[int]]:
    """The zoo's training run of one model: (TrainConfig, method config, curve marks in steps).

    Each is the model's ``quick`` preset (same network family, patch size and optimiser) trained
    for longer, with validation on more patches; ``length`` multiplies the epochs (a run that had
    not flattened, see :func:`train_to_plateau`). ``scale`` shortens every epoch (a smoke run).
    """
    cfg, method_cfg = train_preset(dataset, "quick", model)
    if model == "ddpm":
        cfg = dataclasses.replace(cfg, epochs=40 * length, steps_per_epoch=100, val_images=CURVE_IMAGES,
                                  ema_decay=0.999)
    else:
        cfg = dataclasses.replace(cfg, epochs=20 * length, steps_per_epoch=100, val_images=CURVE_IMAGES)
    cfg = dataclasses.replace(cfg, steps_per_epoch=max(1, round(cfg.steps_per_epoch * scale)))
    total = cfg.epochs * cfg.steps_per_epoch
    marks = sorted({total * k // 8 for k in range(1, 9)})
    return cfg, method_cfg, marks


def command(dataset: str, model: str, length: int = 1) -> str:
    cfg, _, _ = recipe(dataset, model, length=length)
    return (f"python benchmarks/zoo/build_quick_zoo.py --datasets {dataset} --models {model}  "
            f"# = teachdiff train --dataset {dataset} --model {model} --preset quick --epochs {cfg.epochs} "
            f"--steps-per-epoch {cfg.steps_per_epoch} --seed {cfg.seed}"
            + (f" --ema {cfg.ema_decay}" if cfg.ema_decay else ""))


def _val_curve_point(run: Path, dataset: str, model: str, cfg: TrainConfig) -> dict:
    """Validation MAE of the weights in ``run/last.pt`` (and of DDPM-avg for the DDPM)."""
    from teachdiff.data import make_datasets
    from teachdiff.infer import sample_tiled

    device = teachdiff.device()
    method = load_method(run / "last.pt", map_location=device)
    val = make_datasets(dataset, patch_size=cfg.patch_size, quick=True, seed=cfg.seed, augmentation=False)["val"]
    n = min(CURVE_IMAGES, len(val))
    x = torch.stack([val[i]["x"] for i in range(n)]).to(device)
    y = torch.stack([val[i]["y"] for i in range(n)]).to(device)

    def mae(pred):
        return float(((pred.clamp(-1, 1) - y.clamp(-1, 1)).abs() * 127.5).flatten(1).mean(1).median())

    generator = torch.Generator().manual_seed(cfg.seed)
    point = {"step": load_checkpoint(run / "last.pt")["step"], "val_mae_input": mae(x)}
    with torch.no_grad():
        if model == "ddpm":
            samples = sample_tiled(method.unet, x, method.schedule, n_samples=CURVE_SAMPLES, sampler="ddim",
                                   steps=10, tile=None, generator=generator, progress=False)
            point["val_mae_single"] = mae(samples[:, 0])
            point["val_mae"] = mae(samples.mean(1))
        else:
            point["val_mae"] = mae(method.restore(x, generator=generator))
        if model == "n2v":  # its own objective on the validation inputs: no ground truth needed
            masks = torch.Generator().manual_seed(cfg.seed)
            point["val_loss_self"] = float(np.mean([float(method(x, None, generator=masks))
                                                    for _ in range(N2V_MASK_DRAWS)]))
    return point


def curve_key(model: str) -> str:
    """The curve whose flattening decides a model's training length: the validation MAE, or for
    Noise2Void, which must never see the ground truth, its blind-spot loss on the validation inputs."""
    return "val_loss_self" if model == "n2v" else "val_mae"


def shorter_runs(run: Path) -> list[Path]:
    """The runs of ``run``'s model that had not flattened and were replaced by a longer one."""
    return sorted(run.parent.glob(f"{run.name}@*steps"), key=lambda p: int(p.name.split("@")[1][:-5]))


def run_length(run: Path) -> int:
    """The recipe multiple the run in ``run`` trains: doubled for every shorter run it replaced."""
    return 2 ** len(shorter_runs(run))


def train_to_plateau(dataset: str, model: str, runs: Path, progress: bool, scale: float = 1.0) -> Path:
    """Train (or resume) one zoo model until its curve has flattened; returns the run folder.

    A curve that has not flattened (:func:`plateau`) moves aside to ``<model>@<steps>steps`` and
    the model is trained again for twice as many steps, up to ``MAX_LENGTH`` times the recipe.
    Resumable at every point: the number of runs set aside says which length is being trained."""
    run = runs / dataset / "models" / model
    while True:
        length = run_length(run)
        cfg, method_cfg, marks = recipe(dataset, model, scale, length)
        train_marks(run, cfg, method_cfg, marks, progress)
        flat, gain = plateau(json.loads((run / "curve.json").read_text()), curve_key(model))
        if flat or 2 * length > MAX_LENGTH:
            return run
        print(f"{dataset} {model}: still improving ({100 * gain:.1f} % in the last quarter of {marks[-1]} "
              f"steps): training again for {2 * marks[-1]} steps", flush=True)
        run.rename(run.with_name(f"{model}@{marks[-1]}steps"))


def train_marks(run: Path, cfg: TrainConfig, method_cfg, marks: list[int], progress: bool) -> Path:
    """Train (or resume) ``cfg`` in ``run``, stopping at each mark to add a point to ``run/curve.json``."""
    dataset, model = cfg.dataset, cfg.model
    curve_file = run / "curve.json"
    curve = json.loads(curve_file.read_text()) if curve_file.exists() else []
    done_steps = {p["step"] for p in curve}
    for mark in marks:
        step = load_checkpoint(run / "last.pt")["step"] if (run / "last.pt").exists() else 0
        if step < mark:
            train(dataclasses.replace(cfg, max_steps=mark), method_cfg, run, resume=(run / "last.pt").exists(),
                  progress=progress)
            if load_checkpoint(run / "last.pt")["step"] < mark:  # stopped (Ctrl-C, SIGTERM): no point, no next mark
                raise SystemExit(f"{run}: training stopped before step {mark}; run the same command to resume.")
        # A point between this mark and the next (an interrupted run's, e.g. step 800) stands for it.
        later = [m for m in marks if m > mark]
        if not any(mark <= s < (later[0] if later else float("inf")) for s in done_steps):
            curve.append(_val_curve_point(run, dataset, model, cfg))
            done_steps.add(mark)
            curve_file.write_text(json.dumps(sorted(curve, key=lambda p: p["step"]), indent=1))
            print(f"{dataset} {model}: step {mark}: val MAE {curve[-1]['val_mae']:.3f}", flush=True)
    return run


def plateau(curve: list[dict], key: str = "val_mae") -> tuple[bool, float]:
    """(flattened?, relative improvement of the best ``key`` value over the last quarter of the steps).

    A curve that never went below its first point has not learned, so it has not flattened either."""
    steps = np.array([p["step"] for p in curve])
    maes = np.array([p[key] for p in curve])
    before = maes[steps <= 0.75 * steps.max()]
    if len(before) == 0:
        return False, float("nan")
    gain = (before.min() - maes.min()) / before.min()
    return bool(gain < 0.02 and maes.min() < maes[0]), float(gain)


def score_dataset(dataset: str, runs: Path, progress: bool) -> list[dict]:
    """The comparison table of the trained models on the test split (reproduce's pipeline), kept
    in ``runs/<dataset>/zoo_table.json`` until a model is trained further."""
    from teachdiff.reproduce import ReproduceConfig, reproduce

    cached = runs / dataset / "zoo_table.json"
    newest = max((runs / dataset / "models" / m / "last.pt").stat().st_mtime for m in MODELS)
    if cached.exists() and cached.stat().st_mtime > newest:
        return json.loads(cached.read_text())
    cfg = dataclasses.replace(ReproduceConfig.preset_for(dataset, "quick"), n_avg=15, test_images=16,
                              use_zoo=False)
    table = reproduce(cfg, runs / dataset, progress=progress)["table"]
    cached.write_text(json.dumps(table, indent=1, default=float))
    return table


HALF_PRECISION = ("pix2pix",)
"""Models released with float16 weights (``zoo.released_weights(half=True)``, loaded back into
float32): pix2pix's generator has 1.8 M parameters, 70 % of the bundle in float32. Their test
scores are measured again with the rounded weights (:func:`rescore_half`)."""


def rescore_half(dataset: str, runs: Path, table: list[dict], progress: bool) -> list[dict]:
    """The test table with the ``HALF_PRECISION`` models scored as released: their per-image rows
    of ``runs/<dataset>/scores.csv`` replaced by reproduce's on a copy of the run whose weights are
    rounded to float16, and the table rebuilt from all rows (Mood's test against DDPM-avg included)."""
    from teachdiff.reproduce import ReproduceConfig, _median_table, _write_csv, reproduce
    from teachdiff.train import _atomic_write

    todo = [m for m in HALF_PRECISION
            if not any(r["method"] == m and r.get("weights_dtype") == "float16" for r in table)]
    if not todo:
        return table
    scores = runs / dataset / "scores.csv"
    with open(scores, newline="") as fh:
        rows = [{k: v if k == "method" else int(v) if k == "image" else float(v) for k, v in r.items()}
                for r in csv.DictReader(fh)]
    for model in todo:
        half_run = runs / dataset / "released-half"
        (half_run / "models" / model).mkdir(parents=True, exist_ok=True)
        state = zoo.released_weights(runs / dataset / "models" / model / "best.pt", half=True)
        state["finished"] = True  # a finished run: train_or_load loads its best.pt instead of training
        for name in ("best.pt", "last.pt"):
            _atomic_write(half_run / "models" / model / name, lambda tmp: torch.save(state, tmp))
        cfg = dataclasses.replace(ReproduceConfig.preset_for(dataset, "quick"), n_avg=15, test_images=16,
                                  use_zoo=False, models=(model,), classical=False)
        rescored = iter(r for r in reproduce(cfg, half_run, progress=progress)["rows"] if r["method"] == model)
        rows = [next(rescored) if r["method"] == model else r for r in rows]  # same images, same order
    _write_csv(scores, rows)
    table = _median_table(rows, dataset)
    for row in table:
        if row["method"] in HALF_PRECISION:
            row["weights_dtype"] = "float16"
    (runs / dataset / "zoo_table.json").write_text(json.dumps(table, indent=1, default=float))
    return table


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def release(dataset: str, model: str, runs: Path, table: list[dict]) -> zoo.ZooEntry:
    from teachdiff import datacard

    run = runs / dataset / "models" / model
    length = run_length(run)
    cfg, method_cfg, _ = recipe(dataset, model, length=length)
    best = run / ("last.pt" if model == "n2v" else "best.pt")
    state = load_checkpoint(best)
    history = load_checkpoint(run / "last.pt")["history"]
    name = f"{dataset}-{model}-quick"
    rows = {r["method"]: r for r in table}
    keys = ("mae", "psnr", "ms_ssim")
    scores = {k: round(rows[model][k], 4) for k in keys}
    if model == "ddpm":
        scores.update({f"avg_{k}": round(rows["ddpm-avg"][k], 4) for k in keys})
    meta = {"name": name, "protocol": "teachdiff reproduce quick: 16 test patches of 192², DDPM-avg of 15 DDIM-10"}
    notes = meta["protocol"]
    if model == "ddpm":
        notes += f". Configuration: {study_summary(runs)}"
    if model in HALF_PRECISION:
        notes += ". Weights stored in float16 (loaded into float32) to halve the file; scored as stored"
    file = f"{name}.pt"
    sha, size = zoo.export_checkpoint(best, zoo.BUNDLED_DIR / file, meta, half=model in HALF_PRECISION)
    return zoo.ZooEntry(
        name=name, dataset=dataset, model=model, preset="quick", config=state["method_config"], sha256=sha,
        size=size, file=file, bundled=True,
        url=f"https://github.com/teachdiff/teachdiff/raw/main/src/teachdiff/weights/{file}",
        command=command(dataset, model, length), seed=cfg.seed,
        train_seconds=round(sum(r.get("seconds", 0.0) for r in history), 1), machine=machine(),
        steps=state["step"], scores=scores, notes=notes, data_card=datacard.for_checkpoint(state))


DDPM_CHOICE = "tiny-ema"  # the ddpm_study.py candidate that recipe() trains; see study_summary


def study_summary(runs: Path) -> str:
    """One line on how the DDPM's configuration was chosen (``ddpm_study.py``'s runs), for the manifest."""
    found = []
    for folder in sorted(runs.glob("*/study/*/curve.json")):
        curve = json.loads(folder.read_text())
        found.append(f"{folder.parent.name} {min(p['val_mae'] for p in curve):.2f} / {curve[-1]['val_mae']:.2f}")
    if not found:
        return "the quick preset's network and recipe, trained longer (no study run)."
    dataset = next(runs.glob("*/study")).parent.name
    return (f"{DDPM_CHOICE}, chosen by benchmarks/zoo/ddpm_study.py on {dataset} at equal CPU time "
            f"(DDPM-avg validation MAE, best / last: {'; '.join(found)}).")


def write_results(dataset: str, runs: Path, table: list[dict], models: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    lines = [f"# {dataset}: learning curves of the quick zoo", "",
             f"Validation MAE (median over {CURVE_IMAGES} patches of 64², 0..255 scale) at each mark; DDPM-avg "
             f"= mean of {CURVE_SAMPLES} DDIM-10 samples. Machine: {machine()}.", "",
             "Gain and flatness are those of the validation MAE, except for Noise2Void: of its blind-spot loss "
             "on the validation inputs, which needs no ground truth (its MAE is reported only).", "",
             "| model | steps | train s | best val MAE | gain in last quarter | flattened |", "|---|---|---|---|---|---|"]
    for model in models:
        run = runs / dataset / "models" / model
        curve = json.loads((run / "curve.json").read_text())
        history = load_checkpoint(run / "last.pt")["history"]
        flat, gain = plateau(curve, curve_key(model))
        label = "DDPM-avg" if model == "ddpm" else model
        ax.plot([p["step"] for p in curve], [p["val_mae"] for p in curve], marker="o", label=label)
        if model == "ddpm":
            ax.plot([p["step"] for p in curve], [p["val_mae_single"] for p in curve], marker=".", ls="--",
                    label="DDPM (1 sample)")
        lines.append(f"| {label} | {curve[-1]['step']} | {sum(r.get('seconds', 0) for r in history):.0f} | "
                     f"{min(p['val_mae'] for p in curve):.3f} | {100 * gain:.1f} % | {'yes' if flat else 'no'} |")
        for shorter in shorter_runs(run):
            short_curve = json.loads((shorter / "curve.json").read_text())
            short_history = load_checkpoint(shorter / "last.pt")["history"]
            ax.plot([p["step"] for p in short_curve], [p["val_mae"] for p in short_curve], marker="x", ls=":",
                    color=ax.lines[-1].get_color(), label=f"{label}, {short_curve[-1]['step']}-step run")
            lines.append(f"| {label}, replaced | {short_curve[-1]['step']} | "
                         f"{sum(r.get('seconds', 0) for r in short_history):.0f} | "
                         f"{min(p['val_mae'] for p in short_curve):.3f} | "
                         f"{100 * plateau(short_curve, curve_key(model))[1]:.1f} % | "
                         "no: trained again for twice the steps |")
    ax.axhline(curve[0]["val_mae_input"], color="gray", ls=":", label="raw input")
    ax.set(xlabel="optimizer steps", ylabel="validation MAE", title=dataset)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{dataset}_curves.png", dpi=90)
    plt.close(fig)
    lines += ["", "## Test split (reproduce's pipeline, medians)", "", "| method | MAE | PSNR | MS-SSIM |",
              "|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['mae']:.2f} | {r['psnr']:.2f} | {r['ms_ssim']:.3f} |" for r in table]
    (RESULTS / f"{dataset}.md").write_text("\n".join(lines) + "\n")


COMPARISON_WHY = """\
- **Why, as far as we can tell:** the quick DDPM is a 0.29 M-parameter U-Net trained on 64²
  patches for 4000 steps; the paper's is 64 M parameters on 256² patches. The DDPM has to learn
  the whole conditional distribution, a regression model only its median or mean; with a network
  this small and this little training, the direct regression is the easier target. The DDPM study
  (`ddpm_study.md`) found no better DDPM within the same CPU time. Whether the paper's order
  returns with the paper's network is what the GPU zoo (`benchmarks/zoo/train_paper_zoo.py`) will
  show.
- **Noise2Void's MAE curve** is its raw validation MAE against the ground truth, which it never
  sees in training: it learns the input's intensities, which the rescaling (§3.6) fixes only at
  test time, so that curve can stay above its first point while the model improves. Its length
  is judged by its own blind-spot loss on the validation inputs instead."""


def write_comparison(runs: Path) -> None:
    """``comparison.md``: every dataset's test table side by side, and what agrees with the paper."""
    from teachdiff.reproduce import LABELS as REPRODUCE_LABELS

    labels = {**REPRODUCE_LABELS, "raw": "raw input", "ddpm": "DDPM (1 sample)", "pix2pix": "pix2pix"}
    tables = {d: {r["method"]: r for r in json.loads((runs / d / "zoo_table.json").read_text())}
              for d in DATASETS if (runs / d / "zoo_table.json").exists()}
    methods = list(next(iter(tables.values())))
    lines = ["# Quick zoo: the comparison table, four synthetic datasets", "",
             "Each cell is MAE / PSNR (dB) / MS-SSIM, the median over 16 test patches of 192² (0..255 scale),",
             "scored by `teachdiff reproduce`'s pipeline with the released quick-zoo models (DDPM-avg: mean of",
             "15 DDIM-10 samples; CARE, Noise2Void, UNet-RCAN and the filters rescaled to the GT's training",
             "distribution as in the paper, §3.6). LPIPS is n/a on this machine (no torchvision / AlexNet",
             "weights). Source: `benchmarks/results/zoo/<dataset>.md`, written with this file by",
             f"`benchmarks/zoo/build_quick_zoo.py`. Machine: {machine()}.", "",
             "| method | " + " | ".join(d.removeprefix("synthetic-") for d in tables) + " |",
             "|---|" + "---|" * len(tables)]
    for m in methods:
        cells = [f"{t[m]['mae']:.2f} / {t[m]['psnr']:.2f} / {t[m]['ms_ssim']:.3f}" for t in tables.values()]
        lines.append(f"| {labels.get(m, m)} | " + " | ".join(cells) + " |")
    wins = [d.removeprefix("synthetic-") for d, t in tables.items()
            if min(t, key=lambda m: t[m]["mae"]) == "ddpm-avg"]
    lines += ["", "## Reading it against the paper", "",
              f"The paper's central claim, DDPM-avg the best method, holds by median MAE on "
              f"{len(wins)} of {len(tables)} datasets here{' (' + ', '.join(wins) + ')' if wins else ''}:", ""]
    learned = [m for m in methods if m not in ("raw", "ddpm", "ddpm-avg")]
    for m in learned:
        margins = {d.removeprefix("synthetic-"): t[m]["mae"] - t["ddpm-avg"]["mae"] for d, t in tables.items()}
        better = {d: v for d, v in margins.items() if v < 0}
        if better:
            lines.append(f"- {labels.get(m, m)} has a lower median MAE than DDPM-avg on {len(better)} of "
                         f"{len(tables)} datasets ({', '.join(f'{d} by {-v:.2f}' for d, v in better.items())}).")
        else:
            lines.append(f"- DDPM-avg has a lower median MAE than {labels.get(m, m)} on every dataset "
                         f"(by {min(margins.values()):.2f}–{max(margins.values()):.2f}).")
    single = all(t["ddpm-avg"][k] < t["ddpm"][k] if k == "mae" else t["ddpm-avg"][k] > t["ddpm"][k]
                 for t in tables.values() for k in ("mae", "psnr", "ms_ssim"))
    lines += [f"- DDPM-avg is {'better' if single else 'not always better'} than a single DDPM sample "
              "on every dataset and metric (the paper's averaging result).", COMPARISON_WHY, ""]
    (RESULTS / "comparison.md").write_text("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "zoo", help="training runs (resumable)")
    parser.add_argument("--no-release", action="store_true", help="train and score, but leave the manifest as is")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--scale", type=float, default=1.0, help="shorten every run by this factor (smoke test)")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    progress = not args.no_progress
    for dataset in args.datasets:
        start = time.monotonic()
        for model in args.models:
            train_to_plateau(dataset, model, args.runs, progress, args.scale)
        done = [m for m in MODELS if (args.runs / dataset / "models" / m / "curve.json").exists()
                and load_checkpoint(args.runs / dataset / "models" / m / "last.pt").get("finished")]
        table = score_dataset(dataset, args.runs, progress) if set(done) == set(MODELS) else None
        if table is None:
            print(f"{dataset}: trained {done}; the test table needs all of {MODELS}", flush=True)
            continue
        table = rescore_half(dataset, args.runs, table, progress)
        write_results(dataset, args.runs, table, list(MODELS))
        if not args.no_release and args.scale == 1.0:
            released = {e.name: e for e in zoo.read_manifest()}
            for model in MODELS:
                entry = release(dataset, model, args.runs, table)
                released[entry.name] = entry
            zoo.write_manifest(list(released.values()))
        print(f"{dataset}: done in {time.monotonic() - start:.0f} s", flush=True)
    write_comparison(args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
