"""`teachdiff evaluate`: score folders of restorations against their ground truth."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from teachdiff.cli.args import positive_float, positive_int
from teachdiff.evaluation.evaluate import MS_SSIM_SCALES, evaluate_folders, median_table_markdown, write_scores_csv


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
    for target in (args.out, args.table):
        if target is not None:
            check_writable(target, args.overwrite)
    scored = evaluate_folders(args.pred, args.gt, args.methods, pixel_size=args.pixel_size,
                              pred_range=args.pred_range, bit_depth=args.bit_depth, lpips=not args.no_lpips,
                              ms_ssim_scales=args.ms_ssim_scales, progress=not args.no_progress, option=flag)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_scores_csv(args.out, scored.rows)
    markdown = median_table_markdown(scored.table)
    if args.table is not None:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(markdown + "\n")
    for note in scored.notes:
        print(f"note: {note}")
    if args.pred_range is not None:
        print(f"note: predictions were mapped from [{args.pred_range[0]:g}, {args.pred_range[1]:g}] onto 0..255 "
              "(--pred-range).")
    if args.ms_ssim_scales != MS_SSIM_SCALES:
        print(f"note: MS-SSIM over {args.ms_ssim_scales} scale(s) (--ms-ssim-scales; exponents renormalised): not "
              f"comparable with the paper's {MS_SSIM_SCALES}-scale values.")
    print(f"Scored {len(scored.rows)} image(s) of {len(scored.methods)} method(s); per-image scores: {args.out}")
    print(f"Medians [95% bootstrap CI]; stars: Mood's median test against {scored.methods[0]} "
          "(*** p<.001, ** p<.01, * p<.05, ns); resolution in units of --pixel-size.")
    print(markdown)
    return 0


def flag(name: str, value: str | None = None) -> str:
    """Messages of :func:`evaluate_folders` name its parameters as this command's flags: ``--pred-range 0 1``."""
    spelled = "--" + name.replace("_", "-")
    return spelled if value is None else f"{spelled} {value}"


def check_writable(target: Path, overwrite: bool) -> None:
    """--out / --table can be written, checked before any (slow) scoring."""
    target = Path(target)
    if target.is_dir():
        raise ValueError(f"{target} is a folder; give a file name, e.g. {target / 'scores.csv'}.")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; choose another file or pass --overwrite.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".teachdiff-write-test-"):
            pass
    except OSError as err:
        raise PermissionError(
            f"cannot write {target} ({err.strerror or err}); choose a file in a writable folder."
        ) from None
