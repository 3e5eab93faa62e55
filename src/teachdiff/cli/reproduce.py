"""``teachdiff reproduce``: the command line of :mod:`teachdiff.evaluation.reproduce` (parsing only; the
library is imported when the command runs, so that ``teachdiff --help`` stays quick)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from teachdiff.cli.args import positive_int, zero_to_one
from teachdiff.core import choices
from teachdiff.core.paper import POSTPROCESSING

EXAMPLES = """
examples:
  teachdiff reproduce synthetic-zebrafish --preset quick --out runs/repro-zf   # minutes on a CPU
  teachdiff reproduce zebrafish --preset paper --out runs/zebrafish             # Table 5 (GPU, hours)
  teachdiff reproduce microtubules --preset paper --models ddpm care --out runs/mt
"""


DESCRIPTION = """\
Re-run a paper result for one dataset: load each model from the model zoo (or train it with the
preset), restore the test split (DDPM, DDPM-avg, the benchmark models and two classical filters),
post-process under each --rescale mode, re-align to the GT for registered datasets (§4.1), score
every image with every metric and write scores.csv, table.md (medians with bootstrap CIs, Mood's
and the paired Wilcoxon test against DDPM-avg, next to the paper's numbers), boxplots.png and
averaging.png. See teachdiff.evaluation.reproduce for the details of each step."""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("reproduce", help="train, restore and score a dataset like the paper's tables",
                              description=DESCRIPTION, epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", help="a name from `teachdiff data list`")
    p.add_argument("--preset", default="quick", choices=choices.PRESETS,
                   help="quick: minutes on a CPU; colab: one Colab T4 session; paper: the paper's settings")
    p.add_argument("--precision", default="auto", choices=choices.PRECISIONS,
                   help="auto: bf16 on GPUs with bf16, fp16 on older GPUs, fp32 on the CPU (teachdiff.core.precision)")
    p.add_argument("--out", required=True, help="folder for models, scores.csv, table.md and figures")
    p.add_argument("--models", nargs="+", choices=choices.MODEL_KINDS)
    from teachdiff.inference.settings import FAST_SAMPLING, PAPER_SAMPLING, SAMPLERS

    fast, paper = FAST_SAMPLING, PAPER_SAMPLING
    p.add_argument("--samples", type=positive_int, help=f"samples averaged for DDPM-avg (default: the preset's; "
                                                        f"paper: {paper.samples}, quick: 4)")
    p.add_argument("--sampler", choices=SAMPLERS,
                   help=f"default: the preset's. --preset paper reproduces the paper with {paper.sampler} "
                        f"({paper}); quick uses ddim, 10 steps, 4 samples. The fast equivalent of the paper's "
                        f"setting (benchmarks/results/frontier.md) is --sampler {fast.sampler} --steps "
                        f"{fast.steps} --samples {fast.samples}" + (f" --eta {fast.eta:g}" if fast.eta else "") +
                        f" ({fast.calls} instead of {paper.calls} calls)")
    p.add_argument("--steps", type=positive_int, help="steps of ddim / dpm++ (default: the preset's, 10 in quick)")
    p.add_argument("--eta", type=zero_to_one, help="ddim only: 0 deterministic (default), 1 fresh noise at every step")
    p.add_argument("--test-images", type=positive_int, help="score only the first N test patches")
    p.add_argument("--rescale", nargs="+", choices=list(POSTPROCESSING), metavar="MODE",
                   help="post-processing before scoring, one table each (default: paper none): paper = §3.6 "
                        "(CARE, Noise2Void, UNet-RCAN and the filters rescaled to the GT's training distribution, "
                        "DDPM and pix2pix only clipped); none = every method only clipped; all = every method "
                        "rescaled alike")
    p.add_argument("--align", action=argparse.BooleanOptionalAction, default=None,
                   help="re-align every prediction to the GT before scoring (§4.1; default: for registered "
                        "datasets, i.e. microtubules and synapses and their synthetic stand-ins)")
    p.add_argument("--train", action="store_true",
                   help="train every model with the preset even where the model zoo has one")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from teachdiff.core.precision import set_precision
    from teachdiff.evaluation.reproduce import ReproduceConfig, reproduce

    set_precision(args.precision)
    cfg = ReproduceConfig.preset_for(args.dataset, args.preset)
    changes = {"models": tuple(args.models) if args.models else None, "n_avg": args.samples,
               "test_images": args.test_images, "use_zoo": False if args.train else None,
               "sampler": args.sampler, "steps": args.steps, "eta": args.eta,
               "postprocessing": tuple(dict.fromkeys(args.rescale)) if args.rescale else None, "align": args.align}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in changes.items() if v is not None})
    reproduce(cfg, args.out, progress=not args.no_progress)
    print((Path(args.out) / "table.md").read_text())
    return 0
