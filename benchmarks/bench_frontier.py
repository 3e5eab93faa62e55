"""The cost-quality frontier of sampling, and how well the uncertainty maps are calibrated (issue 14).

For each dataset and its trained DDPM, on test patches with ground truth:

1. **Frontier.** Quality (MAE, PSNR, MS-SSIM against the GT, 0..255 scale) against network calls
   per patch for DDPM-avg (200 ancestral steps, the paper), DDIM-k-avg (deterministic, eta = 0)
   and DPM-Solver++(2M)-k-avg, each averaging N in {1, 2, 4, 8, 15} samples; calls = k N. All
   samplers start from the same y_T (one position-keyed noise field, seed 0), and the N-average
   uses the first N of 15 samples. Output: one Pareto plot per dataset and the cheapest setting
   whose mean MAE is within 2 % of DDPM-avg-15's.
2. **Uncertainty checks** of the 15-sample std map of each sampler on the same patches: Spearman
   rank correlation with |error|, AUSE, and the coverage of the 90 % sample-quantile interval.
3. **Calibration** of one setting (``--calibrate``; default the restore default, the cheapest
   within 2 % with at least ``MAP_SAMPLES`` samples): a split-conformal scale fitted on validation
   patches, and the coverage of the 90 % interval on test patches before (sample quantiles) and
   after (conformal). The fitted scale is saved as JSON, which
   ``teachdiff restore --interval 0.9 --calibration FILE`` reads.

Models: ``--checkpoint DATASET=NAME_OR_PATH`` for a zoo model (``teachdiff weights list``) or a
trained checkpoint; without it,
the quick model of ``teachdiff.training.runs.train_or_load(dataset, "quick")`` (trained if missing).
MS-SSIM uses 3 scales (renormalised weights), the most that 64² patches allow (5 need 176²).

Run (CPU, the quick zoo's DDPMs; the recorded results, about 80 s per 64² patch and dataset on
one unloaded core for the frontier, one process per pair of datasets, then a third with all four
for the calibration of the setting chosen over all of them):
``python benchmarks/bench_frontier.py --patches 8 --checkpoint synthetic-zebrafish=synthetic-zebrafish-ddpm-quick
...`` (one ``--checkpoint`` per dataset). Settings already in ``frontier/<dataset>.json``
are kept (an interrupted or extended run resumes); ``--calibrate none`` only rewrites the report.
Writes ``frontier.md``, ``frontier_<dataset>.png`` and ``frontier/<dataset>.json`` (all numbers,
read by chapters 5 and 6) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

import teachdiff
from teachdiff.evaluation import metrics
from teachdiff.inference.sampling import sample
from teachdiff.inference.restore import uncertainty_maps

DATASETS = ("synthetic-zebrafish", "synthetic-microtubules", "synthetic-mitochondria", "synthetic-synapses")
N_AVG = (1, 2, 4, 8, 15)
SAMPLERS = {"ddpm": (200,), "ddim": (5, 10, 20, 50), "dpm++": (5, 10, 20), "ddim-eta1": (10, 20, 50)}
LABELS = {"ddpm": "DDPM-avg (T = 200)", "ddim": "DDIM-k-avg", "dpm++": "DPM-Solver++(2M)-k-avg",
          "ddim-eta1": "stochastic DDIM (eta = 1)-k-avg"}
SHORT = {"ddim": "DDIM", "dpm++": "DPM++", "ddim-eta1": "DDIM(eta=1)"}
TOLERANCE = 0.02  # "within 2 % of DDPM-avg-15's MAE"
LEVEL = 0.9
MS_SSIM_SCALES = 3
MACHINE = "2-core CPU shared with other jobs (CI machine)"


def setting_name(sampler: str, steps: int, n: int) -> str:
    return f"DDPM-avg-{n}" if sampler == "ddpm" else f"{SHORT[sampler]}-{steps}-avg-{n}"


def _to255(t: torch.Tensor) -> np.ndarray:
    return ((t.float().clamp(-1, 1) + 1) * 127.5).cpu().numpy().astype(np.float64)


def load_model(dataset: str, checkpoint: str | None):
    from teachdiff.store.resolve import load_method
    from teachdiff.training.runs import train_or_load

    if checkpoint:
        return load_method(checkpoint, map_location=teachdiff.device(), expect_kind="ddpm")
    return train_or_load(dataset, "quick", "ddpm", progress=False)


def patches(dataset: str, split: str, n: int, size: int, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    from teachdiff.data import make_datasets

    data = make_datasets(dataset, patch_size=size, quick=True, seed=0, augmentation=False)[split]
    if len(data) < start + n:
        raise ValueError(f"{dataset} has {len(data)} {split} patches, fewer than the {start + n} asked for.")
    items = [data[i] for i in range(start, start + n)]
    return torch.stack([it["x"] for it in items]), torch.stack([it["y"] for it in items])


def draw(method, x: torch.Tensor, sampler: str, steps: int, n_samples: int, batch_size: int,
         seed: int = 0) -> tuple[np.ndarray, float]:
    """Samples (B, n_samples, H, W) on the 0..255 scale and the wall time in seconds.
    ``sampler="ddim-eta1"`` is DDIM with eta = 1 (fresh noise at every step)."""
    start = time.perf_counter()
    eta = 1.0 if sampler == "ddim-eta1" else 0.0
    out = sample(method.unet, x.to(teachdiff.device()), method.schedule, n_samples=n_samples,
                 sampler=sampler.removesuffix("-eta1"), steps=steps, batch_size=batch_size, seed=seed, eta=eta,
                 progress=False, clip=method.config.clip, variance=method.config.variance)
    return _to255(out[:, :, 0]), time.perf_counter() - start


def std_map(samples255: np.ndarray) -> np.ndarray:
    """Eq. 15 on the 0..255 scale (B, H, W), from samples (B, N, H, W) on the 0..255 scale."""
    std, _ = uncertainty_maps(torch.from_numpy(samples255 / 127.5 - 1)[:, :, None])
    return std[:, 0].numpy().astype(np.float64) * 255


def quality(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    return {"mae": metrics.mae(pred, gt), "psnr": metrics.psnr(pred, gt),
            "ms_ssim": metrics.ms_ssim(pred, gt, scales=MS_SSIM_SCALES)}


def uncertainty_checks(samples: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Per-patch means of the checks of the std map of all samples, and the interval coverage."""
    mean, std = samples.mean(axis=1), std_map(samples)
    lower, upper = metrics.sample_interval(samples, LEVEL, axis=1)
    return {"spearman": float(np.mean([metrics.uncertainty_rank_correlation(s, m - g)
                                       for s, m, g in zip(std, mean, gt)])),
            "ause": float(np.mean([metrics.ause(s, m - g) for s, m, g in zip(std, mean, gt)])),
            "coverage": metrics.interval_coverage(lower, upper, gt)}


def frontier(method, dataset: str, n_patches: int, size: int, batch_size: int, done: dict | None = None) -> dict:
    """All settings of SAMPLERS; those already in ``done`` (an earlier result) are kept, not redrawn."""
    x, y = patches(dataset, "test", n_patches, size)
    gt = _to255(y[:, 0])
    rows, checks = list(done["rows"]) if done else [], dict(done["uncertainty"]) if done else {}
    for sampler, step_list in SAMPLERS.items():
        for steps in step_list:
            if any(r["sampler"] == sampler and r["steps"] == steps for r in rows):
                continue
            samples, seconds = draw(method, x, sampler, steps, max(N_AVG), batch_size)
            print(f"  {sampler} k={steps}: {seconds:.0f} s", flush=True)
            for n in N_AVG:
                scores = [quality(samples[i, :n].mean(axis=0), gt[i]) for i in range(n_patches)]
                rows.append({"sampler": sampler, "steps": steps, "n": n, "calls": steps * n,
                             "setting": setting_name(sampler, steps, n),
                             **{k: float(np.mean([s[k] for s in scores])) for k in scores[0]},
                             "mae_per_patch": [s["mae"] for s in scores],
                             # wall time of this setting per patch: measured for 15 samples, times n / 15
                             "seconds_per_patch": seconds / n_patches * n / max(N_AVG)})
            checks[setting_name(sampler, steps, max(N_AVG))] = uncertainty_checks(samples, gt)
    return {"rows": rows, "uncertainty": checks, "input_mae": float(np.mean([metrics.mae(_to255(x[i, 0]), gt[i])
                                                                             for i in range(n_patches)]))}


def cheapest_within(rows: list[dict], tolerance: float = TOLERANCE) -> dict:
    """The setting with the fewest calls whose MAE is <= (1 + tolerance) x DDPM-avg-15's (ties: lower MAE)."""
    reference = next(r for r in rows if r["sampler"] == "ddpm" and r["n"] == max(N_AVG))
    ok = [r for r in rows if r["mae"] <= (1 + tolerance) * reference["mae"]]
    return min(ok, key=lambda r: (r["calls"], r["mae"]))


def pareto(rows: list[dict]) -> list[dict]:
    """The settings that no other setting beats in both calls and MAE."""
    return [r for r in rows if not any(o["calls"] <= r["calls"] and o["mae"] < r["mae"] or
                                       o["calls"] < r["calls"] and o["mae"] <= r["mae"] for o in rows)]


def plot(result: dict, dataset: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    markers = {"ddpm": "o", "ddim": "s", "dpm++": "^", "ddim-eta1": "v"}
    for ax, key, label in zip(axes, ("mae", "psnr", "ms_ssim"), ("MAE ↓", "PSNR (dB) ↑", "MS-SSIM (3 scales) ↑")):
        for sampler, step_list in SAMPLERS.items():
            for j, steps in enumerate(step_list):
                sel = [r for r in rows if r["sampler"] == sampler and r["steps"] == steps]
                name = LABELS[sampler] if sampler == "ddpm" else f"{LABELS[sampler].replace('-k-', f'-{steps}-')}"
                ax.plot([r["calls"] for r in sel], [r[key] for r in sel], markers[sampler] + "-", ms=4,
                        color=plt.cm.tab10(list(SAMPLERS).index(sampler)), alpha=0.35 + 0.65 * (j + 1) / len(step_list),
                        label=name)
        front = sorted(pareto(rows), key=lambda r: r["calls"])
        if key == "mae":
            ax.plot([r["calls"] for r in front], [r["mae"] for r in front], "k:", lw=1, label="Pareto front (MAE)")
            best = result["cheapest"]
            ax.plot(best["calls"], best["mae"], "*", color="gold", mec="k", ms=14,
                    label=f"cheapest within 2 %: {best['setting']}")
            ref = next(r for r in rows if r["sampler"] == "ddpm" and r["n"] == max(N_AVG))
            ax.axhline(ref["mae"] * (1 + TOLERANCE), color="gray", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("network calls per patch")
        ax.set_title(label)
    fig.suptitle(f"{dataset}: quality vs cost ({result['n_patches']} test patch(es) of {result['size']}²)")
    fig.tight_layout()
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def calibrate(method, dataset: str, sampler: str, steps: int, n: int, n_val: int, n_test: int, size: int,
              batch_size: int, out: Path, checkpoint: str | None) -> dict:
    """Fit the conformal scale on validation patches; coverage on test patches before and after."""
    parts = {}
    for split, count in (("val", n_val), ("test", n_test)):
        x, y = patches(dataset, split, count, size)
        samples, seconds = draw(method, x, sampler, steps, n, batch_size, seed=1)
        parts[split] = (samples, _to255(y[:, 0]), seconds)
    settings = {"sampler": sampler.removesuffix("-eta1"), "steps": steps, "samples": n,
                "eta": 1.0 if sampler == "ddim-eta1" else 0.0, "checkpoint": checkpoint or f"{dataset} quick"}
    val, test = parts["val"], parts["test"]
    scale = metrics.ConformalScale.fit(val[0].mean(axis=1), std_map(val[0]), val[1], level=LEVEL,
                                       settings=settings)
    scale.save(out / "frontier" / f"{dataset}-calibration.json")
    lower, upper = metrics.sample_interval(test[0], LEVEL, axis=1)
    before = metrics.interval_coverage(lower, upper, test[1])
    mean, std = test[0].mean(axis=1), std_map(test[0])
    z = 1.6448536269514722  # the 95 % point of N(0, 1): a Gaussian 90 % interval
    gaussian = metrics.interval_coverage(mean - z * std, mean + z * std, test[1])
    after = metrics.interval_coverage(*scale.interval(mean, std), test[1])
    return {"setting": setting_name(sampler, steps, n), "val_patches": n_val, "test_patches": n_test,
            "scale": scale.scale, "coverage_sample_quantiles": before, "coverage_gaussian": gaussian,
            "coverage_conformal": after, "seconds": val[2] + test[2]}


def model_description(results: dict[str, dict]) -> str:
    """What the measured models are: the quick zoo's DDPMs, or quick models trained on the spot."""
    from teachdiff.store import zoo

    entries = {e.name: e for e in zoo.read_manifest()}
    released = [entries[r["model"]] for r in results.values() if r["model"] in entries]
    if len(released) == len(results) and all(e.preset == "quick" for e in released):
        steps = sorted({e.steps for e in released})
        return (f"These are the quick zoo's DDPMs (the tiny U-Net trained at 64² with EMA, the best "
                f"checkpoints at steps {'/'.join(map(str, steps))}; `benchmarks/results/zoo/`), not the paper's "
                "64 M-parameter network: a larger network's frontier may differ; rerun with "
                "`--checkpoint DATASET=NAME_OR_PATH`.")
    return ("These are not all quick-zoo models: the frontier of each model is its own; rerun with "
            "`--checkpoint DATASET=NAME_OR_PATH` for others.")


def markdown(results: dict[str, dict], args, total_seconds: float) -> str:
    lines = ["# Sampling frontier and calibrated uncertainty (issue 14)", "",
             f"Machine: {MACHINE} ({platform.processor() or platform.machine()}, torch {torch.__version__}, "
             f"{torch.get_num_threads()} thread(s)). Script: `benchmarks/bench_frontier.py` "
             f"(`--patches {args.patches} --size {args.size}`), {total_seconds / 60:.0f} min of sampling in all.", "",
             "Models: " + ", ".join(f"`{d}`: {r['model']}" for d, r in results.items()) + ". "
             + model_description(results), "",
             f"Quality is the mean over {args.patches} test patch(es) of {args.size}² per dataset, on the 0..255 "
             "scale; MS-SSIM uses 3 scales (5 need 176²). Calls = network evaluations per patch = k N. "
             "All samplers start from the same y_T; DDPM-avg-N averages the first N of 15 samples. "
             "The time column is the measured wall time of 15 samples per patch times N / 15.", ""]
    missing = [d for d in DATASETS if d not in results]
    if missing:
        lines += [f"Not measured in this run: {', '.join(missing)} (rerun with `--datasets`).", ""]
    for dataset, r in results.items():
        ref = next(x for x in r["rows"] if x["sampler"] == "ddpm" and x["n"] == max(N_AVG))
        best = r["cheapest"]
        lines += [f"## {dataset}", "", f"![frontier](frontier_{dataset}.png)", "",
                  f"Input MAE {r['input_mae']:.2f}. Paper setting DDPM-avg-15: MAE {ref['mae']:.2f} with "
                  f"{ref['calls']} calls. **Cheapest within 2 %: {best['setting']}**, MAE {best['mae']:.2f}, "
                  f"{best['calls']} calls ({ref['calls'] / best['calls']:.0f}× fewer; wall time "
                  f"{ref['seconds_per_patch'] / best['seconds_per_patch']:.0f}× less).", "",
                  "| setting | calls | MAE ↓ | PSNR ↑ | MS-SSIM ↑ | s / patch | on the Pareto front |",
                  "|---|---|---|---|---|---|---|"]
        front = {x["setting"] for x in pareto(r["rows"])}
        for x in sorted(r["rows"], key=lambda x: (x["calls"], x["mae"])):
            lines.append(f"| {x['setting']} | {x['calls']} | {x['mae']:.2f} | {x['psnr']:.2f} | {x['ms_ssim']:.3f} | "
                         f"{x['seconds_per_patch']:.1f} | {'yes' if x['setting'] in front else ''} |")
        lines += ["", "Uncertainty of the 15-sample std map (Eq. 15) on the same patches: Spearman ρ between std "
                  "and |error| of the mean, AUSE (0 = ideal ordering), and coverage of the 90 % interval of the "
                  "15 samples' quantiles (at most 14/16 = 87.5 % for exchangeable samples, see "
                  "`teachdiff.evaluation.metrics.sample_interval`).", "",
                  "| sampler (15 samples) | Spearman ρ | AUSE | coverage of the 90 % sample interval |", "|---|---|---|---|"]
        for name, c in r["uncertainty"].items():
            lines.append(f"| {name} | {c['spearman']:.2f} | {c['ause']:.3f} | {c['coverage']:.1%} |")
        lines.append("")
    lines += speedup_markdown(results)
    cal = {d: r["calibration"] for d, r in results.items() if r.get("calibration")}
    if cal:
        lines += ["## Coverage of the 90 % interval before and after conformal calibration", "",
                  "Conformal scale fitted on validation patches (`teachdiff.evaluation.metrics.ConformalScale`), coverage "
                  "measured on test patches; the scale is saved as `frontier/<dataset>-calibration.json`.", "",
                  "| dataset | setting | val / test patches | sample quantiles | mean ± 1.645 std | conformal | scale |",
                  "|---|---|---|---|---|---|---|"]
        for d, c in cal.items():
            lines.append(f"| {d} | {c['setting']} | {c['val_patches']} / {c['test_patches']} | "
                         f"{c['coverage_sample_quantiles']:.1%} | {c['coverage_gaussian']:.1%} | "
                         f"{c['coverage_conformal']:.1%} | {c['scale']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def common_choice(results: dict[str, dict], min_samples: int = 1) -> tuple[str, int, int]:
    """The cheapest (sampler, steps, n) with n >= ``min_samples`` that is within 2 % of
    DDPM-avg-15's MAE on every dataset; of settings with the same number of network calls, the one
    whose worst MAE relative to DDPM-avg-15 over the datasets is lowest."""
    ratios = {}
    for r in results.values():
        ref = next(x for x in r["rows"] if x["sampler"] == "ddpm" and x["n"] == max(N_AVG))["mae"]
        for x in r["rows"]:
            ratios.setdefault((x["sampler"], x["steps"], x["n"]), []).append(x["mae"] / ref)
    passing = [s for s, r in ratios.items()
               if len(r) == len(results) and max(r) <= 1 + TOLERANCE and s[2] >= min_samples]
    return min(passing, key=lambda s: (s[1] * s[2], max(ratios[s])))


MAP_SAMPLES = 8
"""The fewest samples of the restore default: ``teachdiff restore`` also writes the std and entropy
maps, and Eq. 15's std of N samples is biased low by sqrt(median chi2_{N-1} / N) (0.77 at N = 4,
0.89 at N = 8 for Gaussian samples; chapter 13, exercise 13.2), so the fast default is the cheapest
setting within 2 % that averages at least 8 samples."""


def speedup_markdown(results: dict[str, dict]) -> list[str]:
    cheapest = setting_name(*common_choice(results))
    sampler, steps, n = common_choice(results, MAP_SAMPLES)
    name = setting_name(sampler, steps, n)
    lines = ["## The fast setting and its speed-up", "",
             f"Cheapest setting within 2 % of DDPM-avg-15's MAE on every dataset above: **{cheapest}**. "
             f"With at least {MAP_SAMPLES} samples, as the std map needs (`MAP_SAMPLES`): **{name}** "
             f"({steps * n} network calls per patch instead of 3000, {3000 / (steps * n):.1f}× fewer; "
             f"`teachdiff.inference.sampling.FAST_SAMPLING`, the default of `teachdiff restore`). With "
             f"{min(r['n_patches'] for r in results.values())} test patch(es) per dataset, MAE differences of a "
             "few percent are within patch-to-patch variation: the choice is indicative, not a measurement "
             "to rely on for other models. "
             "Wall time per patch, measured in the frontier runs (one process per dataset, on the shared machine; "
             "the calibration column times the same setting again on its validation and test patches):", "",
             "| dataset | MAE fast / paper | DDPM-avg-15 s / patch | fast s / patch (frontier) | speed-up | "
             "fast s / patch (calibration run) | speed-up |", "|---|---|---|---|---|---|---|"]
    for d, r in results.items():
        ref = next(x for x in r["rows"] if x["setting"] == "DDPM-avg-15")
        fast = next(x for x in r["rows"] if (x["sampler"], x["steps"], x["n"]) == (sampler, steps, n))
        cal = r.get("calibration") or {}
        cal_s = cal["seconds"] / (cal["val_patches"] + cal["test_patches"]) \
            if cal.get("setting") == name else float("nan")
        lines.append(f"| {d} | {fast['mae']:.2f} / {ref['mae']:.2f} ({fast['mae'] / ref['mae'] - 1:+.1%}) | "
                     f"{ref['seconds_per_patch']:.0f} | {fast['seconds_per_patch']:.1f} | "
                     f"{ref['seconds_per_patch'] / fast['seconds_per_patch']:.1f}× | {cal_s:.1f} | "
                     f"{ref['seconds_per_patch'] / cal_s:.1f}× |")
    return lines + [""]


def parse_setting(text: str) -> tuple[str, int, int]:
    try:
        sampler, steps, n = text.split(":")
        return sampler, int(steps), int(n)
    except ValueError:
        raise SystemExit(f"--calibrate takes SAMPLER:STEPS:SAMPLES, e.g. ddim:10:8, got {text!r}") from None


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--checkpoint", action="append", default=[], metavar="DATASET=NAME_OR_PATH",
                   help="a zoo model or trained checkpoint for a dataset (default: its quick model)")
    p.add_argument("--patches", type=int, default=2, help="test patches per dataset (default 2)")
    p.add_argument("--size", type=int, default=64, help="patch size (default 64, the quick models' training size)")
    p.add_argument("--batch-size", type=int, default=15, help="images per network call (default 15)")
    p.add_argument("--calibrate", help="SAMPLER:STEPS:SAMPLES to calibrate (default: the restore default, the "
                   "cheapest within 2 %% over all datasets with at least MAP_SAMPLES samples); 'none' to skip")
    p.add_argument("--calibration-patches", type=int, nargs=2, default=(8, 8), metavar=("VAL", "TEST"),
                   help="validation and test patches of the calibration (default 8 8: all that quick mode has)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # see bench_sampling.py: one thread is fastest on this shared machine
    checkpoints = dict(item.split("=", 1) for item in args.checkpoint)
    out = Path(args.out)
    (out / "frontier").mkdir(parents=True, exist_ok=True)
    results, methods = {}, {}
    for dataset in args.datasets:
        cached = out / "frontier" / f"{dataset}.json"
        methods[dataset] = load_model(dataset, checkpoints.get(dataset))
        done = json.loads(cached.read_text()) if cached.exists() else None
        if done and (done.get("n_patches"), done.get("size")) != (args.patches, args.size):
            done = None  # another patch set: start again
        print(f"{dataset}: frontier on {args.patches} patches" + (" (resumed)" if done else ""), flush=True)
        t0 = time.perf_counter()
        r = frontier(methods[dataset], dataset, args.patches, args.size, args.batch_size, done)
        r.update(dataset=dataset, n_patches=args.patches, size=args.size,
                 seconds=time.perf_counter() - t0 + (done["seconds"] if done else 0.0),
                 model=checkpoints.get(dataset, "quick model (train_or_load)"))
        r["cheapest"] = cheapest_within(r["rows"])
        if done and done.get("calibration") and args.calibrate == "none":
            r["calibration"] = done["calibration"]  # a report-only rerun keeps the measured calibration
        cached.write_text(json.dumps(r, indent=1))
        results[dataset] = r
    for dataset, r in results.items():
        plot(r, dataset, out / f"frontier_{dataset}.png")
    if args.calibrate != "none":
        if args.calibrate:
            setting = parse_setting(args.calibrate)
        else:
            setting = common_choice(results, MAP_SAMPLES)
        for dataset, r in results.items():
            print(f"{dataset}: calibration of {setting_name(*setting)}", flush=True)
            r["calibration"] = calibrate(methods[dataset], dataset, *setting, *args.calibration_patches, args.size,
                                         args.batch_size, out, checkpoints.get(dataset))
            (out / "frontier" / f"{dataset}.json").write_text(json.dumps(r, indent=1))
    total = sum(r["seconds"] + r.get("calibration", {}).get("seconds", 0) for r in results.values())
    (out / "frontier.md").write_text(markdown(results, args, total))
    print(f"wrote {out / 'frontier.md'}")


if __name__ == "__main__":
    main()
