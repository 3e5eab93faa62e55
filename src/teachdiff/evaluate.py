"""``teachdiff evaluate``: score restored images against ground truth, as in the paper's tables.

    teachdiff evaluate --pred results/ --gt data/test/gt --pixel-size 15 --out scores.csv

``--pred`` is either a folder of images (one method) or a folder with one sub-folder per method
(``results/DDPM-avg/*.tif``, ``results/CARE/*.tif``; ``--methods`` picks and orders them).
Predictions are paired with ground-truth images by file name without extension (``img_001.png``
pairs with ``img_001.tif``); a missing or extra file is an error that lists the names. Every pair
is scored with :func:`teachdiff.metrics.evaluate`; the per-image scores go to ``--out`` (CSV,
never overwritten unless ``--overwrite``) and the median table, with bootstrap confidence
intervals and Mood's test against the first method (stars as in Fig. S3), is printed.

Reading images: TIFF with tifffile, PNG with Pillow, 2-D grey images only (a grey image stored as
RGB is accepted). The metrics use the 0..255 scale: 8-bit images are used as they are, float
images are assumed to be on 0..255 already, and 16-bit images are divided by 257 (which maps
0..65535 exactly onto 0..255, the usual 16 -> 8-bit rule). That rule is right only when the
16-bit files use the full 16-bit range; if your camera data use e.g. 12 bits, convert the
images yourself (same rule for predictions and ground truth) and save them as float TIFF.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from teachdiff import metrics, stats

IMAGE_SUFFIXES = (".tif", ".tiff", ".png")
TABLE_METRICS = ("mae", "psnr", "ms_ssim", "lpips", "nrmse", "pearson", "resolution", "resolution_ratio")
UINT16_DIVISOR = 257.0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score restored images against ground truth (CSV + median table)",
        description="Score restored images against ground truth: a per-image CSV and a "
        "paper-style median table. --pred holds one method's images or one sub-folder per method; "
        "files pair with --gt by name without extension. 16-bit images are divided by 257.",
        epilog="example: teachdiff evaluate --pred results --gt data/test/gt --methods DDPM-avg CARE "
        "--pixel-size 15 --out scores.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--pred", required=True, type=Path, help="folder of predictions, or of one sub-folder per method"
    )
    parser.add_argument("--gt", required=True, type=Path, help="folder of ground-truth images")
    parser.add_argument(
        "--methods",
        nargs="+",
        metavar="NAME",
        help="sub-folders of --pred to score, in table order (the first is the reference of the tests)",
    )
    parser.add_argument(
        "--pixel-size",
        type=float,
        default=1.0,
        metavar="NM",
        help="pixel size for the resolution (default 1: resolution in pixels)",
    )
    parser.add_argument("--out", required=True, type=Path, help="CSV file for the per-image scores")
    parser.add_argument("--table", type=Path, help="also write the median table (markdown) to this file")
    parser.add_argument("--no-lpips", action="store_true", help="skip LPIPS (reported as nan)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing --out/--table files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for target in (args.out, args.table):
        if target is not None and target.exists() and not args.overwrite:
            raise FileExistsError(f"{target} exists; choose another file or pass --overwrite.")
    if not args.pixel_size > 0:
        raise ValueError(f"--pixel-size must be positive, got {args.pixel_size}.")
    gt_files = _image_files(args.gt, "--gt")
    method_dirs = _method_dirs(args.pred, args.methods)

    rows = []
    converted_16bit = 0
    for method, folder in method_dirs.items():
        pairs = _pair_files(_image_files(folder, f"predictions of {method}"), gt_files, method)
        for name, pred_path, gt_path in tqdm(pairs, desc=f"scoring {method}", file=sys.stderr):
            pred, pred_16 = read_image_255(pred_path)
            gt, gt_16 = read_image_255(gt_path)
            converted_16bit += pred_16 + gt_16
            if pred.shape != gt.shape:
                raise ValueError(
                    f"{pred_path} has shape {pred.shape} but {gt_path} has shape {gt.shape}; "
                    "predictions must cover the same pixels as their ground truth."
                )
            scores = metrics.evaluate(pred, gt, pixel_size=args.pixel_size, lpips=not args.no_lpips)
            rows.append({"method": method, "image": name, "pixel_size": args.pixel_size, **scores})

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    table = stats.median_table(stats.scores_from_rows(rows, TABLE_METRICS), TABLE_METRICS)
    markdown = stats.format_markdown(
        table,
        TABLE_METRICS,
        labels={name: metrics.METRICS[name].label for name in TABLE_METRICS},
        higher_is_better={name: metrics.METRICS[name].higher_is_better for name in TABLE_METRICS},
    )
    if args.table is not None:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(markdown + "\n")
    if converted_16bit:
        print(f"note: {converted_16bit} 16-bit image(s) were put on 0..255 by dividing by 257.")
    print(f"Scored {len(rows)} image(s) of {len(method_dirs)} method(s); per-image scores: {args.out}")
    print(f"Medians [95% bootstrap CI]; stars: Mood's median test against {next(iter(method_dirs))} "
          "(*** p<.001, ** p<.01, * p<.05, ns); resolution in units of --pixel-size.")
    print(markdown)
    return 0


def read_image_255(path: Path) -> tuple[np.ndarray, bool]:
    """Read a 2-D grey TIFF/PNG as float64 on the 0..255 scale; also say if it was 16-bit."""
    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        image = tifffile.imread(path)
    else:
        from PIL import Image

        with Image.open(path) as handle:
            image = np.asarray(handle)
    if image.ndim == 3 and image.shape[-1] in (3, 4) and np.all(image[..., :3] == image[..., :1]):
        image = image[..., 0]  # a grey image saved as RGB(A)
    if image.ndim != 2:
        raise ValueError(
            f"{path} has shape {image.shape}; expected a 2-D grey image (save z-stacks and "
            "time series as one file per plane)."
        )
    if image.dtype == np.uint8:
        return image.astype(np.float64), False
    if image.dtype == np.uint16:
        return image.astype(np.float64) / UINT16_DIVISOR, True
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float64), False
    raise ValueError(
        f"{path} has pixel type {image.dtype}; use 8-bit, 16-bit or float images on the 0..255 scale."
    )


def _image_files(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{what}: folder {folder} does not exist.")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in files:
                raise ValueError(
                    f"{what}: {files[path.stem].name} and {path.name} have the same name; keep one."
                )
            files[path.stem] = path
    return files


def _method_dirs(pred: Path, methods: list[str] | None) -> dict[str, Path]:
    """Method name -> folder: sub-folders of ``pred``, or ``pred`` itself if it holds images."""
    if not pred.is_dir():
        raise FileNotFoundError(f"--pred: folder {pred} does not exist.")
    if _image_files(pred, "--pred"):
        if methods and len(methods) != 1:
            raise ValueError(
                f"{pred} holds images directly, i.e. one method, but --methods names {len(methods)}; "
                "put each method's images in its own sub-folder of --pred."
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
            f"--methods {unknown} not found in {pred}; available: {sorted(available)}."
        )
    return {name: available[name] for name in methods}


def _pair_files(
    preds: dict[str, Path], gts: dict[str, Path], method: str
) -> list[tuple[str, Path, Path]]:
    if not preds:
        raise FileNotFoundError(f"no prediction images ({', '.join(IMAGE_SUFFIXES)}) for {method}.")
    missing = sorted(set(gts) - set(preds))
    extra = sorted(set(preds) - set(gts))
    if missing or extra:
        problems = []
        if missing:
            problems.append(
                f"no prediction for {len(missing)} ground-truth image(s): {_listing(missing)}"
            )
        if extra:
            problems.append(f"no ground truth for {len(extra)} prediction(s): {_listing(extra)}")
        raise ValueError(
            f"{method}: " + "; ".join(problems)
            + ". Predictions and ground truth are paired by file name without extension."
        )
    return [(name, preds[name], gts[name]) for name in sorted(gts)]


def _listing(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
