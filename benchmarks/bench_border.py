"""Which image border is closer to the ground truth: ``teachdiff restore``'s or the BMZ package's?

The two agree wherever no padding reaches (``tests/test_bmz_export.py``) and differ near the image
border, because they pad it differently before the network sees it:

* ``restore``: the capture as it is, mirror-padded only at the bottom and right up to the network's
  size multiple; beyond the image the convolutions see their own zero padding. Its tiles
  reproduce this whole-image result exactly.
* ``package``: what ``bioimageio.core.predict`` does with the exported package: the capture is first
  mirror-padded on every side by the package's halo (``tile_geometry(method).halo``), restored,
  and the halo cropped off again.
* ``mirror-receptive``: mirror-padding on every side by the network's whole receptive radius
  (``method.halo``), for reference.

Each policy restores the same simulated captures (``--images`` of ``--size``, seeds no split uses)
with a released zoo model; the table gives the MAE to the GT over the outer 8 pixels, over the band
of the receptive radius, and inside it, and the Wilcoxon signed-rank p-value of the per-image outer-
band MAE against ``restore``'s (paired: the same captures).

Usage: ``PYTHONPATH=src python benchmarks/bench_border.py --out benchmarks/results/border.md``
"""

from __future__ import annotations

import argparse
import datetime
import platform
from pathlib import Path

import numpy as np
import torch
from scipy.stats import wilcoxon

from teachdiff.data.synthetic import simulate_pair
from teachdiff.export.package import tile_geometry
from teachdiff.inference.restore import restore_method_image
from teachdiff.store.resolve import load_method

EDGE = 8
NO_RADIUS_BAND = 32  # the band of a network whose output depends on the whole image


def restore_padded(method, capture: np.ndarray, pad: int) -> np.ndarray:
    """``restore``'s whole-image result of ``capture`` mirror-padded by ``pad`` on every side, cropped back."""
    padded = np.pad(capture, pad, mode="reflect") if pad else capture
    out = restore_method_image(method, padded, tile=None).mean
    return out[pad:pad + capture.shape[0], pad:pad + capture.shape[1]]


def band_errors(pred: np.ndarray, gt: np.ndarray, radius: int) -> tuple[float, float, float]:
    """MAE over the outer ``EDGE`` pixels, the outer ``radius`` pixels, and the rest."""
    err = np.abs(pred.astype(np.float64) - gt)
    inner = np.zeros(err.shape, bool)
    inner[radius:-radius, radius:-radius] = True
    edge = np.ones(err.shape, bool)
    edge[EDGE:-EDGE, EDGE:-EDGE] = False
    return float(err[edge].mean()), float(err[~inner].mean()), float(err[inner].mean())


def measure(model: str, images: int, size: tuple[int, int]) -> list[dict]:
    method = load_method(model).eval()
    radius = getattr(method, "halo", None)  # None: attention over the whole image (UNet-RCAN)
    policies = {"restore": 0, "package": tile_geometry(method).halo}
    if radius is not None:
        policies["mirror-receptive"] = int(radius)
    radius = int(radius or NO_RADIUS_BAND)
    structure = model.split("-")[1]
    errors = {name: [] for name in policies}
    for i in range(images):
        pair = simulate_pair(structure, size, seed=29_100 + i, bit_depth=8)
        for name, pad in policies.items():
            errors[name].append(band_errors(restore_padded(method, pair.x, pad), pair.y.astype(np.float64),
                                            radius))
    rows = []
    for name, pad in policies.items():
        e = np.array(errors[name])
        p = None if name == "restore" else float(wilcoxon(e[:, 1], np.array(errors["restore"])[:, 1]).pvalue)
        rows.append({"model": model, "policy": name, "pad": pad, "edge": e[:, 0].mean(), "band": e[:, 1].mean(),
                     "inside": e[:, 2].mean(), "p": p, "radius": radius})
    return rows


def write(rows: list[dict], out: Path, images: int, size: tuple[int, int]) -> None:
    lines = [
        "# The image border: `teachdiff restore` against the BMZ package's padding",
        "",
        f"Run on {datetime.date.today()} by `benchmarks/bench_border.py` ({platform.machine()}, torch "
        f"{torch.__version__}): {images} simulated captures of {size[0]}x{size[1]} per model (seeds no split "
        "uses), each restored whole by the released quick zoo model under three border policies (the module "
        "docstring). MAE to the GT in grey levels (0..255), means over the captures; the band is the "
        "network's receptive radius; p: Wilcoxon signed-rank test of the per-capture band MAE against "
        "`restore`'s.",
        "",
        f"| model | policy | mirror pad per side | MAE outer {EDGE} px | MAE band | MAE inside | p vs restore |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p = "" if r["p"] is None else ("<0.001" if r["p"] < 1e-3 else f"{r['p']:.3f}")
        lines.append(f"| {r['model']} (radius {r['radius']}) | {r['policy']} | {r['pad']} | {r['edge']:.3f} | "
                     f"{r['band']:.3f} | {r['inside']:.3f} | {p} |")
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["synthetic-microtubules-care-quick",
                                                       "synthetic-microtubules-rcan-quick"])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--size", type=int, nargs=2, default=(200, 168))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/border.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [row for model in args.models for row in measure(model, args.images, tuple(args.size))]
    write(rows, args.out, args.images, tuple(args.size))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
