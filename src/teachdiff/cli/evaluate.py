"""`teachdiff evaluate`: score folders of restorations against their ground truth."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from teachdiff.cli.args import positive_float, positive_int
if TYPE_CHECKING:
    pass
from teachdiff.evaluation.evaluate import MS_SSIM_SCALES, TABLE_METRICS, _check_ranges, _check_writable, _common_names, _image_files, _match_predictions, _method_dirs, _to_255, read_image_255


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score restored images against ground truth (CSV + median table)",
        description="Score restored images against ground truth: a per-image CSV and a "
        "paper-style median table. --pred holds one method's images or one sub-folder per method; "
        "files pair with --gt by name without extension, and `teachdiff restore`'s output folder works as it "
        "is (<name>_mean.tif of the DDPM, <name>_restored.tif of a baseline). Only images that every method and "
        "the ground truth have are scored; the skipped ones are listed. 16-bit images are divided by 257.",
        epilog="examples:\n  teachdiff evaluate --pred results --gt data/test/gt --methods DDPM-avg CARE "
        "--pixel-size 15 --out scores.csv\n"
        "  teachdiff restore --checkpoint runs/mt/best.pt data/test/raw/*.tif --out restored/\n"
        "  teachdiff evaluate --pred restored --gt data/test/gt --out scores.csv   # scores the _mean TIFFs",
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
        type=positive_float,
        default=1.0,
        metavar="NM",
        help="pixel size for the resolution (default 1: resolution in pixels)",
    )
    parser.add_argument("--out", required=True, type=Path, help="CSV file for the per-image scores")
    parser.add_argument("--table", type=Path, help="also write the median table (markdown) to this file")
    parser.add_argument("--bit-depth", type=int, metavar="B",
                        help="all images (integer and float) are on 0..2^B-1, e.g. 12 for 12-bit camera data in "
                        "16-bit files (default: 8-bit and float as 0..255, 16-bit divided by 257)")
    parser.add_argument("--no-lpips", action="store_true", help="skip LPIPS (reported as nan)")
    parser.add_argument("--ms-ssim-scales", type=positive_int, default=MS_SSIM_SCALES, metavar="N",
                        help=f"scales of MS-SSIM (default {MS_SSIM_SCALES}, the paper's, for images of at least "
                        "176 x 176; fewer for smaller images: 4 from 88, 3 from 44, 2 from 22; not comparable "
                        "with the paper's values)")
    parser.add_argument(
        "--pred-range",
        nargs=2,
        type=float,
        metavar=("LOW", "HIGH"),
        help="value range of the predictions, mapped linearly onto 0..255 (e.g. 0 1 for [0, 1] floats, "
        "-1 1 for network outputs); without it, predictions off the 0..255 scale are refused",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing --out/--table files")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm.auto import tqdm

    from teachdiff.evaluation import metrics, stats

    for target in (args.out, args.table):
        if target is not None:
            _check_writable(target, args.overwrite)
    if not args.pixel_size > 0:
        raise ValueError(f"--pixel-size must be positive, got {args.pixel_size}.")
    pred_range = getattr(args, "pred_range", None)
    if pred_range is not None and not pred_range[0] < pred_range[1]:
        raise ValueError(f"--pred-range LOW HIGH needs LOW < HIGH, got {pred_range[0]:g} {pred_range[1]:g}.")
    bit_depth = getattr(args, "bit_depth", None)
    if bit_depth is not None and not 1 <= bit_depth <= 16:
        raise ValueError(f"--bit-depth must be between 1 and 16 (e.g. 12), got {bit_depth}.")
    progress = not getattr(args, "no_progress", False)
    scales = getattr(args, "ms_ssim_scales", MS_SSIM_SCALES)
    if not 1 <= scales <= MS_SSIM_SCALES:
        raise ValueError(f"--ms-ssim-scales must be between 1 and {MS_SSIM_SCALES}, got {scales}.")
    notes: list[str] = []
    gt_files = _image_files(args.gt, "--gt", notes)
    method_dirs = _method_dirs(args.pred, args.methods)
    predictions = {
        method: _match_predictions(_image_files(folder, f"predictions of {method}", notes), gt_files, method, notes)
        for method, folder in method_dirs.items()
    }
    names = _common_names(predictions, gt_files, notes)
    converted_16bit = _check_ranges(predictions, gt_files, names, pred_range, bit_depth, scales)

    rows = []
    no_peak = 0
    for method, matched in predictions.items():
        for name in tqdm(names, desc=f"scoring {method}", file=sys.stderr, disable=not progress):
            pred_path, gt_path = matched[name], gt_files[name]
            pred = _to_255(read_image_255(pred_path, bit_depth)[0], pred_range)
            gt = read_image_255(gt_path, bit_depth)[0]
            measured = metrics.evaluate(pred, gt, pixel_size=args.pixel_size, lpips=not args.no_lpips,
                                        ms_ssim_scales=scales)
            scores = metrics.without_grid_floor(measured, args.pixel_size)
            no_peak += np.isfinite(measured["resolution"]) and not np.isfinite(scores["resolution"])
            rows.append({"method": method, "image": name, "pixel_size": args.pixel_size, **scores})
    if no_peak:
        notes.append(f"{no_peak} prediction(s) have no decorrelation peak beyond the grid's first radius: their "
                     "resolution is not a measurement and is reported as nan (n/a), see metrics.without_grid_floor.")

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
    for note in notes:
        print(f"note: {note}")
    if converted_16bit:
        print(f"note: {converted_16bit} 16-bit image(s) were put on 0..255 by dividing by 257.")
    if pred_range is not None:
        print(f"note: predictions were mapped from [{pred_range[0]:g}, {pred_range[1]:g}] onto 0..255 (--pred-range).")
    if scales != MS_SSIM_SCALES:
        print(f"note: MS-SSIM over {scales} scale(s) (--ms-ssim-scales; exponents renormalised): not comparable "
              f"with the paper's {MS_SSIM_SCALES}-scale values.")
    print(f"Scored {len(rows)} image(s) of {len(method_dirs)} method(s); per-image scores: {args.out}")
    print(f"Medians [95% bootstrap CI]; stars: Mood's median test against {next(iter(method_dirs))} "
          "(*** p<.001, ** p<.01, * p<.05, ns); resolution in units of --pixel-size.")
    print(markdown)
    return 0
