"""Re-run a paper result: train (or load) every model, restore the test split, score, compare.

``teachdiff reproduce DATASET --preset quick|colab|paper --out DIR`` does, for one dataset:

1. load each model from the model zoo (``teachdiff weights list``) when it has one for this dataset
   and preset; otherwise (or with ``--train``) train it with its preset, or load
   ``DIR/models/<model>/best.pt`` when that run finished (``teachdiff.training.runs.train_or_load``; an
   interrupted run is resumed);
2. restore the test patches: DDPM (one sample), DDPM-avg (mean of N samples, N = 15 in the
   paper), the baselines and two classical filters;
3. post-process under each mode of ``postprocessing`` (:data:`teachdiff.core.paper.POSTPROCESSING`):
   ``paper`` as §3.6 (CARE, Noise2Void and UNet-RCAN outputs clipped to [0, 255] and linearly
   rescaled to the GT training distribution, DDPM and pix2pix only clipped; the two classical
   filters, which the paper does not score, rescaled like CARE), ``none`` (every output clipped)
   and ``all`` (every output rescaled alike). The filters are tuned on the validation split by the
   objective they are scored on (MAE after that mode's post-processing). For datasets that are
   registered (§S1.1: microtubules, synapses, and their synthetic stand-ins) every prediction is
   then re-aligned to the GT (§4.1) and the applied shift reported;
4. score every image with every metric (``teachdiff.evaluation.metrics.evaluate``), write ``scores.csv``
   (one row per mode, method and image), the median tables with bootstrap 95 % confidence
   intervals, Mood's median test and the paired Wilcoxon signed-rank test against DDPM-avg, next
   to the paper's numbers with the difference (``table.md``), box plots like Figs. 1A-4A
   (``boxplots.png``) and the averaging curve of Fig. S1 (``averaging.png``).

In the ``quick`` preset everything is small (64² training patches, a tiny network, 4 test
patches of 192² -- the smallest size MS-SSIM's five scales accept is 176² --, 4 DDIM samples of
10 steps) so it runs on a CPU in minutes; the numbers then say that the
pipeline works, not what the paper measured. Synthetic datasets are compared with the paper's
numbers of the matching real dataset only as a reference point, and the table says so. The
``colab`` preset trains each model's ``colab`` preset (one Colab T4 session, see
``teachdiff.training.presets.train_preset``) and scores the paper's DDPM-avg on 8 test patches.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import teachdiff
from teachdiff.core.paper import METHOD_LABELS, POSTPROCESSING, paper_value
from teachdiff.core.scale import to_display_range
from teachdiff.evaluation import metrics, stats
from teachdiff.evaluation.evaluate import TABLE_METRICS, median_table_of_rows, write_scores_csv
from teachdiff.evaluation.metrics.postprocess import postprocess

__all__ = ["ReproduceConfig", "reproduce", "postprocess", "ranking", "describe_table", "choose_dataset", "dataset_card",
           "comparison_markdown", "plot_boxplots", "plot_averaging", "plot_examples", "grey_levels"]

RESOLUTION_METRICS = ("resolution", "resolution_ratio")
NO_PEAK = "n/a (no peak)"
NO_PEAK_NOTE = (f"{NO_PEAK}: for no image of this method does the decorrelation analysis find a peak of d(r) "
                "beyond its first radius (no structure detectable above the noise, typical of raw low-dose "
                "inputs): the resolution would be the grid's first radius (2 x 49 pixels), not a measurement, "
                "and the ratio is undefined when the prediction or the GT has no peak. "
                "(k/n no peak): the median is over the images that have one.")
LABELS = {**METHOD_LABELS, "gaussian": "Gaussian filter", "nlm": "Non-local means"}
METRIC_LABELS = {"mae": "MAE ↓", "psnr": "PSNR ↑", "ms_ssim": "MS-SSIM ↑", "lpips": "LPIPS ↓", "nrmse": "NRMSE ↓",
                 "pearson": "Pearson ↑", "resolution": "Res. (nm)", "resolution_ratio": "Res. ratio (1 = GT)"}


@dataclass
class ReproduceConfig:
    dataset: str
    preset: str = "quick"
    models: tuple[str, ...] = ("ddpm", "care", "n2v", "pix2pix", "rcan")
    n_avg: int = 15  # samples averaged for DDPM-avg (paper: 15)
    sampler: str = "ddpm"  # the paper's ancestral sampler; "ddim" or "dpm++" for speed
    steps: int = 20  # steps of ddim / dpm++
    eta: float = 0.0  # ddim only: 0 deterministic, 1 fresh noise at every step
    test_images: int | None = None  # None: the whole test split
    test_patch_size: int = 256
    classical: bool = True
    seed: int = 0
    postprocessing: tuple[str, ...] = ("paper", "none")  # modes of core.paper.POSTPROCESSING; the first gives "table"
    align: bool | None = None  # re-align predictions to the GT (§4.1); None: when the dataset is registered
    # False: models live in ``out_dir/models/<model>``. True: in ``train_or_load``'s default folders
    # under ``teachdiff.training.config.runs_dir()``, shared with every other user of the same preset (the
    # book's chapters train each quick model once).
    shared_models: bool = False
    use_zoo: bool = True  # load the zoo's model of a dataset/model/preset when there is one
    # More models to score beside ``models``, as (label, checkpoint file, run folder or zoo name): a
    # model trained on another dataset (zero-shot transfer) or fine-tuned. A DDPM gives its DDPM-avg.
    extra: tuple[tuple[str, str], ...] = ()
    test_subset: bool = True  # quick preset on a real dataset: score quick mode's few evenly spread patches

    @classmethod
    def preset_for(cls, dataset: str, preset: str) -> "ReproduceConfig":
        """The comparison of a preset; under ``TEACHDIFF_CAPPED=1`` (:func:`teachdiff.capped_mode`)
        on two test images with two samples."""
        cfg = cls._uncapped(dataset, preset)
        if teachdiff.capped_mode():
            cfg = dataclasses.replace(cfg, test_images=min(cfg.test_images or 2, 2), n_avg=min(cfg.n_avg, 2))
        return cfg

    @classmethod
    def _uncapped(cls, dataset: str, preset: str) -> "ReproduceConfig":
        if preset == "paper":
            return cls(dataset, preset)
        if preset == "quick":
            return cls(dataset, preset, n_avg=4, sampler="ddim", steps=10, test_images=4, test_patch_size=192)
        if preset == "colab":
            # The paper's DDPM-avg (15 x 200 DDPM steps) on 8 test patches: 8 x 3000 forward passes
            # of 0.42 TFLOP = 10 PFLOP, about 8-10 minutes on a T4 at 25-35 % of 65 TFLOP/s.
            return cls(dataset, preset, test_images=8)
        raise ValueError(f"preset must be 'quick', 'colab' or 'paper', got {preset!r}.")


def chapter_config(dataset: str, preset: str, competitor: str) -> ReproduceConfig:
    """The comparison a reproduction chapter of the book runs: ``preset_for(dataset, preset)``, and
    in the quick preset every model the model zoo holds for the dataset plus the DDPM and the
    paper's strongest benchmark model ``competitor`` (trained, if the zoo lacks them, into the
    shared folders of ``train_or_load``, so each chapter trains a quick model once at most)."""
    from teachdiff.store import zoo

    cfg = ReproduceConfig.preset_for(dataset, preset)
    if preset != "quick":
        return cfg
    models = tuple(m for m in cfg.models if m in ("ddpm", competitor) or zoo.find(dataset, m, preset))
    return dataclasses.replace(cfg, models=models, shared_models=True)


def grey_levels(images: torch.Tensor) -> np.ndarray:
    """Images in the networks' [-1, 1] as a NumPy array of grey levels 0..255, the scale of the
    metrics (:func:`teachdiff.core.scale.to_display_range`)."""
    return to_display_range(images).cpu().numpy()


def _trained(model: str, cfg: ReproduceConfig, out_dir: Path, progress: bool):
    from teachdiff.training.runs import train_or_load

    models_dir = None if cfg.shared_models else out_dir / "models" / model
    return train_or_load(cfg.dataset, cfg.preset, model, models_dir, seed=cfg.seed, progress=progress,
                         use_zoo=cfg.use_zoo)


def _stack(dataset, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(dataset) if n is None else min(n, len(dataset))
    items = [dataset[i] for i in range(n)]
    return torch.stack([it["x"] for it in items]), torch.stack([it["y"] for it in items])


def reproduce(cfg: ReproduceConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Run the whole comparison for ``cfg.dataset``.

    Returns ``tables`` and ``predictions`` per post-processing mode (0..255), ``table`` and
    ``predictions`` of the first mode, the per-image ``rows`` of every mode, the ``shifts`` of the
    re-alignment (``{mode: {method: (N, 2)}}``, empty when not aligned), the ``outputs`` of the raw
    input and every model before post-processing and alignment (0..255), the inputs ``x``,
    the GT and the GT training ``reference`` that rescaled methods were mapped onto."""
    from teachdiff.data import get_dataset_info, make_datasets

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} is a file; give a folder for the results.")
    for mode in cfg.postprocessing:
        if mode not in POSTPROCESSING:
            raise ValueError(f"unknown post-processing {mode!r}; choose from {', '.join(POSTPROCESSING)}.")
    out_dir.mkdir(parents=True, exist_ok=True)
    info = get_dataset_info(cfg.dataset)
    quick = cfg.preset == "quick" and (info.is_synthetic or cfg.test_subset)
    test_sets = make_datasets(cfg.dataset, patch_size=cfg.test_patch_size, quick=quick, seed=cfg.seed,
                              augmentation=False, progress=progress)
    x, y = _stack(test_sets["test"], cfg.test_images)
    gt = grey_levels(y[:, 0])
    reference = metrics.IntensityReference.from_images(
        grey_levels(_stack(test_sets["train"], 64)[1][:, 0]))
    device = teachdiff.device()
    generator = torch.Generator().manual_seed(cfg.seed)

    outputs: dict[str, np.ndarray] = {"raw": grey_levels(x[:, 0])}  # before post-processing
    averaging_curve = None
    for model in cfg.models:
        method = _trained(model, cfg, out_dir, progress)
        if model == "ddpm":
            samples = _ddpm_samples(method, x, cfg, generator, progress)
            outputs["ddpm"] = grey_levels(samples[:, 0, 0])
            outputs["ddpm-avg"] = grey_levels(samples[:, :, 0].mean(1))
            averaging_curve = [np.median([metrics.mae(grey_levels(samples[i, :k, 0].mean(0)), gt[i])
                                          for i in range(len(gt))]) for k in range(1, cfg.n_avg + 1)]
            continue
        with torch.no_grad():
            outputs[model] = grey_levels(method.restore(x.to(device), generator=generator)[:, 0])
    kinds = {name: name for name in outputs}  # what post-processing treats each output as
    for label, (output, kind) in _extra_outputs(cfg, x, generator, progress).items():
        outputs[label], kinds[label] = output, kind
    align = _aligned_dataset(info) if cfg.align is None else cfg.align
    validation = _stack(test_sets["val"], 8) if cfg.classical else None

    tables, predictions_by_mode, shifts, rows = {}, {}, {}, []
    for mode in cfg.postprocessing:
        predictions = {name: metrics.postprocess(kinds[name], out, reference, mode) for name, out in outputs.items()}
        if cfg.classical:
            predictions.update(_tuned_filters(x, *validation, reference, mode))
        if align:
            predictions, shifts[mode] = metrics.align_predictions(predictions, gt)
        mode_rows = _scored_rows(predictions, gt, mode, info.pixel_size_nm, shifts.get(mode), progress)
        rows += mode_rows
        predictions_by_mode[mode] = predictions
        tables[mode] = _median_table(mode_rows, cfg.dataset)
    first = cfg.postprocessing[0]
    write_scores_csv(out_dir / "scores.csv", rows)
    (out_dir / "table.md").write_text("\n".join(_table_markdown(tables[m], cfg, m) for m in cfg.postprocessing))
    plot_boxplots([r for r in rows if r["postprocessing"] == first], cfg.dataset).savefig(out_dir / "boxplots.png",
                                                                                         dpi=90)
    if averaging_curve is not None:
        plot_averaging(averaging_curve, cfg.dataset).savefig(out_dir / "averaging.png", dpi=90)
    return {"table": tables[first], "tables": tables, "rows": rows, "averaging_curve": averaging_curve,
            "predictions": predictions_by_mode[first], "predictions_by_mode": predictions_by_mode,
            "shifts": shifts, "outputs": outputs, "x": x, "gt": gt, "reference": reference}


def _extra_outputs(cfg: ReproduceConfig, x: torch.Tensor, generator,
                   progress: bool) -> dict[str, tuple[np.ndarray, str]]:
    """The models of ``cfg.extra`` on the test inputs ``x``: label -> (output in 0..255, what
    post-processing treats it as; a DDPM gives its DDPM-avg)."""
    from teachdiff.store.resolve import load_method

    device = teachdiff.device()
    extra = {}
    for label, source in cfg.extra:
        method = load_method(source, map_location=device)
        if method.kind == "ddpm":
            extra[label] = grey_levels(_ddpm_samples(method, x, cfg, generator, progress)[:, :, 0].mean(1)), "ddpm-avg"
        else:
            with torch.no_grad():
                extra[label] = grey_levels(method.restore(x.to(device), generator=generator)[:, 0]), method.kind
    return extra


def _scored_rows(predictions: dict[str, np.ndarray], gt: np.ndarray, mode: str, pixel_size: float,
                 shifts: dict[str, np.ndarray] | None, progress: bool) -> list[dict]:
    """One row per method and test image of one post-processing mode: every metric and, when the
    predictions were re-aligned, the ``shifts`` applied ({method: (N, 2)})."""
    rows = []
    for name, pred in tqdm(predictions.items(), desc=f"scoring ({mode})", disable=not progress):
        for i in range(len(gt)):
            scores = metrics.without_grid_floor(metrics.evaluate(pred[i], gt[i], pixel_size=pixel_size), pixel_size)
            row = {"postprocessing": mode, "method": name, "image": i, **scores}
            if shifts is not None:
                row["shift_y"], row["shift_x"] = (float(v) for v in shifts[name][i])
            rows.append(row)
    return rows


def _ddpm_samples(method, x: torch.Tensor, cfg: ReproduceConfig, generator, progress: bool) -> torch.Tensor:
    """``cfg.n_avg`` samples of a DDPM for every image of ``x``: (N, n_avg, 1, H, W) in [-1, 1]. Tiles of the
    training patch size: the network then sees what it was trained on, and its bottleneck attention
    stays as small as in training."""
    from teachdiff.inference.sampling import sample_tiled

    tile = method.unet.config.image_size
    return sample_tiled(method.unet, x.to(teachdiff.device()), method.schedule, n_samples=cfg.n_avg,
                        sampler=cfg.sampler, steps=cfg.steps, eta=cfg.eta, tile=tile if tile < x.shape[-1] else None,
                        overlap=tile // 4, generator=generator, progress=progress).cpu()


def _aligned_dataset(info) -> bool:
    """Whether §4.1's re-alignment applies: the dataset (or, for a synthetic stand-in, the real
    dataset it stands for) is registered before training (§S1.1)."""
    from teachdiff.data import get_dataset_info

    if info.is_synthetic:
        try:
            return get_dataset_info(info.name.removeprefix("synthetic-")).register
        except (KeyError, ValueError):
            return False
    return info.register


def _tuned_filters(x, x_val, y_val, reference, mode: str) -> dict[str, np.ndarray]:
    """The two classical filters' test predictions, each tuned on the validation split by the MAE
    its output gets after ``mode``'s post-processing, which is what the table scores."""
    from teachdiff.methods.classical import GaussianFilter, NonLocalMeans

    predictions = {}
    for name, cls in (("gaussian", GaussianFilter), ("nlm", NonLocalMeans)):
        def objective(pred, gt, name=name):
            return float(np.abs(metrics.postprocess(name, pred, reference, mode) - gt).mean())

        restored = grey_levels(cls.fit(x_val, y_val, objective=objective).restore(x)[:, 0])
        predictions[name] = metrics.postprocess(name, restored, reference, mode)
    return predictions


def _median_table(rows: list[dict], dataset: str, reference: str = "ddpm-avg") -> list[dict]:
    """:func:`teachdiff.evaluation.evaluate.median_table_of_rows` of the rows of one post-processing mode
    (Mood's test against ``reference``, DDPM-avg), with the paper's value of each metric
    (``m_paper``) and ours minus the paper's (``m_diff``); against ``reference``, Mood's test of the
    per-image MAE (``mae_vs_ddpm_avg``: stars) and the paired Wilcoxon signed-rank test of the
    per-image MAE differences (``mae_wilcoxon_p``, ``mae_median_difference``)."""
    table = median_table_of_rows(rows, reference)
    scores = stats.scores_from_rows(rows, ("mae",))
    reference_dataset = dataset.removeprefix("synthetic-")
    for row in table:
        method = row["method"]
        for metric in TABLE_METRICS:
            paper = paper_value(reference_dataset, method, metric)
            row[f"{metric}_paper"] = math.nan if paper is None else paper
            row[f"{metric}_diff"] = row[metric] - paper if paper is not None else math.nan
        if reference in scores and method != reference:
            row["mae_vs_ddpm_avg"] = row["mae_stars"]
            test = stats.wilcoxon_signed_rank(scores[method]["mae"], scores[reference]["mae"])
            row["mae_wilcoxon_p"], row["mae_median_difference"] = test.p_value, test.median_difference
    return table


def _fmt(v: float, digits: int = 2) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def _ours(row: dict, metric: str, digits: int = 2) -> str:
    """Our median; for the resolution columns "n/a (no peak)" when no image has a decorrelation
    peak, and the count when only some have none (see ``NO_PEAK_NOTE``)."""
    text = _fmt(row[metric], digits)
    undefined = row.get(f"{metric}_undefined", 0)
    if metric not in RESOLUTION_METRICS or not undefined:
        return text
    if undefined == row["n_images"]:
        return NO_PEAK
    return f"{text} ({undefined}/{row['n_images']} no peak)"


def _no_peak_footnote(table: list[dict], metrics_shown) -> list[str]:
    shown = [m for m in metrics_shown if m in RESOLUTION_METRICS]
    return ["", NO_PEAK_NOTE] if any(row.get(f"{m}_undefined", 0) for row in table for m in shown) else []


def _table_markdown(table: list[dict], cfg: ReproduceConfig, mode: str = "paper") -> str:
    synthetic = cfg.dataset.startswith("synthetic-")
    lines = [f"# {cfg.dataset}: medians over {cfg.test_images or 'all'} test patches ({cfg.preset} preset, "
             f"post-processing: {mode})", ""]
    if synthetic:
        lines += [f"*Synthetic stand-in data.* The paper's column is its result on the real "
                  f"`{cfg.dataset.removeprefix('synthetic-')}` data, shown as a reference point only.", ""]
    header = ("| method | " + " | ".join(f"{m} (ours / paper / Δ)" for m in TABLE_METRICS)
              + " | MAE 95 % CI | MAE vs DDPM-avg: Mood | Wilcoxon p |")
    lines += [header, "|" + "---|" * (len(TABLE_METRICS) + 4)]
    for row in table:
        cells = [f"{_ours(row, m)} / {_fmt(row[m + '_paper'])} / {_fmt(row[m + '_diff'])}" for m in TABLE_METRICS]
        label = LABELS.get(row["method"], row["method"])
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {_fmt(row['mae_low'])}–{_fmt(row['mae_high'])} | "
                     f"{row.get('mae_vs_ddpm_avg', '')} | {_p(row.get('mae_wilcoxon_p'))} |")
    lines += ["", POSTPROCESSING_NOTES[mode], "", "MAE 95 % CI: percentile bootstrap of the median over the test "
              "patches. Mood: Mood's median test of the per-image MAE against DDPM-avg (*** p < .001, ** p < .01, "
              "* p < .05, ns otherwise), as in Fig. 1A; it ignores that both methods were scored on the same "
              "patches. Wilcoxon: the paired signed-rank test of the per-patch MAE differences, which uses it. "
              "Not significant means not shown to differ, not equivalent."]
    lines += _no_peak_footnote(table, TABLE_METRICS)
    return "\n".join(lines) + "\n"


POSTPROCESSING_NOTES = {
    "paper": "Post-processing `paper` (§3.6): CARE, Noise2Void, UNet-RCAN and the filters clipped and rescaled to "
             "the GT training distribution (mean and std, fitted per method); DDPM, DDPM-avg and pix2pix clipped.",
    "none": "Post-processing `none`: every output only clipped to [0, 255]; no method gets a fitted map.",
    "all": "Post-processing `all`: every output (the raw input included) clipped and rescaled to the GT training "
           "distribution by its own mean/std map, so every method gets the same free fit.",
}


def _p(value) -> str:
    """A p-value for a table: two significant digits, "<0.001" below that."""
    if value is None or not np.isfinite(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.2g}"


def _figure(figsize):
    """A matplotlib Figure that does not go through pyplot: saving it never changes the caller's
    backend (a notebook keeps its inline plots), and it is not kept alive by pyplot."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def plot_boxplots(rows: list[dict], dataset: str, metrics_shown=("mae", "psnr", "ms_ssim", "lpips"),
                  reference: str = "ddpm-avg"):
    """Box plots of the per-image scores, one panel per metric, like Figs. 1A-4A.

    Above each box the stars of Mood's median test against ``reference`` (DDPM-avg in the paper;
    *** p < .001, ** p < .01, * p < .05, ns). Metrics without any finite value (LPIPS without its
    weights) get no panel; the title says which were left out. Returns a
    :class:`matplotlib.figure.Figure`.
    """
    methods = list(dict.fromkeys(r["method"] for r in rows))
    per_metric = {metric: [np.array([r[metric] for r in rows if r["method"] == m], dtype=float) for m in methods]
                  for metric in metrics_shown}
    per_metric = {metric: [d[np.isfinite(d)] for d in data] for metric, data in per_metric.items()}
    shown = [metric for metric, data in per_metric.items() if any(len(d) for d in data)]
    left_out = [METRIC_LABELS.get(m, m) for m in metrics_shown if m not in shown]
    fig = _figure((3.6 * max(len(shown), 1), 3.6))
    axes = fig.subplots(1, max(len(shown), 1), squeeze=False)[0]
    for ax, metric in zip(axes, shown):
        data = per_metric[metric]
        ax.boxplot([d if len(d) else [np.nan] for d in data], showfliers=False)
        # after boxplot(), which replaces the tick labels with 1..N
        ax.set_xticks(range(1, len(methods) + 1), [LABELS.get(m, m) for m in methods], rotation=60, fontsize=7)
        ax.set_title(METRIC_LABELS.get(metric, metric))
        if reference in methods:
            ref = data[methods.index(reference)]
            top = max(d.max() for d in data if len(d))
            for k, (method, d) in enumerate(zip(methods, data), start=1):
                if method != reference and len(d) and len(ref):
                    ax.annotate(stats.stars(stats.mood_median_test(d, ref).p_value), (k, top), ha="center",
                                va="bottom", fontsize=8)
            ax.margins(y=0.12)
    if not shown:
        axes[0].set_axis_off()
        axes[0].text(0.5, 0.5, "no finite scores to plot", ha="center", va="center", transform=axes[0].transAxes)
    title = f"{dataset}: per-image scores (stars: Mood's median test vs {LABELS.get(reference, reference)})"
    if left_out:
        title += f"\n{', '.join(left_out)}: n/a for every image here, not shown"
    fig.suptitle(title, fontsize=10)
    return fig


def plot_averaging(curve: list[float], dataset: str):
    """Median MAE of DDPM-avg against the number of averaged samples (Fig. S1)."""
    fig = _figure((4.5, 3.2))
    ax = fig.subplots()
    ax.plot(range(1, len(curve) + 1), curve, "o-")
    ax.set_xlabel("number of averaged samples")
    ax.set_ylabel("median MAE ↓")
    ax.set_title(f"DDPM-avg on {dataset} (Fig. S1)")
    return fig


def plot_examples(result: dict, methods: list[str] | None = None, image: int = 0, error_maps: bool = True,
                  vmax: float | None = None, max_error: float | None = None):
    """Example restorations of one test image and their error maps, like Figs. 1C-D.

    ``result`` is what :func:`reproduce` returns. Top row: the raw input, each method and the GT,
    all on the same grey scale (0 .. the GT's 99.8th percentile unless ``vmax``); bottom row
    (``error_maps``): the absolute difference |prediction - GT| on one common scale (the 99th
    percentile over all shown methods unless ``max_error``), so that darker means closer to the GT.
    """
    predictions = result["predictions"]
    methods = list(predictions) if methods is None else list(methods)
    unknown = [m for m in methods if m not in predictions]
    if unknown:
        raise ValueError(f"no predictions for {unknown}; this result has {list(predictions)}.")
    gt = result["gt"][image]
    vmax = float(np.percentile(gt, 99.8)) if vmax is None else vmax
    errors = {m: np.abs(predictions[m][image] - gt) for m in methods}
    if max_error is None:
        max_error = float(np.percentile(np.stack(list(errors.values())), 99))
    n = len(methods) + 1
    fig = _figure((2.3 * n, 4.8 if error_maps else 2.5))
    axes = fig.subplots(2 if error_maps else 1, n, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for k, m in enumerate(methods):
        axes[0, k].imshow(predictions[m][image], cmap="magma", vmin=0, vmax=vmax)
        axes[0, k].set_title(LABELS.get(m, m), fontsize=9)
        if error_maps:
            shown = axes[1, k].imshow(errors[m], cmap="viridis", vmin=0, vmax=max_error)
            axes[1, k].set_title(f"|error|, MAE {errors[m].mean():.1f}", fontsize=8)
    axes[0, -1].imshow(gt, cmap="magma", vmin=0, vmax=vmax)
    axes[0, -1].set_title("GT", fontsize=9)
    if error_maps:
        fig.colorbar(shown, ax=axes[1, -1], fraction=0.9, label="|prediction - GT| (grey levels)")
    return fig


def choose_dataset(name: str) -> tuple[str, str | None]:
    """The dataset a chapter can run on: ``(name, None)`` when the real data is in its default
    folder (``teachdiff.data.registry.default_root``), else ``("synthetic-<case>", why)`` with the
    loader's own message saying what is missing and how to get it. Synthetic names pass through."""
    from teachdiff.data import get_dataset_info
    from teachdiff.data.pairs import resolve_root, find_pairs

    info = get_dataset_info(name)
    if info.is_synthetic:
        return name, None
    try:
        find_pairs(resolve_root(info, None), info)
    except (FileNotFoundError, ValueError) as err:
        return f"synthetic-{name}", str(err)
    return name, None


def dataset_card(name: str) -> str:
    """A markdown table of a dataset's registry entry: source, citation, licence, pixel size, the
    split of Table S1 and the folder layout the loaders expect (``teachdiff.data.registry``)."""
    from teachdiff.data import get_dataset_info

    info = get_dataset_info(name)
    split = "-" if info.table_s1 is None else " / ".join(str(n) for n in info.table_s1) + " patches of 256²"
    if info.table_s1_sub_fovs:
        split += " (" + " / ".join(str(n) for n in info.table_s1_sub_fovs) + " distinct sub-FOVs)"
    if info.fixed_split:
        split += "; fixed: " + ", ".join(f"{s} = FOV {' '.join(v)}" for s, v in info.fixed_split.items())
    rows = [("dataset", f"`{info.name}`: {info.title}"), ("raw → GT", info.modality), ("source", info.source),
            ("cite", info.citation), ("licence", info.licence),
            ("pixel size", f"{info.pixel_size_nm:g} nm ({info.pixel_size_source})"),
            ("bit depth", str(info.bit_depth)), ("registration", "yes (§S1.1)" if info.register else "no"),
            ("FOVs", "-" if info.n_fov is None else f"{info.n_fov} of {' x '.join(map(str, info.fov_shape or ()))} px"),
            ("train / val / test (Table S1)", split)]
    if info.download:
        rows.append(("download", f"`teachdiff data download {info.name}` ({info.download.landing_page})"))
    lines = ["| | |", "|---|---|"] + [f"| {k} | {v.replace('|', '/')} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def comparison_markdown(table: list[dict], metrics_shown=("mae", "psnr", "ms_ssim", "lpips"),
                        digits: int = 2) -> str:
    """A compact markdown table of ``reproduce``'s medians next to the paper's: one column group
    "ours / paper / Δ" per metric (Δ = ours - paper; n/a where a value does not exist)."""
    header = "| method | " + " | ".join(f"{METRIC_LABELS.get(m, m)}<br>ours / paper / Δ" for m in metrics_shown) + " |"
    lines = [header, "|---" * (len(metrics_shown) + 1) + "|"]
    for row in table:
        cells = []
        for m in metrics_shown:
            places = 0 if m == "resolution" else digits
            cells.append(" / ".join([_ours(row, m, places)] + [_fmt(row[f"{m}{suffix}"], places)
                                                             for suffix in ("_paper", "_diff")]))
        lines.append(f"| {LABELS.get(row['method'], row['method'])} | " + " | ".join(cells) + " |")
    lines += _no_peak_footnote(table, metrics_shown)
    return "\n".join(lines) + "\n"


LOWER_IS_BETTER = ("mae", "nrmse", "lpips")


def ranking(table: list[dict], metric: str = "mae", methods=None) -> list[str]:
    """The methods of a median table ordered best first by ``metric`` (NaNs last); ``methods``
    restricts it (default: every row but the raw input and the single DDPM sample)."""
    rows = [r for r in table if (r["method"] in methods if methods is not None else r["method"] not in ("raw", "ddpm"))]
    sign = 1 if metric in LOWER_IS_BETTER else -1
    return [r["method"] for r in sorted(rows, key=lambda r: (not np.isfinite(r[metric]), sign * r[metric]))]


def describe_table(table: list[dict], metrics_shown=("mae", "psnr", "ms_ssim", "nrmse", "pearson"),
                   reference: str = "ddpm-avg", alpha: float = 0.05) -> str:
    """The executed result of one median table in words: the order by median MAE, which method is
    best on each metric, and each method against ``reference`` by the paired Wilcoxon test.
    Generated from the numbers, so that a chapter's conclusion cannot drift from its table."""
    rows = {r["method"]: r for r in table}
    order = ranking(table, "mae")
    label = lambda m: LABELS.get(m, m)  # noqa: E731
    text = ["By median MAE (lower is better): " + ", ".join(f"{label(m)} {rows[m]['mae']:.2f}" for m in order) + "."]
    shown = [m for m in metrics_shown if any(np.isfinite(r[m]) for r in table)]
    best = {m: ranking(table, m)[0] for m in shown}
    winners = {}
    for metric, method in best.items():
        winners.setdefault(method, []).append(METRIC_LABELS.get(metric, metric).split(" ")[0])
    text.append("Best median: " + "; ".join(f"{label(m)} on {', '.join(ms)}" for m, ms in winners.items()) + ".")
    if reference in rows:
        compared = []
        for m in order:
            p = rows[m].get("mae_wilcoxon_p")
            if m == reference or p is None:
                continue
            side = "lower" if rows[m]["mae"] < rows[reference]["mae"] else "higher"
            verdict = "a paired difference" if p < alpha else "not shown to differ"
            compared.append(f"{label(m)} {side} (p {'' if _p(p).startswith('<') else '= '}{_p(p)}, {verdict})")
        if compared:
            text.append(f"Against {label(reference)}, per-patch MAE, Wilcoxon signed-rank: {'; '.join(compared)}.")
    return " ".join(text)


def agreement_markdown(table: list[dict], metrics_shown=("mae", "psnr", "ms_ssim")) -> str:
    """Where our ranking agrees with the paper's: for each method, is DDPM-avg better than it,
    here and in the paper (on the real dataset the rows' ``_paper`` values come from)? Lower is
    better for MAE, NRMSE and LPIPS, higher for the rest. Rows without a paper value are left out."""
    def better(a: float, b: float, metric: str) -> bool:
        return a < b if metric in LOWER_IS_BETTER else a > b

    reference = next((r for r in table if r["method"] == "ddpm-avg"), None)
    if reference is None:
        return "DDPM-avg is not in this table: nothing to compare.\n"
    lines = ["| DDPM-avg better than | " + " | ".join(f"{METRIC_LABELS.get(m, m)}: ours / paper" for m in metrics_shown)
             + " |", "|---" * (len(metrics_shown) + 1) + "|"]
    agree = total = 0
    for row in table:
        if row["method"] in ("ddpm-avg", "raw"):
            continue
        cells = []
        for m in metrics_shown:
            ours_p, paper_p = reference[m], reference[f"{m}_paper"]
            if any(math.isnan(v) for v in (ours_p, paper_p, row[m], row[f"{m}_paper"])):
                cells.append("n/a")
                continue
            ours, paper = better(ours_p, row[m], m), better(paper_p, row[f"{m}_paper"], m)
            agree, total = agree + (ours == paper), total + 1
            cells.append(f"{'yes' if ours else 'no'} / {'yes' if paper else 'no'}" + ("" if ours == paper else " ✗"))
        if any(c != "n/a" for c in cells):
            lines.append(f"| {LABELS.get(row['method'], row['method'])} | " + " | ".join(cells) + " |")
    lines += ["", f"The pairwise order agrees with the paper's in {agree} of {total} comparisons (✗: it differs)."]
    return "\n".join(lines) + "\n"
