"""``teachdiff restore``: restore microscopy images with a trained checkpoint.

For the diffusion model it writes, per input ``<name>.tif``/``.png``, into the output folder:

- ``<name>_mean.tif``    DDPM-avg, the mean of ``--samples`` samples (§S5), in the input's scale
- ``<name>_sample.tif``  the first of those samples (the paper's single-sample "DDPM")
- ``<name>_std.tif``     standard-deviation uncertainty map, Eq. 15 (0..255 scale / 255)
- ``<name>_entropy.tif`` entropy uncertainty map, Eq. 16 (natural log, 0..ln N)

With ``--interval LEVEL`` (e.g. 0.9) it also writes ``<name>_lower.tif`` and ``<name>_upper.tif``:
by default the per-pixel (1 - LEVEL)/2 and (1 + LEVEL)/2 quantiles of the samples, which are
*not* calibrated (with N samples even a perfect model's interval covers at most (N - 1)/(N + 1),
and an overconfident model's covers less; see ``teachdiff.evaluation.metrics.sample_interval``). With
``--calibration FILE`` (a ``teachdiff.evaluation.metrics.ConformalScale`` saved as JSON, fitted on
validation images restored with the same sampler, steps and samples) they are instead the
split-conformal interval mean -+ scale * std, which holds its level on data like the
validation images.

Sampling: the paper's DDPM-avg is ``--sampler ddpm --samples 15`` (200 ancestral steps, 3000
network calls per patch); ``teachdiff reproduce --preset paper`` uses it. The default here is the
fast equivalent from ``benchmarks/results/frontier.md``: the cheapest setting of at least 8
samples (fewer make a std map too noisy to read) whose MAE was within 2 % of the paper's on the
synthetic datasets with the zoo's models.

For a benchmark model (CARE, Noise2Void, pix2pix, UNet-RCAN), which is deterministic and has no
samples, it writes ``<name>_restored.tif`` only. All TIFFs are float32 with the input's height
and width (a z-stack gives stacks, restored slice by slice); intensities are in the input's own
scale (0..255 for 8-bit, 0..65535 for 16-bit, 0..4095 with ``--bit-depth 12``). A model trained on
your own folder (``teachdiff train --data``) carries its normalisation in the checkpoint, and it is
applied here as in training (percentile statistics included). Each TIFF has an 8-bit PNG preview beside it (the
middle slice of a stack; the std map scaled to its 99.5th percentile, the entropy map to ln N).
Each TIFF's description holds the options as JSON, with the input's bit depth, so that
``teachdiff evaluate --pred OUT`` scores the ``_mean`` / ``_restored`` TIFFs on the right scale.

Large images are processed in overlapping tiles blended without seams: by default tiles of
about the model's training patch size overlapping by 1/8 (``--tile``, ``--overlap`` override).
One progress bar counts the network calls, with an ETA; a warning after the first few calls
(the first, a warm-up, is left out of the estimate) says when the run will take long on this
device and names a faster setting. Existing results are never overwritten unless
``--overwrite`` is given.

A model restores images like those it was trained on. Each input is compared with the model's
training data card (:mod:`teachdiff.store.datacard`): a warning names the model and the intensity
percentiles that differ when the input, scaled as the model scales its inputs, lies far outside
its training inputs (``teachdiff weights suggest`` ranks the zoo's models for it), and when the
image is smaller than the training patches. A baseline does not sample: ``--interval`` is
refused for it, and ``--samples``/``--sampler``/``--steps``/``--eta`` get a warning that they
are ignored. An interval of N sample quantiles covers at most (N - 1)/(N + 1), so a level that
``--samples`` cannot reach gets a warning with the number of samples needed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from teachdiff.cli.args import non_negative_int, positive_int, unit_interval, zero_to_one
from teachdiff.core import choices

if TYPE_CHECKING:
    import numpy as np

    from teachdiff.inference.settings import SamplingSetting

EXAMPLES = """
examples:
  # the fast default ({fast}) with uncertainty maps
  teachdiff restore --checkpoint runs/mt/best.pt data/raw/fov01.tif --out restored/

  # the paper's setting: DDPM-avg of 15 samples of 200 ancestral steps, a whole folder
  teachdiff restore --checkpoint runs/mt/best.pt data/raw/*.tif --sampler ddpm --samples 15 --out restored/

  # a 90 % interval per pixel (lower/upper TIFFs), conformally calibrated on validation images
  teachdiff restore --checkpoint runs/mt/best.pt fov01.tif --interval 0.9 --calibration mt-cal.json --out restored/

  # a 2560 x 2560 field of view in 256-pixel tiles overlapping by 32 pixels, on a fixed seed
  # (default: tiles of the model's training patch size, overlapping by 1/8)
  teachdiff restore --checkpoint runs/mt/best.pt big.tif --tile 256 --overlap 32 --seed 1 --out restored/

  # a trained model from the zoo instead of your own checkpoint (`teachdiff weights list`)
  teachdiff restore --model synthetic-microtubules-ddpm-quick data/raw/fov01.tif --out restored/

  # a baseline checkpoint writes <name>_restored.tif
  teachdiff restore --checkpoint runs/care/best.pt data/raw/fov01.tif --out restored-care/
"""

DIFFUSION_OUTPUTS = ("mean", "sample", "std", "entropy")
INTERVAL_OUTPUTS = ("lower", "upper")
BASELINE_OUTPUTS = ("restored",)


SAMPLING_OPTIONS = ("--samples", "--sampler", "--steps", "--eta")


class _Given(argparse.Action):
    """Store the value and remember that the option was given (its default may equal the value):
    a regression model ignores the sampling options, and is told so only when they were given."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given = getattr(namespace, "given", frozenset()) | {option_string}


def add_parser(subparsers) -> None:
    from teachdiff.inference.settings import FAST_SAMPLING, PAPER_SAMPLING, SAMPLERS

    p = subparsers.add_parser("restore", help="restore images with a trained model (DDPM-avg + uncertainty)",
                              description=__doc__, epilog=EXAMPLES.format(fast=FAST_SAMPLING),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="8/16-bit grayscale TIFF or PNG images or z-stacks")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint",
                        help="a checkpoint written by `teachdiff train` (best.pt), or that run's --out folder")
    source.add_argument("--model", help="a trained model from the zoo, by name (`teachdiff weights list`)")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    fast, paper = FAST_SAMPLING, PAPER_SAMPLING
    p.add_argument("--samples", type=positive_int, action=_Given, default=fast.samples,
                   help=f"samples averaged into DDPM-avg (default {fast.samples}; the paper: {paper.samples}, §S5)")
    p.add_argument("--sampler", default=fast.sampler, action=_Given, choices=SAMPLERS,
                   help="ddpm: the paper's ancestral sampler over all T steps; ddim or dpm++ (DPM-Solver++(2M)): "
                        f"--steps network calls per sample (default {fast.sampler}; the paper: {paper.sampler})")
    p.add_argument("--steps", type=positive_int, action=_Given, default=fast.steps,
                   help=f"steps of ddim / dpm++ (default {fast.steps}; ignored by ddpm, which takes all T)")
    p.add_argument("--eta", type=zero_to_one, action=_Given, default=fast.eta,
                   help=f"ddim only: 0 deterministic, 1 fresh noise at every step (default {fast.eta:g})")
    p.add_argument("--interval", type=unit_interval, metavar="LEVEL",
                   help="also write <name>_lower/_upper.tif, a per-pixel interval of this level, e.g. 0.9")
    p.add_argument("--calibration", metavar="FILE",
                   help="a ConformalScale JSON: calibrated interval mean -+ scale * std instead of sample quantiles")
    p.add_argument("--tile", type=non_negative_int, help="tile size in pixels; 0 = whole image at once (default: "
                   "the model's training patch size, or a little larger where that is cheaper; 256 for baselines)")
    p.add_argument("--overlap", type=non_negative_int, help="overlap of neighbouring tiles in pixels (default: 1/8 of "
                   "the tile)")
    p.add_argument("--batch-size", type=positive_int, help="images per network call (default: chosen from the device)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the sampling noise (default 0)")
    p.add_argument("--bit-depth", type=positive_int, metavar="B",
                   help="bits the camera really used, e.g. 12 for 12-bit data in 16-bit files (default: as the "
                   "model was trained, else the pixel type; a warning says when a 16-bit file looks 12-bit)")
    p.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    p.add_argument("--precision", default="auto", choices=choices.PRECISIONS,
                   help="auto: bf16 autocast on GPUs with bf16, fp16 on older GPUs, fp32 on the CPU")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (pays off for many images)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or time warnings (for logs)")
    p.set_defaults(func=run, given=frozenset())


def run(args) -> int:
    import teachdiff
    from teachdiff.core import precision
    from teachdiff.inference.restore import draws_samples
    from teachdiff.inference.settings import SamplingSetting
    from teachdiff.store.checkpoint import checkpoint_file
    from teachdiff.store.resolve import load_method

    device = teachdiff.device(args.device)
    sampling = SamplingSetting(args.sampler, args.steps, args.samples, args.eta)
    # Check the inputs and the output folder before the (slow) checkpoint load and restoration.
    plan_outputs(args.inputs, args.out, outputs=(), overwrite=args.overwrite)
    calibration = load_calibration(args.calibration, args.interval, sampling.sampler, sampling.steps,
                                   sampling.samples, sampling.eta)
    if args.model is not None:
        from teachdiff.store.resolve import load_zoo_model

        method = load_zoo_model(args.model, map_location=device)
    else:
        checkpoint = checkpoint_file(args.checkpoint)
        if checkpoint != Path(args.checkpoint):
            print(f"using {checkpoint}: the best checkpoint of the training run in {args.checkpoint}")
        method = load_method(checkpoint, map_location=device)
    precision.set_precision(args.precision)
    if args.compile:  # load_method has laid the network out for inference already
        precision.prepare_network(method, device, compile=True, training=False)
    name = args.model or str(args.checkpoint)
    ignored = [option for option in SAMPLING_OPTIONS if option in getattr(args, "given", ())]
    if ignored and not draws_samples(method):
        warnings.warn(f"{' '.join(ignored)} ignored: {name} is a {method.kind} model, a deterministic regression "
                      "that restores each image once; only the DDPM samples (and so averages samples and gives "
                      "uncertainty maps and intervals).", UserWarning, stacklevel=1)
    written = restore_files(method, args.inputs, args.out, sampling, tile=_tile_arg(args.tile), overlap=args.overlap,
                            seed=args.seed, batch_size=args.batch_size, overwrite=args.overwrite,
                            progress=not args.no_progress, bit_depth=args.bit_depth, interval=args.interval,
                            calibration=calibration, model_name=name)
    print(f"wrote {len(written)} files for {len(args.inputs)} input(s) to {args.out}")
    return 0


def _tile_arg(tile: int | None) -> int | str | None:
    """--tile: absent = "auto" (from the model), 0 = None (the whole image), else the size."""
    if tile is None:
        return "auto"
    return tile or None


def fast_setting_hint(sampler: str, steps: int, n_samples: int) -> str:
    """What to pass for a faster restoration, for the slow-run warning.

    A run slower than the fast setting (:data:`teachdiff.inference.settings.FAST_SAMPLING`, whose MAE was
    within 2 % of the paper's DDPM-avg) is pointed to it; a run already that fast can only
    drop samples (a noisier mean and uncertainty map) or move to a GPU.
    """
    from teachdiff.inference.settings import FAST_SAMPLING as fast

    flags = []
    if sampler == "ddpm" or steps > fast.steps:
        flags.append(f"--sampler {fast.sampler} --steps {fast.steps} --eta {fast.eta:g}")
    if n_samples > fast.samples:
        flags.append(f"--samples {fast.samples}")
    if flags:
        return f"for a faster result use {' '.join(flags)} (the fast setting: {fast}), or a GPU (--device cuda)"
    return ("for a faster result use fewer --samples (a noisier mean and uncertainty map), restore a crop first, "
            "or use a GPU (--device cuda)")


# ----------------------------------------------------------------------------------------------
# Checks before any work
# ----------------------------------------------------------------------------------------------


def load_calibration(path: str | None, level: float | None, sampler: str, steps: int, samples: int,
                     eta: float = 0.0):
    """The ConformalScale of ``--calibration``, checked against ``--interval`` and the sampler options."""
    if path is None:
        return None
    from teachdiff.evaluation.metrics import ConformalScale

    if level is None:
        raise ValueError("--calibration needs --interval LEVEL (the level the calibration was fitted for).")
    calibration = ConformalScale.load(path)
    if abs(calibration.level - level) > 1e-9:
        raise ValueError(f"{path} was fitted for a {calibration.level:g} interval, not {level:g}; pass "
                         f"--interval {calibration.level:g} or fit a calibration for {level:g}.")
    ours = {"sampler": sampler, "steps": steps if sampler != "ddpm" else None, "samples": samples,
            "eta": eta if sampler == "ddim" else None}
    fitted = {k: calibration.settings.get(k) for k in ours}
    if fitted["sampler"] != "ddim":
        fitted["eta"] = None
    if fitted["sampler"] == "ddpm":
        fitted["steps"] = None
    if any(fitted[k] is not None and fitted[k] != v for k, v in ours.items()):
        raise ValueError(f"{path} was fitted on std maps of {fitted}, but this run uses {ours}; the scale holds "
                         "only for std maps made the same way: pass those options or fit a new calibration.")
    return calibration


def _check_out_dir(out_dir: Path) -> None:
    """The output folder exists (created if needed) and accepts a file; else a clear error."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder; choose a folder name for the results.")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".teachdiff-write-test-"):
            pass
    except OSError as err:
        raise PermissionError(f"cannot write into output folder {out_dir} ({err.strerror or err}); choose a "
                              "writable --out folder (or free disk space).") from None


def plan_outputs(inputs: Sequence[str | Path], out_dir: str | Path, outputs: Sequence[str],
                 overwrite: bool = False) -> list[tuple[Path, list[Path]]]:
    """Check every input and the output folder; the output files of each input.

    Fails before any work on: a missing input, an unreadable / truncated / colour / non-8/16-bit
    image (every input is decoded once here, so a bad file anywhere in the list stops the run
    before the first image is restored), two inputs with the same name, an output folder that is
    a file or not writable, and outputs that exist already (unless ``overwrite``). ``outputs``
    are the name suffixes (e.g. ``("mean", "std")``); ``()`` checks only the inputs and the folder.
    """
    from teachdiff.data.io import read_image

    if not inputs:
        raise ValueError("no input images given; pass one or more TIFF/PNG files.")
    out_dir = Path(out_dir)
    plan, names = [], {}
    for item in inputs:
        path = Path(item)
        if not path.is_file():
            raise FileNotFoundError(f"input image {path} does not exist" +
                                    ("; it is a folder: pass the files, e.g. DIR/*.tif" if path.is_dir() else "."))
        read_image(path)  # clear errors, naming the file, for RGB, float, empty, truncated, corrupt files
        if path.stem in names:
            raise ValueError(f"inputs {names[path.stem]} and {path} have the same name {path.stem!r}, so their "
                             "results would overwrite each other; restore them into different --out folders.")
        names[path.stem] = path
        plan.append((path, [out_dir / f"{path.stem}_{s}{ext}" for s in outputs for ext in (".tif", ".png")]))
    _check_out_dir(out_dir)
    existing = [p for _, files in plan for p in files if p.exists()]
    if existing and not overwrite:
        shown = ", ".join(str(p) for p in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise FileExistsError(f"{len(existing)} result file(s) exist already ({shown}); pass --overwrite to "
                              "replace them or choose another --out folder.")
    return plan


# ----------------------------------------------------------------------------------------------
# Restoration of files
# ----------------------------------------------------------------------------------------------


def restore_files(method, inputs: Sequence[str | Path], out_dir: str | Path, sampling: SamplingSetting | None = None,
                  *, tile: int | str | None = "auto", overlap: int | None = None, seed: int = 0,
                  batch_size: int | None = None, overwrite: bool = False, progress: bool = True,
                  bit_depth: int | None = None, interval: float | None = None, calibration=None,
                  slow_after_s: float = 300.0, model_name: str | None = None, n_samples: int | None = None,
                  sampler: str | None = None, steps: int | None = None, eta: float | None = None) -> list[Path]:
    """Restore image files with a loaded method and write the results; returns the written paths.

    ``method`` is what :func:`teachdiff.store.resolve.load_method` returns, or anything with
    ``.restore(x)`` mapping (N, 1, H, W) in [-1, 1] to the same; each image goes through
    :func:`teachdiff.inference.restore.restore_method_image`, whatever the method. A method that samples
    (:func:`teachdiff.inference.restore.draws_samples`, the DDPM) is sampled with ``sampling`` (default
    the paper's DDPM-avg, :data:`teachdiff.inference.settings.PAPER_SAMPLING`, as
    :func:`teachdiff.inference.restore.restore_image`; ``teachdiff restore`` passes its flags, whose
    default is the fast setting); ``n_samples``, ``sampler``, ``steps`` and ``eta`` replace single
    fields of it. ``interval`` (a level in (0, 1)) adds the ``lower``/``upper`` maps: the samples'
    quantiles, or with ``calibration`` (a :class:`teachdiff.evaluation.metrics.ConformalScale`, fitted on the
    0..255 scale) the conformal interval mean -+ scale * std, in the input's scale.

    Intensities are mapped as the model was trained (``method.normalization``, see
    :func:`teachdiff.data.folder.restore_normalization`; ``bit_depth`` overrides the bit depth)
    and the results are written in the input's intensity scale.
    See the module docstring for the files written. ``tile=None`` restores whole images,
    ``tile="auto"`` picks tiles from the model (:func:`teachdiff.inference.budget.default_tile`;
    :data:`teachdiff.inference.restore.DETERMINISTIC_TILE` for a baseline). With ``progress``, a
    bar over network calls and, when the calls after the first predict more than ``slow_after_s``
    seconds for an image, a warning naming faster flags (:func:`fast_setting_hint`).

    Warnings (``UserWarning``, naming ``model_name``): an image whose intensities, after the
    model's scaling, lie far outside its training inputs' (:func:`teachdiff.store.datacard.compare` with
    the model's ``data_card``), an image smaller than the model's training patches, and an
    ``interval`` that the samples cannot reach (:func:`teachdiff.evaluation.metrics.samples_for_level`).
    An ``interval`` for a model that does not sample (a baseline) is an error.
    """
    import torch
    from tqdm.auto import tqdm

    from teachdiff.core.progress import CallProgress
    from teachdiff.data import read_image
    from teachdiff.data.folder import restore_normalization
    from teachdiff.inference.restore import draws_samples, restore_method_image
    from teachdiff.inference.settings import PAPER_SAMPLING

    fields = {"samples": n_samples, "sampler": sampler, "steps": steps, "eta": eta}
    sampling = dataclasses.replace(sampling or PAPER_SAMPLING, **{k: v for k, v in fields.items() if v is not None})
    sampled = draws_samples(method)
    label = model_name or f"the {getattr(method, 'kind', '?')} model"
    _check_request(method, sampled, sampling.samples, interval, calibration, label)
    card = _training_card(method)
    outputs = DIFFUSION_OUTPUTS + (INTERVAL_OUTPUTS if interval is not None else ()) if sampled else BASELINE_OUTPUTS
    plan = plan_outputs(inputs, out_dir, outputs, overwrite)
    if isinstance(method, torch.nn.Module):
        method.eval()
    options = _run_options(method, sampled, sampling, seed, tile, overlap, interval, calibration)
    hint = fast_setting_hint(sampling.sampler, sampling.steps, sampling.samples)

    written: list[Path] = []
    for path, _files in tqdm(plan, desc="images", unit="image", disable=not progress or len(plan) < 2):
        image = read_image(path)  # (Z, H, W) uint8 / uint16
        scaling, warning = restore_normalization(getattr(method, "normalization", None), image, str(path), bit_depth)
        if warning:
            warnings.warn(warning, UserWarning, stacklevel=2)
        _warn_unlike_training(path, image, scaling, card, label)
        meter = CallProgress(slow_after_s, hint) if progress else False
        try:
            result = restore_method_image(method, image[0] if image.shape[0] == 1 else image, normalization=scaling,
                                          sampling=sampling, tile=tile, overlap=overlap, seed=seed,
                                          batch_size=batch_size, interval=interval, calibration=calibration,
                                          progress=meter)
        finally:
            if meter:
                meter.close()
        # bit_depth: the scale the values are on, for `teachdiff evaluate` (percentile mode: the pixel type's)
        scale_bits = scaling.bit_depth if scaling.mode == "bitdepth" else scaling.container_bits
        for suffix in outputs:
            values = result.mean if suffix == "restored" else getattr(result, suffix)  # a regression's one output
            written += _write_result(Path(out_dir) / f"{path.stem}_{suffix}", values, suffix, scaling.bit_depth,
                                     sampling.samples, dict(options, input=str(path), map=suffix,
                                                            bit_depth=scale_bits, scaling=scaling.describe()))
    return written


def _training_card(method) -> dict | None:
    """The model's training data card; for a checkpoint without one, the network's own training patch size."""
    card = getattr(method, "data_card", None)
    patch_size = getattr(method, "training_patch_size", None)
    return {"patch_size": patch_size} if card is None and patch_size else card


def _check_request(method, sampled: bool, n_samples: int, interval: float | None, calibration,
                   label: str) -> None:
    """Refuse what cannot be done before any work, and warn about an interval the samples cannot reach."""
    channels = getattr(method, "input_channels", 1)
    if channels != 1:
        raise ValueError(f"this checkpoint expects {channels} input channels, but teachdiff restore reads "
                         "single-channel grayscale images; use a model trained on grayscale data.")
    if interval is not None and not 0 < interval < 1:
        raise ValueError(f"--interval must be a level strictly between 0 and 1, e.g. 0.9, got {interval!r}.")
    if interval is not None and n_samples < 2:
        raise ValueError(f"an interval needs at least 2 samples per pixel; pass --samples 2 or more, not {n_samples}.")
    if calibration is not None and interval is None:
        raise ValueError("a calibration needs an interval level; pass --interval with --calibration.")
    if interval is not None and not sampled:
        raise ValueError(f"--interval needs samples, but {label} is a {getattr(method, 'kind', '?')} model, a "
                         "deterministic regression with one output per image: only the DDPM samples. Leave out "
                         "--interval (and --calibration), or restore with a DDPM checkpoint.")
    if interval is not None and calibration is None:
        from teachdiff.evaluation.metrics import samples_for_level

        needed = samples_for_level(interval)
        if n_samples < needed:
            warnings.warn(f"--interval {interval:g} from {n_samples} samples: the widest interval of N samples, "
                          f"[min, max], covers at most (N - 1)/(N + 1) = {(n_samples - 1) / (n_samples + 1):.0%} "
                          f"even for a perfect model, so this one cannot reach {interval:.0%}; pass --samples "
                          f"{needed} or more, or --calibration FILE for a calibrated interval.", UserWarning,
                          stacklevel=3)


def _run_options(method, sampled: bool, sampling: SamplingSetting, seed: int, tile, overlap,
                 interval: float | None, calibration) -> dict:
    """The options every result's TIFF description records (with the input and its scale)."""
    options = {"kind": getattr(method, "kind", "?"), "tile": tile, "overlap": overlap}
    if sampled:
        options.update(samples=sampling.samples, seed=seed, sampler=sampling.sampler, steps=sampling.steps,
                       **method.sampler_options(), eta=sampling.eta)
        if interval is not None:
            options.update(interval=interval, interval_kind="sample quantiles (uncalibrated)" if calibration is None
                           else f"conformal, scale {calibration.scale:.4g} fitted on {calibration.n_calibration} px")
    return options


def _warn_unlike_training(path: Path, image, scaling, card: dict | None, label: str) -> None:
    """Warn when ``image`` is smaller than the training patches, or its intensities after
    ``scaling`` lie far outside the training inputs' (:mod:`teachdiff.store.datacard`)."""
    from teachdiff.store import datacard

    too_small = datacard.check_sizes(card, image.shape)
    if too_small:
        warnings.warn(f"{path}: {too_small.replace('the model', label, 1)}.", UserWarning, stacklevel=3)
    comparison = datacard.compare(card, scaling.input_to_model(image))
    if comparison is not None and comparison.far:
        levels = datacard.input_levels(scaling.to_dict(), scaling.bit_depth)
        trained_on = ", ".join(x for x in (card.get("dataset"), card.get("modality")) if x)
        warnings.warn(f"{path} lies far outside the intensities {label} was trained on ({trained_on}): "
                      f"{comparison.explain(levels)}, in this file's intensities after the model's scaling "
                      f"({scaling.describe()}). Its result may be meaningless: `teachdiff weights suggest "
                      f"{path}` ranks the zoo's models for it; fine-tuning on pairs of your own is best.",
                      UserWarning, stacklevel=3)


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------


def _write_file(path: Path, write) -> Path:
    """:func:`teachdiff.store.checkpoint.atomic_write` (never a truncated result under the final name),
    with an error that says what to do when the disk is full or the folder not writable."""
    from teachdiff.store.checkpoint import atomic_write

    try:
        atomic_write(path, write)
    except OSError as err:
        raise PermissionError(f"could not write {path} ({err.strerror or err}); check free disk space and that "
                              "the --out folder is writable.") from None
    return path


def _preview(values: np.ndarray, kind: str, bit_depth: int, n_samples: int) -> np.ndarray:
    """An 8-bit picture of one map (the middle slice of a stack)."""
    import numpy as np
    plane = values[values.shape[0] // 2] if values.ndim == 3 else values
    if kind == "std":
        top = float(np.percentile(plane, 99.5)) or 1.0
    elif kind == "entropy":
        top = math.log(max(n_samples, 2))
    else:
        top = float(2**bit_depth - 1)
    return np.clip(np.rint(plane / top * 255), 0, 255).astype(np.uint8)


def _write_result(stem: Path, values: np.ndarray, kind: str, bit_depth: int, n_samples: int,
                  metadata: dict) -> list[Path]:
    import numpy as np
    import tifffile
    from PIL import Image

    values = np.ascontiguousarray(values, dtype=np.float32)
    tif = _write_file(stem.with_name(stem.name + ".tif"),
                      lambda tmp: tifffile.imwrite(tmp, values, description=json.dumps(metadata)))
    png = _write_file(stem.with_name(stem.name + ".png"),
                      lambda tmp: Image.fromarray(_preview(values, kind, bit_depth, n_samples)).save(tmp, format="PNG"))
    return [tif, png]
