"""``teachdiff export``: a trained model as a BioImage Model Zoo package, for Fiji (deepImageJ),
napari, QuPath and bioimageio.core.

The package (model specification 0.5) holds the weights (``pytorch_state_dict``, whose
architecture comes from the installed teachdiff, and torchscript where a trace reproduces it),
the model's normalisation as pre- and post-processing (a raw capture goes in, the restoration
comes out on the capture's intensity scale), test tensors and a cover made from a restoration
of a raw capture, the paper's citation, a licence and a README: what the model was trained on,
for what data, its cost per tile, and what it must not be trusted for.

A DDPM's package computes DDPM-avg with teachdiff's fast default sampler (8 samples of
stochastic DDIM-10, 80 network calls per tile), deterministic for the seed it declares, and a
second output with the per-pixel standard deviation of the samples. Every package states a
halo, so that a consumer tiles large images with the overlap of ``teachdiff restore``.

Needs the optional extra: pip install "teachdiff[bmz]". Check a package with
``bioimageio test FILE.zip``.
"""

from __future__ import annotations

import argparse

from teachdiff.cli.args import non_negative_int, positive_int

EXAMPLES = """
examples:
  # a model of the zoo (`teachdiff weights list`)
  teachdiff export synthetic-microtubules-ddpm-quick --out mt-ddpm.zip

  # your own training run; its test FOV makes the test tensors and the cover
  teachdiff export runs/mine/best.pt --out mine.zip --author "Ada Lovelace" --license CC-BY-4.0

  # training data not on this machine: give a raw capture of the kind the model was made for
  teachdiff export runs/mine/best.pt --sample capture.tif --out mine.zip --force

  # then validate it (bioimageio.core) and open it in napari or Fiji (deepImageJ)
  bioimageio test mine.zip
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help="write a BioImage Model Zoo package (Fiji, napari, QuPath)",
                              description=__doc__, epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL",
                   help="a zoo name (`teachdiff weights list`), a checkpoint of `teachdiff train` or its --out folder")
    p.add_argument("--out", required=True, metavar="FILE.zip", help="the package to write")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--sample", metavar="IMAGE", help="a raw capture for the test tensors and the cover (default: "
                   "the first test FOV of the model's training data)")
    p.add_argument("--bit-depth", type=positive_int, metavar="B", help="bits of the captures the package will get, "
                   "for a model that normalises by bit depth (default: as trained)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="the DDPM's sampling seed (default 0)")
    p.add_argument("--license", default="MIT", metavar="SPDX",
                   help="SPDX licence id of the package (default MIT; weights of your own data: your choice)")
    p.add_argument("--author", action="append", metavar="NAME",
                   help="an author of the package (repeat for several; default: teachdiff contributors)")
    p.add_argument("--no-torchscript", action="store_true", help="package only the pytorch_state_dict weights")
    p.set_defaults(func=run)


def run(args) -> int:
    from teachdiff.export.package import export_package

    result = export_package(args.model, args.out, force=args.force, sample=args.sample, bit_depth=args.bit_depth,
                            seed=args.seed, licence=args.license,
                            authors=tuple(args.author or ("teachdiff contributors",)),
                            torchscript=not args.no_torchscript)
    g = result.geometry
    sides = f"{g.tile} + n x {g.step}" if g.step else f"{g.tile}"
    print(f"wrote {result.path}: {result.kind}, weights {', '.join(result.weight_formats)}; tiles of {sides} px, "
          f"halo {g.halo} px; {result.network_calls_per_tile} network call(s), {result.gflop_per_tile:.3g} GFLOP and "
          f"{result.seconds_per_tile:.2g} s per {g.tile}² tile here")
    if not args.no_torchscript and "torchscript" not in result.weight_formats:
        print(result.torchscript_note)
    return 0
