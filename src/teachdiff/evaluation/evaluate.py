"""Score folders of restored images against ground truth, as in the paper's tables.

    scored = evaluate_folders("results/", "data/test/gt", pixel_size=15)   # Python
    teachdiff evaluate --pred results/ --gt data/test/gt --pixel-size 15 --out scores.csv

The command line (:mod:`teachdiff.cli.evaluate`) calls :func:`evaluate_folders`; its flags are the
function's parameters (``--pred-range`` is ``pred_range``), and its messages name the flags.

``--pred`` is either a folder of images (one method) or a folder with one sub-folder per method
(``results/DDPM-avg/*.tif``, ``results/CARE/*.tif``; ``--methods`` picks and orders them).
Predictions are paired with ground-truth images by file name without extension (``img_001.png``
pairs with ``img_001.tif``). ``teachdiff restore``'s output folder works as it is: a prediction
``img_001_mean.tif`` (the DDPM's DDPM-avg, the mean of its samples) or ``img_001_restored.tif``
(a baseline's output) pairs with ``img_001``; restore's other maps (``_sample``, ``_std``,
``_entropy``) are not scored, and where a TIFF and a PNG share a name (restore's 8-bit preview)
the TIFF is used. Only images that every method and the ground truth have are scored; how many
were skipped, and which, is printed. Every pair is scored with :func:`teachdiff.evaluation.metrics.evaluate`;
the per-image scores go to ``--out`` (CSV, never overwritten unless ``--overwrite``; checked to be
writable before any scoring) and the median table, with bootstrap confidence intervals and Mood's
test against the first method (stars as in Fig. S3), is printed.

Reading images: TIFF with tifffile, PNG with Pillow, 2-D grey images only (a grey image stored as
RGB is accepted). The metrics use the 0..255 scale: 8-bit images are used as they are, float
images are assumed to be on 0..255 already (except restore's float TIFFs of 16-bit inputs, whose
metadata say so: they are divided by 257 like 16-bit images), and 16-bit images are divided by
257 (which maps 0..65535 exactly onto 0..255, the usual 16 -> 8-bit rule). That rule is right only
when the 16-bit files use the full 16-bit range; if your camera data use e.g. 12 bits, pass
``--bit-depth 12``: then every image, integer or float (as ``teachdiff restore --bit-depth 12``
writes it), is on 0..4095 and is multiplied by 255 / 4095. Without it, 16-bit ground truth whose
values fit in 12 or 14 bits gets a warning that suggests the flag.

Predictions on another scale than the ground truth (floats in [0, 1], network outputs in
[-1, 1], floats on the 16-bit scale) would give wrong numbers silently; they are refused with a
message unless ``--pred-range LOW HIGH`` says what the prediction values span (they are then
mapped linearly onto 0..255). Predictions holding NaN or infinite values (a failed restoration)
are refused with the file names and counts. A resolution at the first radius of the decorrelation
grid (no peak: 2 x 49 pixels, a property of the grid, not of the image) is reported as nan
(:func:`teachdiff.evaluation.metrics.without_grid_floor`).

MS-SSIM uses 5 scales, as the paper, which needs images of at least 176 x 176 pixels; smaller
images are refused with the number of scales that fits, which ``--ms-ssim-scales`` accepts (the
exponents of the scales kept are renormalised: such values are not comparable with the paper's).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from teachdiff.core.paper import METRICS as PAPER_METRICS

if TYPE_CHECKING:
    import numpy as np


IMAGE_SUFFIXES = (".tif", ".tiff", ".png")
TABLE_METRICS = PAPER_METRICS
"""The columns of every median table, ``teachdiff evaluate``'s and ``teachdiff reproduce``'s: the
paper's metrics (Tables 2-5, S3-S5), so that ours can sit beside its numbers."""
UINT16_DIVISOR = 257.0
MS_SSIM_SCALES = 5  # the paper's (torchmetrics' default)
SCORED_RESTORE_OUTPUTS = {"_mean": "DDPM-avg, the mean of the samples", "_restored": "a baseline's output"}
"""``teachdiff restore``'s output name suffixes that are predictions, and what they hold."""
UNSCORED_RESTORE_OUTPUTS = ("_sample", "_std", "_entropy")
"""restore's single sample and uncertainty maps: not predictions of the DDPM-avg row."""

OptionName = Callable[..., str]
"""``option(name)`` or ``option(name, value)``: how a message names a parameter, and a value for it
written as on a command line (``"0 1"``), to whoever called :func:`evaluate_folders`."""


def python_option(name: str, value: str | None = None) -> str:
    """Messages to a Python caller name the keyword: ``pred_range=(0, 1)``, ``ms_ssim_scales=4``."""
    if value is None:
        return name
    items = value.split()
    return f"{name}={items[0]}" if len(items) == 1 else f"{name}=({', '.join(items)})"


@dataclass
class FolderScores:
    """What :func:`evaluate_folders` measured."""

    rows: list[dict]
    """One per method and image, method by method: ``method``, ``image`` (the file name without
    extension), ``pixel_size`` and the scores of :func:`teachdiff.evaluation.metrics.evaluate`."""
    table: list[dict]
    """:func:`median_table_of_rows` of ``rows``, the first method the reference of Mood's test."""
    notes: list[str]
    """What a reader of the scores should know: images skipped (named), restore's outputs scored or
    left out, PNG previews passed over, 16-bit images converted, resolutions without a peak."""

    @property
    def methods(self) -> list[str]:
        """The methods in table order; the first is the reference of the tests."""
        return [row["method"] for row in self.table]


def evaluate_folders(
    pred: str | Path,
    gt: str | Path,
    methods: Sequence[str] | None = None,
    *,
    pixel_size: float = 1.0,
    pred_range: tuple[float, float] | None = None,
    bit_depth: int | None = None,
    lpips: bool = True,
    ms_ssim_scales: int = MS_SSIM_SCALES,
    progress: bool = True,
    option: OptionName = python_option,
) -> FolderScores:
    """Score the predictions in ``pred`` against the ground truth in ``gt`` (the module's docstring
    says how files pair and which scales are read).

    ``pred`` holds one method's images or one sub-folder per method (``methods`` picks and orders
    them). ``pixel_size`` is the unit of the resolution; ``pred_range`` the value range of the
    predictions, mapped linearly onto 0..255; ``bit_depth`` the bit depth of every image when not
    8 or 16; ``lpips=False`` skips LPIPS (nan); ``ms_ssim_scales`` below 5 scores images under
    176 x 176 (not comparable with the paper's values). Every check runs before any scoring;
    problems are errors whose messages name parameters through ``option``.
    """
    import sys

    import numpy as np
    from tqdm.auto import tqdm

    from teachdiff.evaluation import metrics

    _check_settings(pixel_size, pred_range, bit_depth, ms_ssim_scales, option)
    notes: list[str] = []
    gt_files = _image_files(Path(gt), option("gt"), notes)
    method_dirs = _method_dirs(Path(pred), methods, option)
    predictions = {
        method: _match_predictions(_image_files(folder, f"predictions of {method}", notes), gt_files, method, notes,
                                   option)
        for method, folder in method_dirs.items()
    }
    names = _common_names(predictions, gt_files, notes, option)
    converted_16bit = _check_ranges(predictions, gt_files, names, pred_range, bit_depth, ms_ssim_scales, option)

    rows = []
    no_peak = 0
    for method, matched in predictions.items():
        for name in tqdm(names, desc=f"scoring {method}", file=sys.stderr, disable=not progress):
            prediction = _map_range_to_255(read_image_255(matched[name], bit_depth, option)[0], pred_range)
            truth = read_image_255(gt_files[name], bit_depth, option)[0]
            measured = metrics.evaluate(prediction, truth, pixel_size=pixel_size, lpips=lpips,
                                        ms_ssim_scales=ms_ssim_scales)
            scores = metrics.without_grid_floor(measured, pixel_size)
            no_peak += np.isfinite(measured["resolution"]) and not np.isfinite(scores["resolution"])
            rows.append({"method": method, "image": name, "pixel_size": pixel_size, **scores})
    if no_peak:
        notes.append(f"{no_peak} prediction(s) have no decorrelation peak beyond the grid's first radius: their "
                     "resolution is not a measurement and is reported as nan (n/a), see metrics.without_grid_floor.")
    if converted_16bit:
        notes.append(f"{converted_16bit} 16-bit image(s) were put on 0..255 by dividing by 257.")
    return FolderScores(rows, median_table_of_rows(rows), notes)


def median_table_of_rows(rows: list[dict], reference: str | None = None) -> list[dict]:
    """The median table of per-image score rows (dicts with ``method`` and every metric of
    :data:`TABLE_METRICS`), one row per method in the order they come: for each metric ``m`` what
    :func:`teachdiff.evaluation.stats.median_table` gives (``m``, ``m_low``, ``m_high``, and Mood's
    test against ``reference`` in ``m_p`` and ``m_stars``; the first method when ``reference`` is
    None or not among them), ``m_undefined`` (images without a value, e.g. no decorrelation peak)
    and ``n_images``."""
    import numpy as np

    from teachdiff.evaluation import stats

    scores = stats.scores_from_rows(rows, TABLE_METRICS)
    compared = reference if reference in scores else next(iter(scores), None)
    table = stats.median_table(scores, TABLE_METRICS, reference=compared)
    for row in table:
        for metric in TABLE_METRICS:
            values = np.asarray(scores[row["method"]][metric], dtype=float)
            row[f"{metric}_undefined"] = int((~np.isfinite(values)).sum())
        row["n_images"] = len(scores[row["method"]][TABLE_METRICS[0]])
    return table


def write_scores_csv(path: str | Path, rows: list[dict]) -> None:
    """Per-image score rows as CSV, one column per key of the first row."""
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def median_table_markdown(table: list[dict]) -> str:
    """A table of :func:`median_table_of_rows` in markdown: ``median [95 % CI] stars`` for each of
    :data:`TABLE_METRICS`, the best median in bold."""
    from teachdiff.evaluation import metrics, stats

    return stats.format_markdown(
        table,
        TABLE_METRICS,
        labels={name: metrics.METRICS[name].label for name in TABLE_METRICS},
        higher_is_better={name: metrics.METRICS[name].higher_is_better for name in TABLE_METRICS},
    )


def _check_settings(pixel_size: float, pred_range: tuple[float, float] | None, bit_depth: int | None,
                    ms_ssim_scales: int, option: OptionName) -> None:
    if not pixel_size > 0:
        raise ValueError(f"{option('pixel_size')} must be positive, got {pixel_size}.")
    if pred_range is not None and not pred_range[0] < pred_range[1]:
        raise ValueError(f"{option('pred_range', 'LOW HIGH')} needs LOW < HIGH, got {pred_range[0]:g} "
                         f"{pred_range[1]:g}.")
    if bit_depth is not None and not 1 <= bit_depth <= 16:
        raise ValueError(f"{option('bit_depth')} must be between 1 and 16 (e.g. 12), got {bit_depth}.")
    if not 1 <= ms_ssim_scales <= MS_SSIM_SCALES:
        raise ValueError(f"{option('ms_ssim_scales')} must be between 1 and {MS_SSIM_SCALES}, got {ms_ssim_scales}.")


def read_image_255(path: Path, bit_depth: int | None = None,
                   option: OptionName = python_option) -> tuple[np.ndarray, bool]:
    """Read a 2-D grey TIFF/PNG as float64 on the 0..255 scale; also say if it was 16-bit.

    A float TIFF written by ``teachdiff restore`` says in its metadata the bit depth B of its
    scale (``"bit_depth": 16`` for a 16-bit input, 12 after ``--bit-depth 12``) and is multiplied
    by 255 / (2^B - 1). With ``bit_depth`` B given, every image (integer or float) is taken to be
    on 0..2^B-1 and scaled so; values beyond that range are an error (``option`` names the
    parameter in its message, as in :func:`evaluate_folders`).
    """
    import numpy as np

    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                image = tif.asarray()
                description = tif.pages[0].description if tif.pages else ""
        else:
            from PIL import Image

            description = ""
            with Image.open(path) as handle:
                image = np.asarray(handle)
    except Exception as err:  # noqa: BLE001 - a reader failure means a broken file, whatever its type
        size = path.stat().st_size if path.is_file() else None
        what = "is empty (0 bytes)" if size == 0 else f"cannot be read ({type(err).__name__}: {err})"
        raise ValueError(f"{path}: {what}; the file is truncated or corrupt: re-export it or remove it.") from None
    if image.ndim == 3 and image.shape[-1] in (3, 4) and np.all(image[..., :3] == image[..., :1]):
        image = image[..., 0]  # a grey image saved as RGB(A)
    if image.ndim != 2:
        raise ValueError(
            f"{path} has shape {image.shape}; expected a 2-D grey image (save z-stacks and "
            "time series as one file per plane)."
        )
    if bit_depth is not None and (image.dtype in (np.uint8, np.uint16) or np.issubdtype(image.dtype, np.floating)):
        top = 2**bit_depth - 1
        if image.max() > top + 0.5:
            raise ValueError(f"{path} has values up to {image.max():.0f}, beyond the {bit_depth}-bit range "
                             f"0..{top} of {option('bit_depth', str(bit_depth))}; pass the images' real bit depth.")
        return image.astype(np.float64) * (255.0 / top), False
    if image.dtype == np.uint8:
        return image.astype(np.float64), False
    if image.dtype == np.uint16:
        return image.astype(np.float64) / UINT16_DIVISOR, True
    if np.issubdtype(image.dtype, np.floating):
        restored_bits = _restore_bit_depth(description)
        if restored_bits == 16:
            return image.astype(np.float64) / UINT16_DIVISOR, True
        if isinstance(restored_bits, int) and restored_bits != 8:
            return image.astype(np.float64) * (255.0 / (2**restored_bits - 1)), False
        return image.astype(np.float64), False
    raise ValueError(
        f"{path} has pixel type {image.dtype}; use 8-bit, 16-bit or float images on the 0..255 scale."
    )


def _restore_bit_depth(description: str) -> int | None:
    """The input bit depth that ``teachdiff restore`` records in its TIFFs' description, if any."""
    try:
        metadata = json.loads(description)
    except (TypeError, ValueError):
        return None
    return metadata.get("bit_depth") if isinstance(metadata, dict) and "map" in metadata else None


def _map_range_to_255(image: np.ndarray, value_range: tuple[float, float] | None) -> np.ndarray:
    """Map values that span ``value_range`` (a prediction range) linearly onto 0..255; unchanged without one."""
    if value_range is None:
        return image
    low, high = value_range
    return (image - low) * (255.0 / (high - low))


def _image_files(folder: Path, what: str, notes: list[str] | None = None) -> dict[str, Path]:
    """File name without extension -> path; a TIFF wins over a PNG of the same name (restore's
    8-bit preview), which is said in ``notes``. Hidden files (``._x.tif``) are skipped."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{what}: folder {folder} does not exist.")
    by_name: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            by_name.setdefault(path.stem, []).append(path)
    files: dict[str, Path] = {}
    previews = 0
    for name, paths in by_name.items():
        tiffs = [path for path in paths if path.suffix.lower() in (".tif", ".tiff")]
        if len(tiffs) > 1 or (not tiffs and len(paths) > 1):
            raise ValueError(f"{what}: {' and '.join(p.name for p in paths)} have the same name; keep one.")
        files[name] = tiffs[0] if tiffs else paths[0]
        previews += len(paths) - 1
    if previews and notes is not None:
        notes.append(f"{what}: used the TIFF of {previews} name(s) that also have a PNG (restore's 8-bit preview).")
    return files


def _match_predictions(
    preds: dict[str, Path], gts: dict[str, Path], method: str, notes: list[str], option: OptionName = python_option
) -> dict[str, Path]:
    """Ground-truth name -> prediction file: by equal name, or after restore's ``_mean`` /
    ``_restored`` suffix; restore's ``_sample``/``_std``/``_entropy`` maps are left out."""
    if not preds:
        raise FileNotFoundError(f"no prediction images ({', '.join(IMAGE_SUFFIXES)}) for {method}.")
    matched: dict[str, Path] = {}
    used = dict.fromkeys(SCORED_RESTORE_OUTPUTS, 0)
    unscored = 0
    for stem, path in preds.items():
        name = stem
        if stem not in gts:
            suffix = next((s for s in SCORED_RESTORE_OUTPUTS if stem.endswith(s) and len(stem) > len(s)), None)
            if suffix is not None:
                name = stem[: -len(suffix)]
                used[suffix] += 1
            elif any(stem.endswith(s) for s in UNSCORED_RESTORE_OUTPUTS):
                unscored += 1
                continue
        if name in matched:
            raise ValueError(
                f"{method}: {matched[name].name} and {path.name} are both predictions for {name!r}; keep one "
                f"(put each method's results in its own sub-folder of {option('pred')})."
            )
        matched[name] = path
    for suffix, count in used.items():
        if count:
            notes.append(f"{method}: scored {count} <name>{suffix} file(s) of `teachdiff restore` "
                         f"({SCORED_RESTORE_OUTPUTS[suffix]}).")
    if unscored:
        notes.append(f"{method}: left out {unscored} {'/'.join(UNSCORED_RESTORE_OUTPUTS)} map(s) of "
                     "`teachdiff restore` (single sample and uncertainty maps are not scored).")
    return matched


def _common_names(predictions: dict[str, dict[str, Path]], gts: dict[str, Path], notes: list[str],
                  option: OptionName = python_option) -> list[str]:
    """The images that the ground truth and every method have (the table compares like with like);
    what is skipped is said in ``notes``. No common image at all is an error that lists names."""
    if not gts:
        raise FileNotFoundError(f"no ground-truth images ({', '.join(IMAGE_SUFFIXES)}) in {option('gt')}.")
    names = set(gts)
    for matched in predictions.values():
        names &= set(matched)
    if not names:
        problems = [f"{method} has {_listing(sorted(p.name for p in matched.values()))}"
                    for method, matched in predictions.items()]
        raise ValueError(
            f"no prediction pairs with a ground-truth image ({_listing(sorted(gts))}); " + "; ".join(problems)
            + ". Predictions pair with ground truth by file name without extension (after restore's "
            "_mean / _restored suffix)."
        )
    skipped_gt = sorted(set(gts) - names)
    if skipped_gt:
        notes.append(f"skipped {len(skipped_gt)} of {len(gts)} ground-truth image(s) without a prediction"
                     f"{' of every method' if len(predictions) > 1 else ''}: {_listing(skipped_gt)}.")
    for method, matched in predictions.items():
        extra = sorted(matched[name].name for name in set(matched) - names)
        if extra:
            notes.append(f"{method}: skipped {len(extra)} prediction(s) without "
                         f"{'ground truth' if len(predictions) == 1 else 'a counterpart'}: {_listing(extra)}.")
    return sorted(names)


def _check_ranges(
    predictions: dict[str, dict[str, Path]],
    gts: dict[str, Path],
    names: list[str],
    pred_range: tuple[float, float] | None,
    bit_depth: int | None = None,
    ms_ssim_scales: int = MS_SSIM_SCALES,
    option: OptionName = python_option,
) -> int:
    """Read every pair once before scoring: same shape, finite values, large enough for MS-SSIM
    with ``ms_ssim_scales``, and predictions on the ground truth's 0..255 scale (after
    ``pred_range``); returns how many 16-bit images were converted. Warns when 16-bit ground
    truth holds 12- or 14-bit content and no ``bit_depth`` is given."""
    import warnings

    import numpy as np

    from teachdiff.data.folder import bit_depth_warning
    from teachdiff.evaluation.metrics import ms_ssim_min_size

    converted = 0
    gt_top = 0.0
    gt_16_top, gt_16_example = 0.0, None
    gt_shapes = {}
    for name in names:
        gt, was_16 = read_image_255(gts[name], bit_depth, option)
        _refuse_non_finite("the ground truth", _non_finite(gts[name], gt), option)
        converted += was_16
        gt_top, gt_shapes[name] = max(gt_top, float(gt.max())), gt.shape
        if was_16 and float(gt.max()) * UINT16_DIVISOR >= gt_16_top:
            gt_16_top, gt_16_example = float(gt.max()) * UINT16_DIVISOR, gts[name]
    smallest = min(gt_shapes.items(), key=lambda item: min(item[1]))
    if min(smallest[1]) < ms_ssim_min_size(ms_ssim_scales):
        fits = [k for k in range(MS_SSIM_SCALES, 0, -1) if ms_ssim_min_size(k) <= min(smallest[1])]
        fix = (f"pass {option('ms_ssim_scales', str(fits[0]))} (the most that fit; not comparable with the paper's "
               f"{MS_SSIM_SCALES}-scale values), or score larger crops (the paper's are 256 x 256)") if fits else \
            f"score larger crops: even 1 scale needs {ms_ssim_min_size(1)} pixels a side"
        raise ValueError(f"{gts[smallest[0]]} is {smallest[1][0]}x{smallest[1][1]} pixels, smaller than the "
                         f"{ms_ssim_min_size(ms_ssim_scales)}x{ms_ssim_min_size(ms_ssim_scales)} that MS-SSIM with "
                         f"{ms_ssim_scales} scales and its 11x11 window needs; {fix}.")
    warning = bit_depth_warning(gt_16_top, 16, f"ground truth (e.g. {gt_16_example})") if gt_16_example else None
    if warning:
        warnings.warn(warning, UserWarning, stacklevel=2)
    for method, matched in predictions.items():
        low, high = np.inf, -np.inf
        broken = []
        for name in names:
            raw, was_16 = read_image_255(matched[name], bit_depth, option)
            converted += was_16
            pred = _map_range_to_255(raw, pred_range)
            if pred.shape != gt_shapes[name]:
                raise ValueError(
                    f"{matched[name]} has shape {pred.shape} but {gts[name]} has shape {gt_shapes[name]}; "
                    "predictions must cover the same pixels as their ground truth."
                )
            broken += _non_finite(matched[name], pred)
            finite = pred[np.isfinite(pred)]
            if finite.size:
                low, high = min(low, float(finite.min())), max(high, float(finite.max()))
        _refuse_non_finite(f"{method}: the predictions", broken, option)
        problem = _scale_problem(low, high, gt_top)
        if problem:
            fix = (f"the {option('pred_range')} given does not fit these values; correct it" if pred_range is not None
                   else f"if that is their scale, pass {option('pred_range', problem[1])} to map it onto 0..255")
            raise ValueError(
                f"{method}: the predictions span [{low:.4g}, {high:.4g}] but the ground truth 0..{gt_top:.4g} "
                f"(the 0..255 scale of the metrics): {problem[0]}; {fix}. Scores on mismatched scales are wrong."
                + (f" 12- or 14-bit data in 16-bit files? Then pass {option('bit_depth')}." if warning else "")
            )
    return converted


def _non_finite(path: Path, image) -> list[tuple[Path, int, int, int]]:
    """``[(path, NaN count, infinite count, pixels)]`` when ``image`` holds any, else ``[]``."""
    import numpy as np

    nan = int(np.isnan(image).sum())
    inf = int(np.isinf(image).sum())
    return [(path, nan, inf, int(image.size))] if nan or inf else []


def _refuse_non_finite(what: str, broken: list[tuple[Path, int, int, int]], option: OptionName = python_option) -> None:
    """A clear error naming the files with NaN or infinite values and how many (none: nothing)."""
    if not broken:
        return
    listed = "; ".join(f"{path}: " + " and ".join(f"{count} {kind}" for count, kind in ((nan, "NaN"), (inf, "infinite"))
                                                  if count) + f" of {size} pixels"
                       for path, nan, inf, size in broken[:5])
    more = f"; and {len(broken) - 5} more file(s)" if len(broken) > 5 else ""
    raise ValueError(f"{what} hold NaN or infinite values in {len(broken)} file(s): {listed}{more}. A restoration "
                     "that produced them failed (e.g. a diverged model, or fp16 overflow: restore again with "
                     f"{option('precision', 'fp32')}); scores of such images mean nothing, so fix or remove these "
                     "files.")


def _scale_problem(low: float, high: float, gt_top: float) -> tuple[str, str] | None:
    """Why predictions in [low, high] are not on the ground truth's 0..255 scale, and the
    value range that would fit (as on a command line: ``"0 1"``); ``None`` when they are (small
    under/overshoots are normal)."""
    if high <= 1.0 and low < -0.05:
        return "they look like network outputs in [-1, 1]", "-1 1"
    if high <= 1.0 and gt_top > 2.0:
        return "they look like floats in [0, 1]", "0 1"
    if high > 1.5 * 255 and gt_top <= 255:
        return "they exceed 0..255, like floats on the 16-bit scale", "0 65535"
    return None


def _method_dirs(pred: Path, methods: Sequence[str] | None, option: OptionName = python_option) -> dict[str, Path]:
    """Method name -> folder: sub-folders of ``pred``, or ``pred`` itself if it holds images."""
    if not pred.is_dir():
        raise FileNotFoundError(f"{option('pred')}: folder {pred} does not exist.")
    if _image_files(pred, option("pred")):
        if methods and len(methods) != 1:
            raise ValueError(
                f"{pred} holds images directly, i.e. one method, but {option('methods')} names {len(methods)}; "
                f"put each method's images in its own sub-folder of {option('pred')}."
            )
        return {(methods[0] if methods else pred.name): pred}
    available = {path.name: path for path in sorted(pred.iterdir()) if path.is_dir()}
    if not available:
        raise FileNotFoundError(
            f"{pred} holds neither images ({', '.join(IMAGE_SUFFIXES)}) nor method sub-folders."
        )
    if not methods:
        return available
    unknown = [name for name in methods if name not in available]
    if unknown:
        raise ValueError(
            f"{option('methods')} {unknown} not found in {pred}; available: {sorted(available)}."
        )
    return {name: available[name] for name in methods}


def _listing(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
