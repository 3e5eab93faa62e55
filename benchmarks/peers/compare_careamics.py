"""teachdiff against CAREamics, side by side on the same folder with the same settings (issue 29).

What it does (each step skips what is already there, so a run can be resumed):

1. **data**: ``WORK/data/{train,val,test}/{raw,gt}/*.tif``, 8-bit simulated microtubule pairs
   (:func:`teachdiff.data.synthetic.simulate_pair`): 28 training images of 256² (448 patches of
   64²), 2 validation images of 256², 10 held-out test images of 512²;
2. **venv**: CAREamics 0.3.5 in a venv of its own (``--venv``, default ``WORK/careamics-venv``).
   It cannot share teachdiff's: it needs torchvision <= 0.26, hence torch 2.11, and PyPI's Linux
   torch 2.11 brings about 5 GB of CUDA wheels. Nothing is installed into teachdiff's environment.
   The free disk space is checked first; pip's cache goes to ``--pip-cache`` (default under /tmp);
3. **train and predict**: both tools at once, one core and one thread each (``taskset``),
   ``careamics_side.py`` under CAREamics' Python and this file's ``teachdiff-side`` under
   teachdiff's. Same settings (``SETTINGS``): U-Net depth 2 with 32 filters, mean/std
   normalisation from the training inputs, batch 16, Adam at a constant 4e-4, 336 steps (12
   epochs of 448 patches), 64² random crops, flips and 90° rotations only, the last weights; test
   images predicted whole and in 256² tiles;
4. **score**: one metric code for both (MAE, PSNR with L = 255 and SSIM of scikit-image with
   data_range 255, on the grey levels as predicted, no rescaling; and MAE after the least-squares
   affine map of each prediction onto its GT), throughput, inference time, and the agreement of
   tiled with whole-image prediction; written to ``benchmarks/results/careamics.md``;
5. **seeds** (``--seeds 0 1 2``): steps 3 and 4 again for each further seed (``WORK/seed<k>``), and a
   table of the accuracy columns over the seeds (mean and standard deviation), so that a difference
   between the tools can be read against what a seed alone moves.

Usage (from the repository root, with teachdiff's Python; never imported by the test suite):
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/peers/compare_careamics.py --work /tmp/peers
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results" / "careamics.md"
CAREAMICS = "careamics==0.3.5"
MIN_FREE_GB = 12  # the venv with torch 2.11's CUDA wheels needs about 7 GB, the pip cache as much again

SETTINGS = dict(patch=64, batch=16, depth=2, filters=32, lr=4e-4, epochs=12, seed=0, tile=256,
                tile_overlap=48, models=["n2v", "care"], n_train=28, n_val=2, n_test=10, train_size=256,
                test_size=512)


def make_data(folder: Path) -> None:
    """The image pairs, from seeds that no other teachdiff split uses."""
    from teachdiff.data.io import write_image
    from teachdiff.data.synthetic import fov_seed, simulate_pair

    if (folder / "test" / "gt").is_dir():
        return
    counts = {"train": (SETTINGS["n_train"], SETTINGS["train_size"]), "val": (SETTINGS["n_val"], SETTINGS["train_size"]),
              "test": (SETTINGS["n_test"], SETTINGS["test_size"])}
    for s, (split, (n, size)) in enumerate(counts.items()):
        for f in range(n):
            pair = simulate_pair("microtubules", size, fov_seed(29_000 + s, f), 8)
            for kind, image in (("raw", pair.x), ("gt", pair.y)):
                write_image(folder / split / kind / f"{split}_{f:03d}.tif", np.asarray(image, dtype=np.uint8))


def build_venv(venv: Path, pip_cache: Path) -> Path:
    """CAREamics' own venv (created once); returns its Python."""
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import careamics"], capture_output=True).returncode == 0:
        return python
    free_gb = shutil.disk_usage(venv.parent if venv.parent.exists() else Path("/")).free / 2**30
    if free_gb < MIN_FREE_GB:
        sys.exit(f"only {free_gb:.1f} GB free at {venv.parent}; CAREamics' venv needs about {MIN_FREE_GB} GB "
                 "(torch 2.11 with its CUDA wheels). Free space or pass --venv on a larger disk.")
    base = shutil.which("python3.11") or shutil.which("python3") or sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run([python, "-m", "pip", "install", "--cache-dir", str(pip_cache), CAREAMICS], check=True)
    return python


def statistics(folder: Path) -> dict:
    """Mean and standard deviation of the training inputs and targets (grey levels): the one
    normalisation both tools use."""
    from teachdiff.data.io import read_image

    stats = {}
    for kind, key in (("raw", "input"), ("gt", "target")):
        pixels = np.concatenate([read_image(f).astype(np.float64).ravel()
                                 for f in sorted((folder / "train" / kind).glob("*.tif"))])
        stats[f"{key}_mean"], stats[f"{key}_std"] = float(pixels.mean()), float(pixels.std())
    return stats


def teachdiff_side(folder: str, out: str, settings_file: str) -> None:
    """teachdiff's half: the shared trainer on the folder, then whole and tiled prediction. A settings
    file may add ``care_options``, further :class:`CAREConfig` fields (``{"batch_norm": true}``) to try
    another CARE network."""
    import torch

    from teachdiff.methods.care import CAREConfig
    from teachdiff.methods.n2v import N2VConfig
    from teachdiff.data.folder import FolderConfig, make_folder_datasets
    from teachdiff.data.io import read_image
    from teachdiff.data.loaders import Augmentation
    from teachdiff.core.tiling import tiled_apply
    from teachdiff.training.config import TrainConfig
    from teachdiff.store.resolve import load_method
    from teachdiff.training.loop import train

    torch.set_num_threads(1)
    s, out = json.loads(Path(settings_file).read_text()), Path(out)
    data = FolderConfig(path=folder)
    datasets = make_folder_datasets(data, patch_size=s["patch"], seed=s["seed"], progress=False, random_crops=True,
                                    augmentation=Augmentation(blur_probability=0.0))  # flips and rotations only
    steps_per_epoch = len(datasets["train"]) // s["batch"]
    test = sorted((Path(folder) / "test" / "raw").glob("*.tif"))
    for model in s["models"]:
        # A cosine schedule over 10^4 epochs stopped after `epochs`: the rate stays 4e-4 to 1e-5.
        cfg = TrainConfig(model=model, data=data, patch_size=s["patch"], batch_size=s["batch"], lr=s["lr"],
                          epochs=10**4, steps_per_epoch=steps_per_epoch, max_steps=s["epochs"] * steps_per_epoch,
                          grad_clip=None, val_every=10**9, sample_every=0, seed=s["seed"], random_crops=True)
        network = dict(depth=s["depth"], base_filters=s["filters"], kernel_size=3)
        method_config = N2VConfig(**network) if model == "n2v" else CAREConfig(**network, **s.get("care_options", {}))
        start = time.perf_counter()
        train(cfg, method_config, out / f"{model}_run", datasets=datasets, progress=False, force=True)
        timing = {"train_s": time.perf_counter() - start, "steps": cfg.max_steps, "batch": s["batch"]}
        method = load_method(out / f"{model}_run" / "last.pt", use_ema=False)
        normalization = datasets["train"].normalization
        for mode in ("whole", "tiled"):
            (out / f"{model}_{mode}").mkdir(parents=True, exist_ok=True)
            seconds = []
            for path in test:
                x = torch.as_tensor(normalization.input_to_model(read_image(path)[0]))[None, None]
                start = time.perf_counter()
                with torch.no_grad():
                    y = method.restore(x) if mode == "whole" else tiled_apply(
                        method.restore, x, tile=s["tile"], multiple=method.size_multiple, halo=method.halo,
                        progress=False)
                seconds.append(time.perf_counter() - start)
                np.save(out / f"{model}_{mode}" / f"{path.stem}.npy", normalization.from_model(y[0, 0]).numpy())
            timing[f"{mode}_s_per_image"] = float(np.mean(seconds))
        (out / f"{model}_timing.json").write_text(json.dumps(timing, indent=1))
        print(model, json.dumps(timing), flush=True)


def seed_folder(work: Path, seed: int) -> Path:
    """Where the runs of ``seed`` go: ``WORK`` itself for the main seed, ``WORK/seed<k>`` for the others."""
    return work if seed == SETTINGS["seed"] else work / f"seed{seed}"


def run_both(folder: Path, work: Path, careamics_python: Path | None, sequential: bool = False,
             seed: int = SETTINGS["seed"]) -> None:
    """Both tools at the same time, one core each (so neither gets a machine the other lacks); or, with
    ``sequential``, one process at a time on the same core, model by model (teachdiff then CAREamics
    for each model), for a machine whose other cores are busy. ``seed`` seeds both tools' training
    (crops, masks, initialisation); its runs go to :func:`seed_folder`."""
    settings = dict(SETTINGS, seed=seed, **statistics(folder))
    work = seed_folder(work, seed)
    work.mkdir(parents=True, exist_ok=True)
    settings_file = work / "settings.json"
    settings_file.write_text(json.dumps(settings, indent=1))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(HERE.parents[1] / "src"))
    careamics_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    pin = (lambda core: ["taskset", "-c", str(core)]) if shutil.which("taskset") else (lambda core: [])

    def commands(models: list[str], file: Path) -> list[tuple[Path, list[str], dict]]:
        out = [(work / "teachdiff", [sys.executable, __file__, "teachdiff-side", str(folder),
                                     str(work / "teachdiff"), str(file)], env)]
        if careamics_python is not None:
            out.append((work / "careamics", [str(careamics_python), str(HERE / "careamics_side.py"), str(folder),
                                             str(work / "careamics"), str(file)], careamics_env))
        return [(side, command, e) for side, command, e in out
                if not all((side / f"{model}_timing.json").exists() for model in models)]

    if sequential:
        for model in SETTINGS["models"]:
            file = work / f"settings_{model}.json"
            file.write_text(json.dumps(dict(settings, models=[model]), indent=1))
            for side, command, e in commands([model], file):
                if subprocess.run(pin(0) + command, env=e).returncode:
                    sys.exit(f"{side.name} failed on {model}; see its output above.")
        return
    jobs = [subprocess.Popen(pin(core) + command, env=e)
            for core, (side, command, e) in enumerate(commands(SETTINGS["models"], settings_file))]
    if any(job.wait() for job in jobs):
        sys.exit("a side failed; see its output above.")


def affine_mae(pred: np.ndarray, gt: np.ndarray) -> float:
    """MAE after the least-squares map a * pred + b onto the GT (the dose change fitted away)."""
    a, b = np.polyfit(pred.ravel(), gt.ravel(), 1)
    return float(np.abs(a * pred + b - gt).mean())


def load_prediction(folder: Path, name: str) -> np.ndarray:
    if (folder / f"{name}.npy").exists():
        return np.load(folder / f"{name}.npy").astype(np.float64)
    import tifffile

    return np.squeeze(tifffile.imread(folder / f"{name}.tif")).astype(np.float64)


def score(folder: Path, work: Path) -> list[dict]:
    from skimage.metrics import structural_similarity

    from teachdiff.data.io import read_image
    from teachdiff.evaluation.metrics import mae, psnr

    tests = sorted((folder / "test" / "gt").glob("*.tif"))
    gts = [read_image(p)[0].astype(np.float64) for p in tests]
    raws = [read_image(folder / "test" / "raw" / p.name)[0].astype(np.float64) for p in tests]

    def scores(preds):
        ring = np.ones_like(gts[0], dtype=bool)
        ring[8:-8, 8:-8] = False  # the outer 8 pixels
        return {"mae": np.mean([mae(p, g) for p, g in zip(preds, gts)]),
                "psnr": np.mean([psnr(p, g) for p, g in zip(preds, gts)]),
                "ssim": np.mean([structural_similarity(g, p, data_range=255) for p, g in zip(preds, gts)]),
                "mae_affine": np.mean([affine_mae(p, g) for p, g in zip(preds, gts)]),
                "mae_border": np.mean([np.abs(p - g)[ring].mean() for p, g in zip(preds, gts)])}

    rows = [dict(tool="raw input", model="", **scores(raws))]
    for tool in ("teachdiff", "careamics"):
        for model in SETTINGS["models"]:
            timing_file = work / tool / f"{model}_timing.json"
            if not timing_file.exists():
                continue
            timing = json.loads(timing_file.read_text())
            whole = [load_prediction(work / tool / f"{model}_whole", p.stem) for p in tests]
            tiled = [load_prediction(work / tool / f"{model}_tiled", p.stem) for p in tests]
            row = dict(tool=tool, model=model, **scores(whole),
                       patches_per_s=timing["steps"] * timing["batch"] / timing["train_s"],
                       s_per_image=timing["whole_s_per_image"], tiled_s_per_image=timing["tiled_s_per_image"],
                       tiled_vs_whole_max=max(np.abs(t - w).max() for t, w in zip(tiled, whole)),
                       tiled_mae_border=scores(tiled)["mae_border"])
            rows.append(row)
    return rows


ACCURACY = (("mae", "MAE", ".2f"), ("psnr", "PSNR", ".2f"), ("ssim", "SSIM", ".3f"), ("mae_affine", "MAE affine", ".2f"))


def seed_table(folder: Path, work: Path, seeds: list[int]) -> list[str]:
    """The accuracy columns of every tool and model over ``seeds`` (those whose runs exist): mean and
    standard deviation (n - 1) over the seeds, and the per-seed values."""
    per_seed = {seed: score(folder, seed_folder(work, seed)) for seed in seeds}
    lines = [f"| tool | model | seeds | {' | '.join(f'{label} mean ± sd' for _, label, _ in ACCURACY)} | "
             "MAE affine per seed |", "|---|---|---|" + "---|" * (len(ACCURACY) + 1)]
    for tool in ("teachdiff", "careamics"):
        for model in SETTINGS["models"]:
            found = {seed: r for seed, rows in per_seed.items() for r in rows
                     if r["tool"] == tool and r["model"] == model}
            if len(found) < 2:
                continue
            cells = []
            for key, _, fmt in ACCURACY:
                values = np.array([r[key] for r in found.values()])
                cells.append(f"{values.mean():{fmt}} ± {values.std(ddof=1):{fmt}}")
            each = ", ".join(f"{r['mae_affine']:.2f} ({seed})" for seed, r in found.items())
            lines.append(f"| {tool} | {model} | {len(found)} | {' | '.join(cells)} | {each} |")
    return lines


def write_results(rows: list[dict], work: Path, sequential: bool = False, seed_lines: list[str] = ()) -> None:
    import torch

    import teachdiff

    versions = {"teachdiff": teachdiff.__version__, "torch (teachdiff)": torch.__version__}
    lines = [
        "# teachdiff against CAREamics, side by side (issue 29)",
        "",
        f"Run on {date.today().isoformat()} by `benchmarks/peers/compare_careamics.py` (work folder `{work}`): "
        f"{'one process at a time (model by model, teachdiff then CAREamics) on the same core' if sequential else 'both tools at once on one core each'}, "
        "one thread each, on the same files and settings "
        f"({json.dumps({k: v for k, v in SETTINGS.items() if k != 'models'})}; CAREamics {CAREAMICS.split('==')[1]} "
        f"in its own venv; {', '.join(f'{k} {v}' for k, v in versions.items())}). Scores are means over the "
        f"{SETTINGS['n_test']} held-out {SETTINGS['test_size']}² test images of whole-image predictions, in grey "
        "levels as predicted (no rescaling); \"affine\" is the MAE after the least-squares map of each prediction "
        "onto its GT (the dose change, which Noise2Void cannot learn, fitted away). Throughput counts training "
        "patches over the whole training call; inference is seconds per 512² image.",
        "",
        "| tool | model | train patches/s | inference s/image (whole / tiled) | MAE | PSNR | SSIM | MAE affine "
        "| MAE outer 8 px (whole / tiled) | max \\|tiled - whole\\| |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["tool"] == "raw input":
            lines.append(f"| raw input | | | | {r['mae']:.2f} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                         f"{r['mae_affine']:.2f} | {r['mae_border']:.2f} | |")
            continue
        lines.append(f"| {r['tool']} | {r['model']} | {r['patches_per_s']:.1f} | {r['s_per_image']:.2f} / "
                     f"{r['tiled_s_per_image']:.2f} | {r['mae']:.2f} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                     f"{r['mae_affine']:.2f} | {r['mae_border']:.2f} / {r['tiled_mae_border']:.2f} | "
                     f"{r['tiled_vs_whole_max']:.2g} |")
    if seed_lines:
        lines += ["", "## Over seeds", "",
                  "The same comparison trained with other seeds (`--seeds`; the table above is seed "
                  f"{SETTINGS['seed']}), same data and settings, scored the same way (whole-image predictions):", "",
                  *seed_lines]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None):
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "teachdiff-side":
        return teachdiff_side(*sys.argv[2:5])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", type=Path, required=True, help="folder for the data, runs and predictions")
    p.add_argument("--venv", type=Path, default=None, help="CAREamics' venv (default WORK/careamics-venv)")
    p.add_argument("--pip-cache", type=Path, default=Path("/tmp/teachdiff-peers-pip-cache"))
    p.add_argument("--skip-careamics", action="store_true", help="run and score teachdiff only")
    p.add_argument("--sequential", action="store_true",
                   help="one training process at a time on one core (model by model) instead of both at once")
    p.add_argument("--seeds", type=int, nargs="+", default=[SETTINGS["seed"]],
                   help=f"train with each of these seeds (default {SETTINGS['seed']}); the main table shows seed "
                        f"{SETTINGS['seed']}, a second table every tool and model over the seeds")
    a = p.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    folder = a.work / "data"
    make_data(folder)
    careamics_python = None if a.skip_careamics else build_venv(a.venv or a.work / "careamics-venv", a.pip_cache)
    seeds = sorted(set(a.seeds) | {SETTINGS["seed"]})
    for seed in seeds:
        run_both(folder, a.work, careamics_python, a.sequential, seed)
    seed_lines = seed_table(folder, a.work, seeds) if len(seeds) > 1 else []
    write_results(score(folder, a.work), a.work, a.sequential, seed_lines)


if __name__ == "__main__":
    main()
