"""What the book's reproduction chapters (8-12) share, so that each chapter keeps only what it alone teaches.

Chapters 9-12 run one comparison per dataset of the paper: choose the data (the real dataset when
it is on the machine, else its synthetic stand-in), run :func:`teachdiff.evaluation.reproduce.reproduce`, show
the median tables under the paper's post-processing and under one that treats every method alike,
with bootstrap confidence intervals and the paired test, and say what the tables show. The words
are generated from the numbers, so that a sentence holds in quick and in full mode and whatever
order comes out: :class:`Chapter`, :func:`paired_markdown`, :func:`order_change`,
:func:`verdict`, :func:`delta_note`, :func:`test_split_note`, :func:`paired_test_note`.

The experiment each chapter has of its own lives in :mod:`teachdiff.book.experiments`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from teachdiff.evaluation import metrics
from teachdiff.evaluation.reproduce import (
    LABELS,
    LOWER_IS_BETTER,
    METRIC_LABELS,
    POSTPROCESSING_NOTES,
    ReproduceConfig,
    chapter_config,
    choose_dataset,
    grey_levels,
    ranking,
    reproduce,
)

__all__ = ["MODELS", "Chapter", "label", "training_markdown", "floor_note", "paired_markdown", "tables_markdown",
           "order_change", "verdict", "smallest_wilcoxon_p", "paired_test_note", "delta_note", "test_split_note",
           "winners"]

MODELS = ("ddpm", "care", "n2v", "pix2pix", "rcan")
"""Every learned model of the benchmark (§3.6) and the DDPM."""


def label(method: str) -> str:
    """The name a table prints for ``method`` (``ddpm-avg`` -> DDPM-avg)."""
    return LABELS.get(method, method)


# ---------------------------------------------------------------------------------------------
# The comparison every reproduction chapter runs
# ---------------------------------------------------------------------------------------------


@dataclass
class Chapter:
    """One reproduction chapter's comparison: which data and preset, the config, and (after
    :meth:`run`) the result of :func:`teachdiff.evaluation.reproduce.reproduce`."""

    name: str  # the paper's dataset the chapter is about
    dataset: str  # what runs: ``name`` when its data is on the machine, else ``synthetic-<name>``
    missing: str | None  # why the real data was not used (None: it was, or a stand-in was asked for)
    preset: str
    competitor: str  # the paper's strongest benchmark model on this dataset
    cfg: ReproduceConfig
    out_dir: Path
    result: dict | None = None
    seconds: float | None = None
    _splits: dict | None = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def choose(cls, name: str, competitor: str, postprocessing: tuple[str, ...] | None = None) -> "Chapter":
        """The chapter on ``name``: the real data when it is in its default folder, else the
        stand-in; the preset of :func:`teachdiff.training.presets.chapter_preset` (``quick`` in quick mode);
        :func:`teachdiff.evaluation.reproduce.chapter_config` with the post-processing modes to tabulate
        (default: the config's, ``paper`` and ``none``)."""
        from teachdiff.training.presets import chapter_preset
        from teachdiff.training.config import runs_dir

        dataset, missing = choose_dataset(name)
        preset = chapter_preset(dataset, *MODELS)
        cfg = chapter_config(dataset, preset, competitor)
        if postprocessing is not None:
            cfg = dataclasses.replace(cfg, postprocessing=tuple(postprocessing))
        return cls(name, dataset, missing, preset, competitor, cfg, runs_dir() / f"reproduce-{dataset}-{preset}")

    @classmethod
    def stand_in(cls, name: str, competitor: str) -> "Chapter":
        """The chapter's comparison on the synthetic stand-in with the model zoo's quick models,
        whatever data is on the machine: for the experiments that simulate new captures."""
        from teachdiff.training.config import runs_dir

        dataset = f"synthetic-{name}"
        return cls(name, dataset, None, "quick", competitor, chapter_config(dataset, "quick", competitor),
                   runs_dir() / f"reproduce-{dataset}-quick")

    @property
    def synthetic(self) -> bool:
        return self.dataset.startswith("synthetic-")

    def reference(self) -> metrics.IntensityReference:
        """The GT training distribution that §3.6's map targets: the run's when it ran, else
        computed as ``reproduce`` does (the first 64 training patches at the test patch size)."""
        if self.result is not None:
            return self.result["reference"]
        train = self.splits()["train"]
        return metrics.IntensityReference.from_images(
            np.stack([grey_levels(train[i]["y"][0]) for i in range(min(64, len(train)))]))

    def run(self, progress: bool = False) -> dict:
        """Restore and score the test patches (:func:`teachdiff.evaluation.reproduce.reproduce`); keeps and
        returns the result."""
        start = time.perf_counter()
        self.result = reproduce(self.cfg, self.out_dir, progress=progress)
        self.seconds = time.perf_counter() - start
        return self.result

    def splits(self) -> dict:
        """The train/val/test splits as ``reproduce`` cuts them (patches of ``cfg.test_patch_size``),
        made once per chapter."""
        from teachdiff.data import make_datasets

        if self._splits is None:
            self._splits = make_datasets(self.dataset, patch_size=self.cfg.test_patch_size,
                                         quick=self.preset == "quick", seed=self.cfg.seed, augmentation=False,
                                         progress=False)
        return self._splits

    def test_set(self):
        """The test split as ``reproduce`` cuts it."""
        return self.splits()["test"]

    def _models_dir(self, model: str) -> Path | None:
        """Where ``reproduce`` keeps ``model``'s run (None: the shared folders of ``train_or_load``)."""
        return None if self.cfg.shared_models else self.out_dir / "models" / model

    def method(self, model: str):
        """One trained model of this comparison (the zoo's or the run's), ready to restore."""
        from teachdiff.training.runs import train_or_load

        return train_or_load(self.dataset, self.preset, model, self._models_dir(model), seed=self.cfg.seed,
                             progress=False, use_zoo=self.cfg.use_zoo)

    def checkpoint(self, model: str) -> Path:
        """The checkpoint file of one model of this comparison (the zoo's file or the run's ``best.pt``)."""
        from teachdiff.training.runs import trained_checkpoint

        return trained_checkpoint(self.dataset, self.preset, model, self._models_dir(model), seed=self.cfg.seed,
                                  use_zoo=self.cfg.use_zoo)


def training_markdown(dataset: str, models, preset: str) -> str:
    """Markdown: what each model of a comparison got in training. A model zoo entry's record of
    the training protocol (``teachdiff.training.protocol``: steps x batch = images seen, learning rate,
    best step, flags) when it has one; for a model the zoo lacks, the preset it is trained with."""
    from teachdiff.store import zoo
    from teachdiff.training.presets import train_preset

    lines = ["| model | source | steps × batch = images | learning rate | best step | flags |", "|---" * 6 + "|"]
    for model in models:
        entry = zoo.find(dataset, model, preset)
        if entry is None:
            cfg = train_preset(dataset, preset, model)[0]
            steps = cfg.total_steps
            budget = "n/a" if steps is None else f"{steps:,} × {cfg.batch_size} = {steps * cfg.batch_size:,}"
            cells = [f"trained here: the `{preset}` preset", budget, f"{cfg.lr:g}", "", ""]
        elif entry.training:
            t = entry.training
            cells = [f"zoo: `{entry.name}` (`teachdiff.training.protocol`)",
                     f"{t['steps']:,} × {t['batch']} = {t['images_seen']:,}", f"{t['lr']:g}",
                     str(t.get("best_step", "")), "; ".join(t.get("flags", [])) or "none"]
        else:
            cells = [f"zoo: `{entry.name}` (trained before `teachdiff.training.protocol`; no record)",
                     f"{entry.steps:,} steps" if entry.steps else "n/a", "", "", ""]
        lines.append(f"| {label(model)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def floor_note(table: list[dict], filters=("gaussian", "nlm")) -> str:
    """Whether every learned method (and the single DDPM sample) has a lower median MAE than the
    better of the two classical filters, the floor a model must clear to have learned more than
    smoothing; in words."""
    rows = {r["method"]: r for r in table}
    present = [m for m in filters if m in rows]
    if not present:
        return "no classical filter in this table."
    best = min(present, key=lambda m: rows[m]["mae"])
    floor = rows[best]["mae"]
    learned = [m for m in rows if m not in present and m != "raw"]
    below = [m for m in learned if not rows[m]["mae"] < floor]
    if not below:
        return (f"every learned method has a lower median MAE than the better filter "
                f"({label(best)}, {floor:.2f}).")
    return (", ".join(f"{label(m)} ({rows[m]['mae']:.2f})" for m in below)
            + f" {'does' if len(below) == 1 else 'do'} not beat the better filter ({label(best)}, {floor:.2f}).")


def test_split_note(chapter: Chapter, test_set=None) -> str:
    """How many test patches the split has, how many ``reproduce`` scores, and how many distinct
    fields of view those are (the unit a test of significance should count)."""
    test_set = chapter.test_set() if test_set is None else test_set
    n_scored = len(test_set) if chapter.cfg.test_images is None else min(chapter.cfg.test_images, len(test_set))
    patches = test_set.patches
    sub_fovs = [patches.sub_fov(int(test_set.indices[i])) for i in range(n_scored)]
    fovs = {s.split("/")[0] for s in sub_fovs}
    all_fovs = {patches.sub_fov(int(j)).split("/")[0] for j in test_set.indices}
    return (f"The test split of this run has {len(test_set)} patches of {chapter.cfg.test_patch_size}² from "
            f"{len(all_fovs)} field(s) of view; `reproduce` scores the first {n_scored} "
            f"(`cfg.test_images = {chapter.cfg.test_images}`), which are {len(set(sub_fovs))} distinct sub-FOV(s) "
            f"of {len(fovs)} field(s) of view.")


def paired_markdown(table: list[dict], metrics_shown=("psnr", "ms_ssim", "lpips", "pearson"),
                    reference: str = "ddpm-avg") -> str:
    """One median table (one post-processing mode) with what is needed to judge a difference:
    the median MAE with its percentile-bootstrap 95 % CI, further metrics' medians and, against
    ``reference``, the median of the per-patch MAE differences with the paired Wilcoxon
    signed-rank p-value and the stars of Mood's (unpaired) median test. Metrics without any
    finite value (LPIPS without its weights) are left out."""
    shown = [m for m in metrics_shown if any(np.isfinite(r[m]) for r in table)]
    header = (["method", "MAE [95 % CI]"] + [METRIC_LABELS.get(m, m) for m in shown]
              + [f"ΔMAE vs {label(reference)} (median per patch)", "Wilcoxon p", "Mood"])
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for row in table:
        cells = [label(row["method"]), f"{row['mae']:.2f} [{row['mae_low']:.2f}, {row['mae_high']:.2f}]"]
        cells += [_fmt(row[m], 3 if m in ("ms_ssim", "pearson", "lpips") else 2) for m in shown]
        if row["method"] == reference or "mae_wilcoxon_p" not in row:
            cells += ["(reference)" if row["method"] == reference else "", "", ""]
        else:
            cells += [f"{row['mae_median_difference']:+.2f}", _p(row["mae_wilcoxon_p"]), row.get("mae_vs_ddpm_avg", "")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def tables_markdown(tables: dict[str, list[dict]], **options) -> str:
    """:func:`paired_markdown` for each post-processing mode of ``reproduce``'s ``tables``, each
    under a line that says what the mode does."""
    return "\n".join(f"{POSTPROCESSING_NOTES[mode]}\n\n{paired_markdown(table, **options)}"
                     for mode, table in tables.items())


def _fmt(value, digits: int = 2) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _p(value) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.2g}"


def _order_text(table: list[dict], metric: str) -> str:
    rows = {r["method"]: r for r in table}
    return ", ".join(f"{label(m)} {rows[m][metric]:.2f}" for m in ranking(table, metric))


def order_change(tables: dict[str, list[dict]], metric: str = "mae") -> str:
    """How the order of the methods by median ``metric`` changes between the post-processing
    modes of ``tables`` (the raw input and the single DDPM sample left out, as in
    :func:`teachdiff.evaluation.reproduce.ranking`), in words."""
    modes = list(tables)
    orders = {mode: ranking(tables[mode], metric) for mode in modes}
    name = METRIC_LABELS.get(metric, metric).split(" ")[0]
    text = [f"By median {name}, best first: " + "; ".join(f"under `{mode}` {_order_text(tables[mode], metric)}"
                                                          for mode in modes) + "."]
    first, *others = modes
    for mode in others:
        if orders[mode] == orders[first]:
            text.append(f"The order is the same under `{mode}` as under `{first}`.")
            continue
        moves = [f"{label(m)} from {orders[first].index(m) + 1} to {orders[mode].index(m) + 1}"
                 for m in orders[first] if m in orders[mode] and orders[first].index(m) != orders[mode].index(m)]
        text.append(f"From `{first}` to `{mode}` the places change: " + ", ".join(moves) + ".")
        if orders[mode][0] != orders[first][0]:
            text.append(f"The best method changes from {label(orders[first][0])} to {label(orders[mode][0])}.")
    return " ".join(text)


def verdict(tables: dict[str, list[dict]], preset: str, ddpm_parameters: int | None = None,
            reference: str = "ddpm-avg") -> str:
    """The executed result in words: :func:`teachdiff.evaluation.reproduce.describe_table` for each mode and,
    when ``reference`` (DDPM-avg) is not the best by median MAE under some mode, why that can happen
    with this ``preset`` and what would test the paper's claim."""
    from teachdiff.evaluation.reproduce import describe_table

    text = [f"Under `{mode}`: {describe_table(table, reference=reference)}" for mode, table in tables.items()]
    beaten = {mode: ranking(table, "mae")[0] for mode, table in tables.items() if ranking(table, "mae")[0] != reference}
    if not beaten:
        text.append(f"{label(reference)} has the lowest median MAE under every mode shown, as in the paper.")
        return "\n\n".join(text)
    by_best: dict[str, list[str]] = {}
    for mode, best in beaten.items():
        by_best.setdefault(best, []).append(f"`{mode}`")
    where = "; ".join(f"{label(best)} has under {' and '.join(modes)}" for best, modes in by_best.items())
    text.append(f"Here {label(reference)} does not have the lowest median MAE: {where}.")
    size = f" of {ddpm_parameters:,} parameters" if ddpm_parameters else ""
    if preset == "quick":
        why = (f"The quick DDPM is a CPU-sized U-Net{size} trained on 64² patches; it must learn the whole "
               "conditional distribution p(y | x), while CARE or UNet-RCAN learn only one central value of it "
               "(a median or a mean), which is the easier target for a network this small and this briefly "
               "trained. A quick run therefore does not test the paper's claim; the paper preset on a GPU "
               "(`teachdiff reproduce DATASET --preset paper`, and the model zoo's GPU models when they are "
               "released) does.")
    elif preset == "colab":
        why = (f"The colab preset trains the paper's network{size} for one Colab session, far shorter than "
               "the paper; the DDPM, which learns the whole conditional distribution, is likely to need that "
               "training more than a regression model does. The paper preset is what tests the paper's claim.")
    else:
        why = ("This run uses the paper's settings, with one seed per model: repeat it with other seeds before "
               "reading a difference of this size as a contradiction of the paper.")
    text.append(why)
    return "\n\n".join(text)


def smallest_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p-value the exact Wilcoxon signed-rank test can give with ``n``
    pairs and no ties: every difference of one sign, probability ``2 / 2**n``."""
    if n < 1:
        raise ValueError(f"a paired test needs at least one pair, got n={n}.")
    return min(1.0, 2.0 / 2**n)


def paired_test_note(table: list[dict], alpha: float = 0.05) -> str:
    """What the paired test can and cannot say with this table's number of test patches."""
    n = max(r["n_images"] for r in table)
    floor = smallest_wilcoxon_p(n)
    if floor >= alpha:
        power = (f"With {n} test patches the paired test cannot reach p < {alpha:g}: its smallest possible "
                 f"p-value is 2/2^{n} = {floor:.3g}, reached when every patch favours the same method. ")
    else:
        power = f"With {n} test patches the paired test can reach p = {floor:.2g} at the least. "
    text = power + ("A p-value above the threshold means *not shown to differ*, never *equivalent*: the "
                    "confidence intervals show how large a difference the data still allow.")
    starred = [label(r["method"]) for r in table
               if r.get("mae_vs_ddpm_avg", "ns") not in ("ns", "") and r.get("mae_wilcoxon_p", 0) >= alpha]
    if starred:
        text += (f" Mood's test stars {', '.join(starred)} where the paired test does not reach {alpha:g}: it "
                 f"counts the {2 * n} scores of the two methods as independent (a complete separation of {n} "
                 f"against {n} is already unlikely by chance), ignores that they come in pairs, and its "
                 "chi-squared approximation is rough with so few scores.")
    return text


def delta_note(chapter: Chapter) -> str:
    """What Δ = ours - paper holds in this run, from its configuration: every way the run differs
    from the paper's measurement, so that no one reads Δ as the error of the method alone."""
    from teachdiff.data import get_dataset_info
    from teachdiff.inference.sampling import PAPER_SAMPLING

    cfg = chapter.cfg
    info = get_dataset_info(chapter.dataset)
    parts = []
    if chapter.synthetic:
        parts.append(f"different data (the stand-in `{chapter.dataset}` simulates the {chapter.name} data; the "
                     "paper's numbers are on the real data)")
    elif info.fixed_split:
        parts.append("the paper's test field of view (the split is fixed), but not necessarily the same patches")
    else:
        parts.append("a test split of the paper's size drawn by teachdiff: which fields of view the paper "
                     "tested on is not published")
    models = {"quick": "the model zoo's CPU-sized quick models",
              "colab": "the colab preset (the paper's network, trained for one Colab session, far shorter "
                       "than the paper)",
              "paper": "the paper's training settings"}[chapter.preset]
    parts.append(f"{models}, one seed each (training and sampling are random; the spread between seeds is "
                 "not measured here)")
    n = "all" if cfg.test_images is None else str(cfg.test_images)
    parts.append(f"{n} test patches of {cfg.test_patch_size}²")
    sampler = f"{cfg.sampler}" + ("" if cfg.sampler == "ddpm" else f" with {cfg.steps} steps")
    if (cfg.n_avg, cfg.sampler) != (PAPER_SAMPLING.samples, PAPER_SAMPLING.sampler):
        parts.append(f"DDPM-avg of {cfg.n_avg} samples of {sampler} instead of the paper's {PAPER_SAMPLING}")
    parts.append("the post-processing of each table (the paper's §3.6 names no particular linear map; ours is a "
                 "mean/std match)")
    align = cfg.align if cfg.align is not None else bool(chapter.result and chapter.result["shifts"])
    parts.append("our re-alignment of every prediction to the GT (§4.1)" if align else "no re-alignment (the paper "
                 "describes one for the microtubules, §4.1)")
    return ("Δ = ours - paper holds all of these at once: " + "; ".join(parts) + ". It is therefore not the "
            "reproduction error of the method, and no run in this book measures that: it needs the real data, "
            "the paper preset and several seeds. Read the *pattern* of the table (which method is better than "
            "which, and by how much relative to the confidence intervals), not Δ itself.")


def winners(table: list[dict], metric: str, digits: int = 2, methods=None) -> list[str]:
    """Every method with the best median ``metric`` at the precision a table prints (``digits``):
    a tie is reported as a tie, not broken by the order of the rows. Lower is better for MAE,
    NRMSE and LPIPS, higher for the rest; for the resolution ratio, closest to 1 (the GT)."""
    rows = [r for r in table if (r["method"] in methods if methods is not None else r["method"] != "raw")
            and np.isfinite(r.get(metric, math.nan))]
    if not rows:
        return []
    if metric == "resolution_ratio":
        key = lambda r: round(abs(r[metric] - 1), digits)  # noqa: E731
    else:
        sign = 1 if metric in LOWER_IS_BETTER else -1
        key = lambda r: sign * round(r[metric], digits)  # noqa: E731
    best = min(key(r) for r in rows)
    return [r["method"] for r in rows if key(r) == best]
