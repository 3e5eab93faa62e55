"""Rebuild the quick model zoo under the benchmark's one training protocol (``teachdiff.training.protocol``).

    python benchmarks/zoo/build_quick_zoo.py                       # everything (hours on 2 cores)
    python benchmarks/zoo/build_quick_zoo.py --datasets synthetic-microtubules --models ddpm care
    python benchmarks/zoo/build_quick_zoo.py --stage score          # test tables of finished datasets

For each synthetic dataset and model it

1. chooses the model's learning rate by the protocol's sweep (``protocol.LR_FACTORS`` x the
   preset's rate, a quarter of the budget each) on the validation split of ``--sweep-dataset``
   (``runs/<sweep dataset>/sweep/<model>/lr<rate>``), once per model, or on every dataset with
   ``--sweep-every-dataset``;
2. trains the protocol's run (``protocol.recipe``: the same number of training images for every
   model, random crops, EMA) in ``--runs/<dataset>/models/<model>`` (resumable: run the same
   command again after an interruption and it continues from ``last.pt`` to the same weights),
   stopping at fixed step marks to measure the learning curve: the validation MAE of the model's
   restoration and, for the DDPM, of DDPM-avg (the mean of ``CURVE_SAMPLES`` DDIM-10 samples: the
   ancestral sampler's 200 steps per sample are too dear to repeat at every mark on a CPU);
3. scores the finished models on the test split with ``teachdiff reproduce``'s pipeline (every
   model, DDPM-avg, the Gaussian filter and non-local means; medians of MAE, PSNR, MS-SSIM) under
   every post-processing mode;
4. writes a released copy of each best checkpoint to ``src/teachdiff/weights/`` and its entry to
   the manifest (with what the protocol gave it: steps, batch, images seen, learning rate and its
   sweep, wall time, best step, flags), and the curves and tables to ``benchmarks/results/zoo/``.

Runs are never lengthened: a curve that still fell over its last quarter, or whose best
checkpoint lies in its first quarter, is released with a flag (``protocol.run_flags``). Two
processes may build at once if they train different models (``--models``); each run folder is
locked by the trainer.
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
from teachdiff.training import protocol
from teachdiff.store import zoo
from teachdiff.training.protocol import curve_key, plateau
from teachdiff.training.config import TrainConfig
from teachdiff.store.checkpoint import load_checkpoint
from teachdiff.store.resolve import load_method
from teachdiff.training.loop import train

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "zoo"
DATASETS = ("synthetic-microtubules", "synthetic-zebrafish", "synthetic-mitochondria", "synthetic-synapses")
MODELS = ("ddpm", "care", "n2v", "pix2pix", "rcan")
SWEEP_DATASET = DATASETS[0]
REAL_DATASETS = ("hagen",)  # real pairs: trained from scratch and fine-tuned from a synthetic zoo family
FINETUNE_FROM = {"hagen": "synthetic-mitochondria"}
CURVE_SAMPLES = 8  # DDIM-10 samples averaged for the DDPM-avg learning curve
CURVE_IMAGES = protocol.VAL_IMAGES  # validation patches of every curve point
N2V_MASK_DRAWS = 32  # blind-spot masks averaged for Noise2Void's own validation loss (~4000 pixels)


def command(dataset: str, model: str, lr: float, init: str | None = None) -> str:
    """The command that trains a zoo model, and the ``teachdiff train`` it amounts to (``init``: fine-tuned from it)."""
    cfg, _, _ = protocol.recipe(dataset, model, lr=lr)
    return (f"python benchmarks/zoo/build_quick_zoo.py --datasets {dataset} --models {model}"
            f"{' --finetune' if init else ''}  "
            f"# = teachdiff train --dataset {dataset} --model {model} --preset quick --epochs {cfg.epochs} "
            f"--steps-per-epoch {cfg.steps_per_epoch} --lr {cfg.lr:.3g} --ema {cfg.ema_decay} --random-crops "
            f"--seed {cfg.seed}" + (f" --init {init}" if init else ""))


def _val_curve_point(run: Path, dataset: str, model: str, cfg: TrainConfig) -> dict:
    """Validation MAE of the weights in ``run/last.pt`` (and of DDPM-avg for the DDPM)."""
    from teachdiff.data import make_datasets
    from teachdiff.inference.sampling import sample_tiled

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


def sweep_folder(runs: Path, dataset: str, model: str) -> Path:
    return runs / dataset / "sweep" / model


def learning_rate(dataset: str, model: str, runs: Path, progress: bool, scale: float = 1.0,
                  every_dataset: bool = False) -> tuple[float, dict[float, float]]:
    """The protocol's learning rate for ``model`` and the sweep behind it ``{lr: best value}``:
    each of ``protocol.LR_FACTORS`` x the preset's rate trained on ``protocol.SWEEP_FRACTION`` of the
    budget (resumable), on ``dataset`` with ``every_dataset``, else on ``SWEEP_DATASET``."""
    where = dataset if every_dataset else SWEEP_DATASET
    base = protocol.recipe(where, model)[0].lr
    curves = {}
    for factor in protocol.LR_FACTORS:
        lr = float(f"{base * factor:.3g}")
        cfg, method_cfg, marks = protocol.recipe(where, model, lr=lr, fraction=protocol.SWEEP_FRACTION, scale=scale)
        run = sweep_folder(runs, where, model) / f"lr{lr:g}"
        curves[lr] = json.loads((train_marks(run, cfg, method_cfg, marks, progress) / "curve.json").read_text())
    chosen = protocol.choose_lr(curves, model)
    key = curve_key(model)
    return chosen, {lr: min(p[key] for p in curve) for lr, curve in curves.items()}


def train_model(dataset: str, model: str, runs: Path, progress: bool, scale: float = 1.0,
                every_dataset: bool = False, finetune: bool = False) -> Path:
    """The protocol's run of one zoo model (its sweep first); returns the run folder. Resumable.

    ``finetune``: start from the zoo's model of ``FINETUNE_FROM[dataset]`` (``teachdiff train
    --init``: its architecture and weights, the swept rate x ``FINETUNE_LR_FACTOR``) instead of from
    scratch, with the same budget, in ``models/<model>-finetuned``."""
    from teachdiff.training.config import finetune_config

    lr, sweep = learning_rate(dataset, model, runs, progress, scale, every_dataset)
    cfg, method_cfg, marks = protocol.recipe(dataset, model, lr=lr, scale=scale)
    init = None
    if finetune:
        init = f"{FINETUNE_FROM[dataset]}-{model}-quick"
        cfg = finetune_config(cfg, init)
    run = runs / dataset / "models" / (f"{model}-finetuned" if finetune else model)
    train_marks(run, cfg, method_cfg, marks, progress)
    record = {"lr": cfg.lr, "lr_sweep": {f"{k:g}": float(f"{v:.4g}") for k, v in sweep.items()},
              "sweep_dataset": dataset if every_dataset else SWEEP_DATASET, "sweep_key": curve_key(model)}
    if init is not None:
        record.update(init=init, init_sha256=zoo.get(init).sha256)
    (run / "protocol.json").write_text(json.dumps(record, indent=1))
    return run


def train_marks(run: Path, cfg: TrainConfig, method_cfg, marks: list[int], progress: bool) -> Path:
    """Train (or resume) ``cfg`` in ``run``, stopping at each mark to add a point to ``run/curve.json``."""
    dataset, model = cfg.dataset, cfg.model
    curve_file = run / "curve.json"
    curve = json.loads(curve_file.read_text()) if curve_file.exists() else []
    done_steps = {p["step"] for p in curve}
    if curve and max(done_steps) >= marks[-1]:  # finished (perhaps unpacked without its checkpoints)
        return run
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


POSTPROCESSING = ("none", "all", "paper")  # every table the zoo records (teachdiff.evaluation.metrics.POSTPROCESSING)
TEST_IMAGES = 16
SCORED_SAMPLES = 15  # DDIM-10 samples averaged for the test tables' DDPM-avg
REAL_TABLE_MODELS = ("care", "n2v", "pix2pix", "rcan")
"""The models a real dataset's test table scores (``real_data_table``). Not the DDPM yet: its
DDPM-avg on every test patch of 192² (544 tiles of 64²) takes about 1.5 h per model on two CPU
cores, five models with the zero-shot ones; chapter 14 scores the real-trained DDPM on crops."""


def score_dataset(dataset: str, runs: Path, progress: bool) -> dict[str, list[dict]]:
    """The comparison tables (one per post-processing mode) of the trained models on the test split
    (reproduce's pipeline), kept in ``runs/<dataset>/zoo_tables.json`` until a model is trained further."""
    from teachdiff.evaluation.reproduce import ReproduceConfig, reproduce

    cached = runs / dataset / "zoo_tables.json"
    newest = max((runs / dataset / "models" / m / "last.pt").stat().st_mtime for m in MODELS)
    if cached.exists() and cached.stat().st_mtime > newest:
        return json.loads(cached.read_text())
    cfg = dataclasses.replace(ReproduceConfig.preset_for(dataset, "quick"), n_avg=SCORED_SAMPLES,
                              test_images=TEST_IMAGES, use_zoo=False, postprocessing=POSTPROCESSING)
    tables = reproduce(cfg, runs / dataset, progress=progress)["tables"]
    cached.write_text(json.dumps(tables, indent=1, default=float))
    return tables


HALF_PRECISION = ("pix2pix",)
"""Models released with float16 weights (``zoo.released_weights(half=True)``, loaded back into
float32): pix2pix's generator has 1.8 M parameters, 70 % of the bundle in float32. Their test
scores are measured again with the rounded weights (:func:`rescore_half`)."""


def _read_scores(path: Path) -> list[dict]:
    text = ("postprocessing", "method")
    with open(path, newline="") as fh:
        return [{k: v if k in text else int(v) if k == "image" else float(v) for k, v in r.items()}
                for r in csv.DictReader(fh)]


def rescore_half(dataset: str, runs: Path, tables: dict[str, list[dict]], progress: bool) -> dict[str, list[dict]]:
    """The test tables with the ``HALF_PRECISION`` models scored as released: their per-image rows
    of ``runs/<dataset>/scores.csv`` replaced by reproduce's on a copy of the run whose weights are
    rounded to float16 (every mode), and the tables rebuilt from all rows (the tests against
    DDPM-avg included)."""
    from teachdiff.evaluation.evaluate import write_scores_csv
    from teachdiff.evaluation.reproduce import ReproduceConfig, _median_table, reproduce
    from teachdiff.store.checkpoint import atomic_write

    todo = [m for m in HALF_PRECISION
            if not any(r["method"] == m and r.get("weights_dtype") == "float16" for t in tables.values() for r in t)]
    if not todo:
        return tables
    scores = runs / dataset / "scores.csv"
    rows = _read_scores(scores)
    for model in todo:
        half_run = runs / dataset / "released-half"
        (half_run / "models" / model).mkdir(parents=True, exist_ok=True)
        state = zoo.released_weights(runs / dataset / "models" / model / "best.pt", half=True)
        state["finished"] = True  # a finished run: train_or_load loads its best.pt instead of training
        for name in ("best.pt", "last.pt"):
            atomic_write(half_run / "models" / model / name, lambda tmp: torch.save(state, tmp))
        cfg = dataclasses.replace(ReproduceConfig.preset_for(dataset, "quick"), n_avg=SCORED_SAMPLES,
                                  test_images=TEST_IMAGES, use_zoo=False, models=(model,), classical=False,
                                  postprocessing=POSTPROCESSING)
        rescored = iter(r for r in reproduce(cfg, half_run, progress=progress)["rows"] if r["method"] == model)
        rows = [next(rescored) if r["method"] == model else r for r in rows]  # same modes, images, order
    write_scores_csv(scores, rows)
    tables = {mode: _median_table([r for r in rows if r["postprocessing"] == mode], dataset) for mode in POSTPROCESSING}
    for row in (r for t in tables.values() for r in t):
        if row["method"] in HALF_PRECISION:
            row["weights_dtype"] = "float16"
    (runs / dataset / "zoo_tables.json").write_text(json.dumps(tables, indent=1, default=float))
    return tables


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def training_record(dataset: str, model: str, runs: Path, finetuned: bool = False) -> dict:
    """What the protocol gave one model: steps, batch, images seen, learning rate and its sweep,
    EMA, crops, wall time, the best step and the flags (``protocol.run_flags``); for a fine-tuned
    run also the zoo model it started from."""
    run = runs / dataset / "models" / run_name(model, finetuned)
    record = json.loads((run / "protocol.json").read_text())
    cfg, _, _ = protocol.recipe(dataset, model, lr=record["lr"])
    history = load_checkpoint(run / "last.pt")["history"]
    curve = json.loads((run / "curve.json").read_text())
    return {"protocol": "teachdiff.training.protocol", "steps": cfg.epochs * cfg.steps_per_epoch, "batch": cfg.batch_size,
            "images_seen": protocol.images_seen(cfg), "lr": record["lr"], "lr_sweep": record["lr_sweep"],
            "sweep_dataset": record["sweep_dataset"], "sweep_key": record["sweep_key"], "ema": cfg.ema_decay,
            "random_crops": cfg.random_crops, "wall_seconds": round(sum(r.get("seconds", 0.0) for r in history), 1),
            "best_step": protocol.best_step(history, model), "flags": protocol.run_flags(curve, history, model),
            **({"init": record["init"], "init_sha256": record["init_sha256"]} if "init" in record else {})}


def run_name(model: str, finetuned: bool = False) -> str:
    """The run folder (under ``models/``) of a model trained from scratch or fine-tuned."""
    return f"{model}-finetuned" if finetuned else model


def finetune_label(dataset: str, model: str) -> str:
    """How the real-data tables (``real_data_table``) name a fine-tuned model."""
    return f"{model} fine-tuned from {FINETUNE_FROM[dataset].removeprefix('synthetic-')}"


def release(dataset: str, model: str, runs: Path, tables: dict[str, list[dict]],
            finetuned: bool = False) -> zoo.ZooEntry:
    from teachdiff.store import datacard

    run = runs / dataset / "models" / run_name(model, finetuned)
    training = training_record(dataset, model, runs, finetuned)
    best = run / ("last.pt" if model == "n2v" else "best.pt")
    state = load_checkpoint(best)
    name = f"{dataset}-{run_name(model, finetuned)}-quick"
    rows = {r["method"]: r for r in tables["none"]}
    keys = ("mae", "psnr", "ms_ssim")
    row = rows.get(finetune_label(dataset, model) if finetuned else model)
    if row is None:  # a model the real-data table does not score yet (REAL_TABLE_MODELS)
        scores = {}
    elif finetuned:  # scored as restore uses it: a fine-tuned DDPM's row is its DDPM-avg
        prefix = "avg_" if model == "ddpm" else ""
        scores = {f"{prefix}{k}": round(row[k], 4) for k in keys}
    else:
        scores = {k: round(row[k], 4) for k in keys}
    if model == "ddpm" and not finetuned and row is not None:
        scores.update({f"avg_{k}": round(rows["ddpm-avg"][k], 4) for k in keys})
    if dataset in REAL_DATASETS and not scores:
        protocol_note = (f"not yet scored on the test split of the real {dataset} pairs (the DDPM's DDPM-avg "
                         "on every test patch needs hours of CPU); chapter 14 scores it on the central 96² of "
                         "each test crop")
    elif dataset in REAL_DATASETS:
        protocol_note = (f"teachdiff reproduce quick on every test patch of the real {dataset} pairs (192², "
                         "regions never trained on); scores without rescaling (post-processing none, what "
                         "teachdiff restore gives)")
        if finetuned:
            protocol_note += f"; fine-tuned from {training['init']} (sha256 {training['init_sha256'][:12]})"
    else:
        protocol_note = (f"teachdiff reproduce quick: {TEST_IMAGES} test patches of 192², DDPM-avg of "
                         f"{SCORED_SAMPLES} DDIM-10; scores without rescaling (post-processing none, what "
                         "teachdiff restore gives)")
    meta = {"name": name, "protocol": protocol_note}
    notes = protocol_note
    if model == "ddpm":
        notes += f". Configuration: {study_summary(runs)}"
    if model in HALF_PRECISION:
        notes += ". Weights stored in float16 (loaded into float32) to halve the file; scored as stored"
    if training["flags"]:
        notes += ". Flagged: " + "; ".join(training["flags"])
    file = f"{name}.pt"
    sha, size = zoo.export_checkpoint(best, zoo.BUNDLED_DIR / file, meta, half=model in HALF_PRECISION)
    return zoo.ZooEntry(
        name=name, dataset=dataset, model=model, preset="quick", config=state["method_config"], sha256=sha,
        size=size, file=file, bundled=True,
        url=f"https://github.com/teachdiff/teachdiff/raw/main/src/teachdiff/weights/{file}",
        command=command(dataset, model, training["lr"], training.get("init")), seed=protocol.recipe(dataset, model)[0].seed,
        train_seconds=training["wall_seconds"], machine=machine(), steps=state["step"], scores=scores, notes=notes,
        training=training, data_card=datacard.for_checkpoint(state))


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


def _cell(row: dict) -> str:
    return f"{row['mae']:.2f} [{row['mae_low']:.2f}, {row['mae_high']:.2f}]"


def _p_cell(row: dict) -> str:
    from teachdiff.evaluation.reproduce import _p

    return "" if "mae_wilcoxon_p" not in row else f"{_p(row['mae_wilcoxon_p'])} ({row['mae_vs_ddpm_avg']})"


def write_results(dataset: str, runs: Path, tables: dict[str, list[dict]], models: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    lines = [f"# {dataset}: learning curves and test tables of the quick zoo", "",
             f"Every model trained by `teachdiff.training.protocol` ({protocol.IMAGES:,} training images, random crops, EMA "
             f"{protocol.EMA_DECAY}, learning rate by the sweep). Validation MAE: median over {CURVE_IMAGES} "
             f"patches of 64², 0..255 scale; DDPM-avg = mean of {CURVE_SAMPLES} DDIM-10 samples. Machine: "
             f"{machine()}.", "",
             "Gain and flatness are those of the validation MAE, except for Noise2Void: of its blind-spot loss on "
             "the validation inputs, which needs no ground truth (its MAE is reported only).", "",
             "| model | steps x batch | images | lr (sweep: best value) | train s | best val MAE | best step | "
             "gain in last quarter | flags |", "|---|---|---|---|---|---|---|---|---|"]
    for model in models:
        run = runs / dataset / "models" / model
        curve = json.loads((run / "curve.json").read_text())
        record = training_record(dataset, model, runs)
        _, gain = plateau(curve, curve_key(model))
        label = "DDPM-avg" if model == "ddpm" else model
        ax.plot([p["step"] for p in curve], [p["val_mae"] for p in curve], marker="o", label=label)
        if model == "ddpm":
            ax.plot([p["step"] for p in curve], [p["val_mae_single"] for p in curve], marker=".", ls="--",
                    label="DDPM (1 sample)")
        sweep = ", ".join(f"{lr}: {v:.4g}" for lr, v in record["lr_sweep"].items())
        lines.append(f"| {label} | {record['steps']} x {record['batch']} | {record['images_seen']:,} | "
                     f"{record['lr']:g} ({sweep}) | {record['wall_seconds']:.0f} | "
                     f"{min(p['val_mae'] for p in curve):.3f} | {record['best_step']} | {100 * gain:.1f} % | "
                     f"{'; '.join(record['flags']) or '-'} |")
    ax.axhline(curve[0]["val_mae_input"], color="gray", ls=":", label="raw input")
    ax.set(xlabel="optimizer steps", ylabel="validation MAE", title=dataset)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{dataset}_curves.png", dpi=90)
    plt.close(fig)
    for mode in POSTPROCESSING:
        lines += ["", f"## Test split, post-processing `{mode}` (reproduce's pipeline, medians)", "",
                  "| method | MAE [95 % CI] | PSNR | MS-SSIM | Wilcoxon p vs DDPM-avg (Mood) |", "|---|---|---|---|---|"]
        lines += [f"| {r['method']} | {_cell(r)} | {r['psnr']:.2f} | {r['ms_ssim']:.3f} | {_p_cell(r)} |"
                  for r in tables[mode]]
    (RESULTS / f"{dataset}.md").write_text("\n".join(lines) + "\n")


COMPARISON_WHY = """\
- **Why the DDPM may not win here:** the quick DDPM is a 0.29 M-parameter U-Net trained on 64²
  patches; the paper's is 64 M parameters on 256² patches. The DDPM has to learn the whole
  conditional distribution, a regression model only its median or mean; with a network this
  small and this little training, the direct regression is the easier target. Whether the
  paper's order returns with the paper's network is what the GPU zoo
  (`benchmarks/zoo/train_paper_zoo.py`) will show.
- **Pseudo-replication:** the 16 test patches here are 16 distinct simulated fields. The paper's
  zebrafish test set, "200 (4)" in Table S1, is 4 sub-FOVs x 50 noise realisations of the same
  targets: its p-values treat 200 images as independent when there are 4 fields, and overstate
  the evidence.
- **Not significant is not equivalent:** a p-value above 0.05 says the test could not tell two
  methods apart on these patches, not that they are equally good."""


def write_comparison(runs: Path) -> None:
    """``comparison.md``: every dataset's test tables side by side under each post-processing mode,
    with bootstrap CIs and the paired test against DDPM-avg, generated sentences, and the protocol."""
    from teachdiff.evaluation.reproduce import LABELS as REPRODUCE_LABELS
    from teachdiff.evaluation.reproduce import describe_table, ranking

    labels = {**REPRODUCE_LABELS, "raw": "raw input", "ddpm": "DDPM (1 sample)", "pix2pix": "pix2pix"}
    tables = {d: json.loads((runs / d / "zoo_tables.json").read_text())
              for d in DATASETS if (runs / d / "zoo_tables.json").exists()}
    if not tables:
        return
    names = [d.removeprefix("synthetic-") for d in tables]
    records = {d: {m: training_record(d, m, runs) for m in MODELS} for d in tables}
    lines = ["# Quick zoo: the comparison, four synthetic datasets", "",
             f"Every model trained by one protocol (`teachdiff.training.protocol`): {protocol.IMAGES:,} training images "
             f"each, the same random crops and augmentation, EMA {protocol.EMA_DECAY}, the learning rate chosen by "
             f"the same sweep (x{', x'.join(f'{f:.3g}' for f in protocol.LR_FACTORS)} of the preset's, "
             f"{protocol.SWEEP_FRACTION:.0%} of the budget each, on {SWEEP_DATASET}'s validation split), the "
             "checkpoint with the best validation MAE (Noise2Void: its last weights). Scored by `teachdiff "
             f"reproduce`'s pipeline on {TEST_IMAGES} test patches of 192² (0..255 scale; DDPM-avg: mean of "
             f"{SCORED_SAMPLES} DDIM-10 samples), re-aligned to the GT (§4.1) for the registered datasets "
             "(microtubules, synapses). LPIPS is n/a on this machine (no torchvision / AlexNet weights). "
             f"Machine: {machine()}.", "",
             "Each cell: median MAE [bootstrap 95 % CI]. Three post-processings: `none` (every output only "
             "clipped), `all` (every output, DDPM-avg and the raw input included, mapped onto the GT training "
             "distribution by its own mean/std fit) and `paper` (§3.6: only CARE, Noise2Void, UNet-RCAN and the "
             "filters get that fit).", ""]
    for mode in POSTPROCESSING:
        lines += [f"## Post-processing `{mode}`", "", "| method | " + " | ".join(names) + " |",
                  "|---|" + "---|" * len(names)]
        methods = [r["method"] for r in next(iter(tables.values()))[mode]]
        for m in methods:
            cells = [_cell(next(r for r in t[mode] if r["method"] == m)) for t in tables.values()]
            lines.append(f"| {labels.get(m, m)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Against DDPM-avg, dataset by dataset", "",
              "Wilcoxon signed-rank p of the per-patch MAE differences (paired: every method is scored on the same "
              "patches), with Mood's median test (unpaired, as the paper) in brackets.", ""]
    for d, t in tables.items():
        lines += [f"### {d}", "", "| method | " + " | ".join(f"MAE {m} | p {m}" for m in POSTPROCESSING) + " |",
                  "|---|" + "---|---|" * len(POSTPROCESSING)]
        for m in [r["method"] for r in t["none"]]:
            rows = {mode: next(r for r in t[mode] if r["method"] == m) for mode in POSTPROCESSING}
            lines.append(f"| {labels.get(m, m)} | " + " | ".join(f"{_cell(rows[mode])} | {_p_cell(rows[mode]) or '-'}"
                                                                  for mode in POSTPROCESSING) + " |")
        lines.append("")
        for mode in POSTPROCESSING:
            lines.append(f"- `{mode}`: {describe_table(t[mode], metrics_shown=('mae', 'psnr', 'ms_ssim'))}")
        lines.append("")
    lines += ["## How the order changes with the post-processing", ""]
    for d, t in tables.items():
        orders = {mode: ranking(t[mode], "mae") for mode in POSTPROCESSING}
        lines.append(f"- {d}: " + "; ".join(f"`{mode}`: " + " < ".join(labels.get(m, m) for m in order)
                                          for mode, order in orders.items()) + ".")
    wins = {mode: [d.removeprefix("synthetic-") for d, t in tables.items() if ranking(t[mode], "mae")[0] == "ddpm-avg"]
            for mode in POSTPROCESSING}
    lines += ["", "DDPM-avg has the lowest median MAE on " + "; ".join(
        f"{len(w)} of {len(tables)} datasets under `{mode}`" + (f" ({', '.join(w)})" if w else "")
        for mode, w in wins.items()) + ".", ""]
    lines += ["## What each model got", "", "| dataset | model | images seen | lr | best step / steps | train s | flags |",
              "|---|---|---|---|---|---|---|"]
    for d, per_model in records.items():
        for m, r in per_model.items():
            lines.append(f"| {d.removeprefix('synthetic-')} | {m} | {r['images_seen']:,} | {r['lr']:g} | "
                         f"{r['best_step']} / {r['steps']} | {r['wall_seconds']:.0f} | {'; '.join(r['flags']) or '-'} |")
    seen = {r["images_seen"] for per_model in records.values() for r in per_model.values()}
    lines += ["", f"Images seen: {', '.join(f'{v:,}' for v in sorted(seen))} for every model"
              + (" (equal)." if len(seen) == 1 else " (they differ: see the table)."), "",
              "## Reading it", "", COMPARISON_WHY, ""]
    (RESULTS / "comparison.md").write_text("\n".join(lines))


def real_data_table(dataset: str, runs: Path, progress: bool) -> dict[str, list[dict]]:
    """The test tables of a real dataset (every test patch): the models trained on it from scratch,
    the fine-tuned ones, and every synthetic zoo model zero-shot (trained on simulated data only),
    under ``none`` and ``all``; kept in ``runs/<dataset>/real_tables.json``."""
    from teachdiff.evaluation.reproduce import ReproduceConfig, reproduce

    cached = runs / dataset / "real_tables.json"
    trained = [m for m in REAL_TABLE_MODELS if (runs / dataset / "models" / m / "protocol.json").exists()]
    finetuned = [m for m in REAL_TABLE_MODELS
                 if (runs / dataset / "models" / f"{m}-finetuned" / "protocol.json").exists()]
    runs_used = [runs / dataset / "models" / m / "last.pt" for m in trained] + \
                [runs / dataset / "models" / f"{m}-finetuned" / "last.pt" for m in finetuned]
    if cached.exists() and all(cached.stat().st_mtime > p.stat().st_mtime for p in runs_used):
        return json.loads(cached.read_text())
    extra = tuple((finetune_label(dataset, m), str(runs / dataset / "models" / run_name(m, True))) for m in finetuned)
    extra += tuple((f"{m} zero-shot from {d.removeprefix('synthetic-')}", f"{d}-{m}-quick")
                   for d in DATASETS for m in REAL_TABLE_MODELS)
    cfg = dataclasses.replace(ReproduceConfig.preset_for(dataset, "quick"), models=tuple(trained), extra=extra,
                              test_images=None, test_subset=False, use_zoo=False,
                              postprocessing=("none", "all"))
    tables = reproduce(cfg, runs / dataset, progress=progress)["tables"]
    cached.write_text(json.dumps(tables, indent=1, default=float))
    return tables


def write_real_results(dataset: str, runs: Path, tables: dict[str, list[dict]]) -> None:
    """``<dataset>.md`` of a real dataset: what each model trained on it got, and the test tables
    (every test patch) of those models beside every synthetic zoo model zero-shot."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [f"# {dataset}: real pairs, models trained on them and the synthetic zoo zero-shot", "",
             f"Trained by `teachdiff.training.protocol` ({protocol.IMAGES:,} training images, random crops, EMA "
             f"{protocol.EMA_DECAY}, the learning rate of the shared sweep), from scratch and fine-tuned from "
             f"the zoo's {FINETUNE_FROM[dataset]} model (`--finetune`, the same budget). Zero-shot: the "
             "synthetic zoo's models as released, never trained on real data. Test: every test patch (192²) of the "
             f"dataset's test regions, which no model was trained or validated on. Not scored here yet: the "
             "DDPMs (`REAL_TABLE_MODELS`: hours of CPU each; chapter 14 scores the real-trained one on crops). "
             f"Machine: {machine()}.", "",
             "| model | images | lr | train s | best step / steps | flags |", "|---|---|---|---|---|---|"]
    for model in MODELS:
        for finetuned in (False, True):
            if not (runs / dataset / "models" / run_name(model, finetuned) / "protocol.json").exists():
                continue
            r = training_record(dataset, model, runs, finetuned)
            label = finetune_label(dataset, model) if finetuned else f"{model} from scratch"
            lines.append(f"| {label} | {r['images_seen']:,} | {r['lr']:g} | {r['wall_seconds']:.0f} | "
                         f"{r['best_step']} / {r['steps']} | {'; '.join(r['flags']) or '-'} |")
    for mode, rows in tables.items():
        has_avg = any(r["method"] == "ddpm-avg" for r in rows)
        lines += ["", f"## Test regions, post-processing `{mode}` (medians, ranked by MAE)", "",
                  "| method | MAE [95 % CI] | PSNR | MS-SSIM |" + (" Wilcoxon p vs DDPM-avg (Mood) |" if has_avg else ""),
                  "|---|---|---|---|" + ("---|" if has_avg else "")]
        for r in sorted(rows, key=lambda r: r["mae"]):
            lines.append(f"| {r['method']} | {_cell(r)} | {r['psnr']:.2f} | {r['ms_ssim']:.3f} |"
                         + (f" {_p_cell(r)} |" if has_avg else ""))
    (RESULTS / f"{dataset}.md").write_text("\n".join(lines) + "\n")


def score_real(dataset: str, runs: Path, progress: bool, release_models: bool) -> None:
    """Score a real dataset's trained and fine-tuned models (``real_data_table``), write their
    results and, with ``release_models``, release every finished one to the zoo."""
    tables = real_data_table(dataset, runs, progress)
    write_real_results(dataset, runs, tables)
    if not release_models:
        return
    released = {e.name: e for e in zoo.read_manifest()}
    for model in MODELS:
        for finetuned in (False, True):
            last = runs / dataset / "models" / run_name(model, finetuned) / "last.pt"
            if (last.parent / "protocol.json").exists() and load_checkpoint(last).get("finished"):
                entry = release(dataset, model, runs, tables, finetuned)
                released[entry.name] = entry
    zoo.write_manifest(list(released.values()))


PROGRESS = ROOT / "benchmarks" / "zoo" / "progress"


def pack(runs: Path, dest: Path = PROGRESS) -> int:
    """Keep what a later session needs to continue the build without training again: of every
    finished run its curve, protocol record and log, plus its best and last weights as a release
    stores them (``zoo.released_weights``: no optimizer state); of every finished sweep run its
    curve. Unfinished runs are not kept (a later session trains them again). Returns the bytes kept."""
    import shutil

    for curve_file in sorted(runs.glob("*/*/*/**/curve.json")):
        run = curve_file.parent
        last = run / "last.pt"
        if not last.exists() or not load_checkpoint(last).get("finished"):
            continue
        target = dest / run.relative_to(runs)
        target.mkdir(parents=True, exist_ok=True)
        for name in ("curve.json", "protocol.json", "log.json"):
            if (run / name).exists():
                shutil.copy2(run / name, target / name)
        if "sweep" in run.relative_to(runs).parts:
            continue
        model = run.name.removesuffix("-finetuned")
        history = load_checkpoint(last)["history"]
        for name in ("best.pt", "last.pt"):
            state = zoo.released_weights(run / name, half=model in HALF_PRECISION)
            state.update(history=history, finished=True)
            torch.save(state, target / name)
    return sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())


def unpack(runs: Path, source: Path = PROGRESS) -> None:
    """Copy a packed build (:func:`pack`) into ``runs``, leaving runs that are already there alone."""
    import shutil

    for curve_file in sorted(source.rglob("curve.json")):
        target = runs / curve_file.parent.relative_to(source)
        if (target / "curve.json").exists():
            continue
        shutil.copytree(curve_file.parent, target, dirs_exist_ok=True)


def finished_models(dataset: str, runs: Path) -> list[str]:
    return [m for m in MODELS if (runs / dataset / "models" / m / "protocol.json").exists()
            and load_checkpoint(runs / dataset / "models" / m / "last.pt").get("finished")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS + REAL_DATASETS)
    parser.add_argument("--finetune", action="store_true",
                        help="train from the zoo model of FINETUNE_FROM[dataset] instead of from scratch (real data)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--stage", default="all", choices=["train", "score", "all"],
                        help="train: only train; score: only score, write and release datasets whose five "
                             "models are trained; all: both")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "zoo", help="training runs (resumable)")
    parser.add_argument("--sweep-every-dataset", action="store_true",
                        help=f"sweep the learning rate on every dataset (default: once, on {SWEEP_DATASET})")
    parser.add_argument("--no-release", action="store_true", help="train and score, but leave the manifest as is")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--scale", type=float, default=1.0, help="shorten every run by this factor (smoke test)")
    parser.add_argument("--pack", action="store_true",
                        help=f"keep the finished runs in {PROGRESS.relative_to(ROOT)} (to commit) and stop")
    parser.add_argument("--unpack", action="store_true",
                        help=f"start from the runs kept in {PROGRESS.relative_to(ROOT)} (a build begun earlier)")
    args = parser.parse_args(argv)
    if args.pack:
        print(f"kept {pack(args.runs) / 1e6:.1f} MB in {PROGRESS}")
        return 0
    if args.unpack:
        unpack(args.runs)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    progress = not args.no_progress
    for dataset in args.datasets:
        start = time.monotonic()
        if args.stage in ("train", "all"):
            for model in args.models:
                train_model(dataset, model, args.runs, progress, args.scale, args.sweep_every_dataset, args.finetune)
        if args.stage == "train":
            continue
        if dataset in REAL_DATASETS:
            score_real(dataset, args.runs, progress, not args.no_release and args.scale == 1.0)
            continue
        done = finished_models(dataset, args.runs)
        if set(done) != set(MODELS):
            print(f"{dataset}: trained {done}; the test table needs all of {MODELS}", flush=True)
            continue
        table = rescore_half(dataset, args.runs, score_dataset(dataset, args.runs, progress), progress)
        write_results(dataset, args.runs, table, list(MODELS))
        if not args.no_release and args.scale == 1.0:
            released = {e.name: e for e in zoo.read_manifest()}
            for model in MODELS:
                entry = release(dataset, model, args.runs, table)
                released[entry.name] = entry
            zoo.write_manifest(list(released.values()))
        print(f"{dataset}: done in {time.monotonic() - start:.0f} s", flush=True)
    if args.stage != "train":
        write_comparison(args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
