"""Decorrelation resolution: agreement with the authors' MATLAB code, and time per 256² image.

    python benchmarks/bench_decorrelation.py
    python benchmarks/bench_decorrelation.py --compare-with OLD.py   # another version of the module

Agreement is measured on the fixture of tests/data/decorr_fixture (k_c of ``getDcorr.m`` run
unmodified in GNU Octave). ``--compare-with`` loads another file of
``teachdiff/metrics/decorrelation.py`` (e.g. ``git show REV:src/teachdiff/metrics/decorrelation.py
> OLD.py``) and measures it the same way. Writes benchmarks/results/decorrelation.md.
"""

from __future__ import annotations

import argparse
import os
import importlib.util
import json
import platform
import sys
import warnings
from pathlib import Path

import numpy as np

from bench_metrics import MACHINE, synthetic_pair, time_call
from teachdiff.data.synthetic import simulate_pair
from teachdiff.evaluation.metrics import decorrelation

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "decorr_fixture"
RESULTS = Path(__file__).parent / "results" / "decorrelation.md"


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location("decorrelation_compared", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def measure(module, name: str) -> list[str]:
    reference = json.loads((FIXTURE / "getdcorr.json").read_text())["images"]
    errors, undefined = [], 0
    with np.load(FIXTURE / "images.npz") as images:
        for image_name, ref in reference.items():
            result = module.decorrelation_analysis(images[image_name].astype(np.float64))
            undefined += result.reason is not None
            errors.append(abs(result.kc - ref["kc"]))
    gt = synthetic_pair(0)[1]
    raw = simulate_pair("microtubules", 256, seed=0).x.astype(np.float64)
    t_gt = time_call(lambda: module.decorrelation_resolution(gt))
    t_raw = time_call(lambda: module.decorrelation_resolution(raw))
    return [
        f"| {name} | {max(errors):.2g} | {np.median(errors):.2g} | {sum(e > 1e-3 for e in errors)}/"
        f"{len(errors)} | {undefined} | {t_gt:.1f} | {t_raw:.1f} |"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare-with", type=Path, help="another version of decorrelation.py")
    parser.add_argument("--label", default="previous version", help="its name in the table")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    load = os.getloadavg()
    rows = measure(decorrelation, "teachdiff (this version)")
    if args.compare_with:
        rows += measure(load_module(args.compare_with), args.label)
    lines = [
        "# Decorrelation resolution: agreement with getDcorr.m and speed",
        "",
        f"Machine: {MACHINE} ({platform.machine()}, NumPy {np.__version__}; other jobs were sharing "
        "the cores, so times are upper bounds; load average at start: "
        + ", ".join(f"{x:.1f}" for x in load) + ").",
        "Agreement: k_c against `getDcorr(apodImRect(image, 20), linspace(0, 1, 50), 10)` of "
        "github.com/Ades91/ImDecorr run unmodified in GNU Octave, on the 25 fixture images of "
        "tests/data/decorr_fixture (64-128 px). Times: median of 7 calls of "
        "`decorrelation_resolution` on a 256 x 256 synthetic ground truth (as in bench_metrics.py) "
        "and on a simulated raw microtubule capture.",
        "",
        "| version | max abs(Δk_c) | median abs(Δk_c) | images off by > 1e-3 | undefined (nan) "
        "| ms per 256² GT | ms per 256² raw |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Command: `python benchmarks/bench_decorrelation.py"
        + (f" --compare-with OLD.py --label '{args.label}'` (OLD.py: that version's "
           "`src/teachdiff/metrics/decorrelation.py`, from `git show`)" if args.compare_with else "`"),
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
