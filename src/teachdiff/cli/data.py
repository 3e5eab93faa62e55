"""``teachdiff data``: list the datasets, download the open one, check a folder, simulate pairs.

Examples::

    teachdiff data list
    teachdiff data download zebrafish
    teachdiff data download zebrafish --from ~/Downloads/Confocal_FISH.tar   # downloaded in a browser
    teachdiff data check ~/data/microtubules --dataset microtubules
    teachdiff data check ~/data/my-pairs --bit-depth 12        # your own raw/ + gt/ folder
    teachdiff data simulate ./toy --case synapses --n-fov 6
"""

from __future__ import annotations

import argparse

from teachdiff.cli.args import non_negative_int, positive_float, positive_int
from teachdiff.data.registry import DATASETS, PAIRED_FOLDER_LAYOUT, data_dir, default_root
from teachdiff.data.registry import CASES


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "data",
        help="list, download, check or simulate datasets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    commands = parser.add_subparsers(dest="data_command", metavar="ACTION")

    listing = commands.add_parser("list", help="the datasets teachdiff knows, and which are present")
    listing.set_defaults(func=_list)

    download = commands.add_parser("download", help="download an openly available dataset (zebrafish)")
    downloadable = [n for n, i in DATASETS.items() if not (i.is_synthetic or i.bundled)]
    download.add_argument("name", choices=downloadable, help="dataset")
    download.add_argument("--root", default=None, help="target folder (default: <data dir>/<name>)")
    download.add_argument("--url", action="append", default=None, metavar="URL",
                          help="download from this URL instead of the registry's sources (a mirror); repeat it to "
                          "try several in order")
    download.add_argument("--from", dest="from_file", default=None, metavar="FILE",
                          help="unpack an archive you downloaded by hand (e.g. in a browser) instead of downloading")
    download.add_argument("--keep-archive", action="store_true", help="keep the .tar after unpacking")
    download.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    download.set_defaults(func=_download)

    check = commands.add_parser(
        "check", help="report FOVs, patches per split, bit depth, intensities and problems of a folder",
        description="Check a folder before training. With --dataset: one of the paper's datasets. Without: your "
        "own folder of pairs (the options below are those of `teachdiff train --data`).",
        epilog="layouts of your own folder (detected automatically):\n" + PAIRED_FOLDER_LAYOUT,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("path", nargs="?", default=None, help="dataset folder (default with --dataset: data dir/<dataset>)")
    check.add_argument("--dataset", default=None, choices=[n for n, i in DATASETS.items() if not (i.is_synthetic or i.bundled)],
                       help="check a folder as this registered dataset (default: your own folder of pairs)")
    check.add_argument("--patch-size", type=positive_int, default=256)
    check.add_argument("--no-decode", action="store_true", help="read only file headers (faster, finds fewer problems)")
    check.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    add_folder_options(check)
    check.set_defaults(func=_check)

    simulate = commands.add_parser("simulate", help="write synthetic (raw, gt) pairs in a dataset's folder layout")
    simulate.add_argument("out", help="output folder (gets raw/ and gt/; existing files are never overwritten)")
    simulate.add_argument("--case", choices=CASES, required=True,
                          help="the paper's dataset to imitate; the folder is accepted by --dataset CASE")
    simulate.add_argument("--n-fov", type=positive_int, default=8, help="fields of view (at least 3; default 8)")
    simulate.add_argument("--size", type=positive_int, default=512, help="FOV side in pixels")
    simulate.add_argument("--bit-depth", type=int, choices=(8, 16), help="default: the dataset's (synapses 16, else 8)")
    simulate.add_argument("--captures", type=positive_int, default=5,
                          help="zebrafish: single captures per FOV (FMD has 50; default 5)")
    simulate.add_argument("--seed", type=non_negative_int, default=0)
    simulate.set_defaults(func=_simulate)


def _list(args) -> int:
    print(f"data folder: {data_dir()}  (set TEACHDIFF_DATA to change)")
    print(f"{'name':<24}{'present':<9}{'px (nm)':>8}{'bits':>6}  {'Table S1 train/val/test':<24}modality")
    for name, info in DATASETS.items():
        present = ("built-in" if info.is_synthetic else "bundled" if info.bundled
                   else "yes" if default_root(name).exists() else "no")
        split = "/".join(map(str, info.table_s1)) if info.table_s1 and not info.is_synthetic else "-"
        print(f"{name:<24}{present:<9}{info.pixel_size_nm:>8g}{info.bit_depth:>6}  {split:<24}{info.modality}")
    downloads = [name for name, info in DATASETS.items() if info.download]
    bundled = [name for name, info in DATASETS.items() if info.bundled]
    print(f"Downloadable: {', '.join(downloads)} (teachdiff data download NAME). Bundled with teachdiff, offline: "
          f"{', '.join(bundled)}. For the others pass a folder.")
    print("Licences:")
    for name, info in DATASETS.items():
        if not info.is_synthetic:
            print(f"  {name}: {info.licence}")
    return 0


def _download(args) -> int:
    from teachdiff.core.errors import CommandError
    from teachdiff.data.download import DownloadError, download_dataset

    try:
        folder = download_dataset(args.name, args.root, url=args.url, from_file=args.from_file,
                                  keep_archive=args.keep_archive, progress=not args.no_progress)
    except DownloadError as err:
        raise CommandError(str(err)) from err
    print(f"{args.name}: ready in {folder}")
    return 0


def add_folder_options(parser) -> None:
    """The options that describe a folder of your own pairs (``data check``, ``train --data``)."""
    group = parser.add_argument_group("your own folder of pairs")
    group.add_argument("--pixel-size", type=positive_float, default=1.0, metavar="NM",
                       help="pixel size in nm, for the resolution metric (default 1: pixels)")
    group.add_argument("--bit-depth", type=positive_int, default=None, metavar="B",
                       help="bits really used, e.g. 12 for a 12-bit camera writing 16-bit files (default: pixel type)")
    group.add_argument("--normalize", default="bitdepth", choices=("bitdepth", "percentile"),
                       help="bitdepth: 0..2^B-1 -> [-1, 1], the paper (default); percentile: --pmin/--pmax of the "
                       "training set -> [-1, 1], CSBDeep style")
    group.add_argument("--pmin", type=float, default=3.0, help="low percentile for --normalize percentile (default 3)")
    group.add_argument("--pmax", type=float, default=99.8, help="high percentile (default 99.8)")
    group.add_argument("--register", action="store_true",
                       help="register each input onto its target (translation; files of different size are cut to "
                       "their common centre first)")
    group.add_argument("--split", default="0.8,0.1,0.1", metavar="TRAIN,VAL,TEST",
                       help="fractions of FOVs per split (default 0.8,0.1,0.1; split by FOV with a fixed seed)")
    group.add_argument("--split-seed", type=non_negative_int, default=0, help="seed of the FOV shuffle (default 0)")


def folder_config(args, path):
    """A :class:`~teachdiff.data.folder.FolderConfig` from the options of :func:`add_folder_options`."""
    from teachdiff.data.folder import FolderConfig

    try:
        fractions = tuple(float(f) for f in str(args.split).split(","))
    except ValueError:
        raise ValueError(f"--split must be three fractions like 0.8,0.1,0.1, got {args.split!r}.") from None
    return FolderConfig(path=str(path), pixel_size_nm=args.pixel_size, bit_depth=args.bit_depth,
                        normalize=args.normalize, pmin=args.pmin, pmax=args.pmax, register=args.register,
                        split_fractions=fractions, split_seed=args.split_seed)


def _check(args) -> int:
    from teachdiff.data.check import check_dataset, check_folder

    if args.dataset is None:
        if args.path is None:
            raise ValueError("give the folder to check (teachdiff data check PATH), or --dataset NAME.")
        report = check_folder(folder_config(args, args.path), patch_size=args.patch_size, decode=not args.no_decode,
                              progress=not args.no_progress)
        print(report.format())
        return 0 if report.ok else 1
    report = check_dataset(args.dataset, args.path, patch_size=args.patch_size, decode=not args.no_decode,
                           progress=not args.no_progress)
    print(report.format())
    return 0 if report.ok else 1


def _simulate(args) -> int:
    from teachdiff.data.synthetic import make_synthetic_dataset

    make_synthetic_dataset(args.case, args.n_fov, args.size, args.seed, args.bit_depth, out_dir=args.out,
                           captures=args.captures)
    what = f"{args.n_fov} FOVs x {args.captures} captures" if args.case == "zebrafish" else f"{args.n_fov} pairs"
    print(f"wrote {what} of synthetic '{args.case}' to {args.out}/raw and {args.out}/gt, in the layout of the "
          f"'{args.case}' dataset; check it with `teachdiff data check {args.out} --dataset {args.case}`")
    return 0
