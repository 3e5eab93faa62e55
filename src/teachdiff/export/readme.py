"""The package's words: its README, what the model was trained on, and what it must not be trusted for."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from teachdiff.core.paper import METHOD_LABELS as LABELS
from teachdiff.data.folder import Normalization
from teachdiff.data.registry import PAPER_CITATION
from teachdiff.inference.settings import FAST_SAMPLING

INSTALL_TEACHDIFF = "teachdiff @ git+https://github.com/teachdiff/teachdiff"
PAPER_CITATION_TEXT = f"{PAPER_CITATION} arXiv:2409.12078."
PAPER_DOI = "10.48550/arXiv.2409.12078"  # the arXiv record of the paper



def _environment_file(path: Path) -> None:
    torch_version = torch.__version__.split("+")[0]
    path.write_text(
        "name: teachdiff\n"
        "channels:\n  - conda-forge\n  - nodefaults\n"
        "dependencies:\n"
        "  - python>=3.10\n"
        "  - pip\n"
        f"  - pytorch>={torch_version.rsplit('.', 1)[0]}\n"
        "  - pip:\n"
        f'    - "{INSTALL_TEACHDIFF}"\n'
    )


def _subject(train_config: dict) -> str:
    folder = train_config.get("data")
    if folder:
        return Path(str(folder.get("path", "own-data"))).name or "own-data"
    return str(train_config.get("dataset") or "unknown-data")


def _affine_text(name: str, gain: float, offset: float) -> str:
    return f"{name} * {gain:.9g} {'-' if offset < 0 else '+'} {abs(offset):.9g}"


def _package_name(kind: str, train_config: dict) -> str:
    preset = train_config.get("preset")
    name = f"teachdiff {LABELS[kind]} {_subject(train_config)}" + (f" ({preset})" if preset else "")
    return re.sub(r"[^A-Za-z0-9_+\- ()]", "-", name)[:64]


# ----------------------------------------------------------------------------------------------
# The README
# ----------------------------------------------------------------------------------------------


def _training_text(ex) -> str:
    from teachdiff.data.registry import DATASETS

    config, payload, zoo_entry = ex.train_config, ex.payload, ex.zoo_entry
    lines = []
    folder = config.get("data")
    info = DATASETS.get(config.get("dataset")) if not folder else None
    if folder:
        lines.append(f"- data: your own folder of pairs `{folder.get('path')}` (raw -> gt), split by field of view "
                     f"{tuple(folder.get('split_fractions', ()))} with seed {folder.get('split_seed', 0)}")
    elif info is not None:
        lines += [f"- data: `{info.name}`, {info.title}", f"- modality: {info.modality}",
                  f"- source: {info.source}", f"- pixel size: {info.pixel_size_nm:g} nm ({info.pixel_size_source})",
                  f"- data licence: {info.licence}"]
    else:
        lines.append(f"- data: `{config.get('dataset', 'not recorded')}` (not in teachdiff's registry)")
    keys = ("model", "preset", "patch_size", "batch_size", "lr", "epochs", "steps_per_epoch", "max_steps", "seed")
    recorded = ", ".join(f"{k} {config[k]}" for k in keys if config.get(k) is not None)
    if recorded:
        lines.append(f"- training run: {recorded}; {payload.get('step', '?')} optimizer steps")
    if config.get("init"):
        lines.append(f"- fine-tuned from `{config['init']}`")
    if payload.get("best_val_mae") is not None:
        lines.append(f"- validation MAE at the kept checkpoint: {payload['best_val_mae']:.2f} grey levels "
                     "(0..255 scale)")
    if zoo_entry is not None:
        scores = ", ".join(f"{k} {v}" for k, v in zoo_entry.scores.items())
        lines += [f"- released in teachdiff's model zoo as `{zoo_entry.name}`; trained with `{zoo_entry.command}` "
                  f"in {zoo_entry.train_seconds} s on {zoo_entry.machine}",
                  f"- test scores: {scores} ({zoo_entry.notes})"]
    return "\n".join(lines)


def _limits_text(ex) -> str:
    from teachdiff.data.registry import DATASETS

    norm, kind = ex.norm, ex.kind
    info = DATASETS.get(ex.train_config.get("dataset")) if not ex.train_config.get("data") else None
    items = []
    if info is not None and info.is_synthetic:
        items.append("**real microscope images**: it was trained on simulated images only. It is for teaching and "
                     "for testing software, not for restoring real data.")
    items += [
        "**images unlike its training data**: another microscope, modality, structure, dose, background or pixel "
        "size. A restoration model fails there without any error message. Check it on a few ground-truth pairs "
        "of your own, or fine-tune it on them (`teachdiff train --data DIR --init CHECKPOINT`).",
        "**structures that the input does not show**: a trained network can draw plausible structure that is "
        "not in the sample. Do not count, measure or detect objects from the restoration alone.",
        "**intensities as measurements**: outputs estimate the high-quality image on the capture's scale; they "
        "are not photon counts.",
    ]
    if norm.mode == "percentile":
        items.append(f"**other pixel types or intensity statistics**: inputs are mapped with fixed training-set "
                     f"percentiles ({norm.describe()}) and must be {norm.container_bits}-bit captures like those.")
    else:
        items.append(f"**captures on another intensity scale**: inputs must be {norm.bit_depth}-bit values "
                     f"(0..{2**norm.bit_depth - 1}). Captures of another bit depth (a 12-bit camera writing 16-bit "
                     "files, say) need a package exported with `--bit-depth B`, B their real bit depth.")
    if kind == "ddpm":
        items.append("**the std map as an error bar**: it shows where the samples disagree. A low std does not "
                     "prove a pixel right; a model can be confidently wrong on data unlike its training set "
                     "(chapter 13 of the teachdiff book measures how weakly std and error go together).")
    elif kind == "n2v":
        items.append("**a change of resolution or dose**: Noise2Void only removes noise; its output stays on the "
                     "input's (low-dose) scale, not the high-dose target's.")
    elif kind == "pix2pix":
        items.append("**fine detail**: a GAN generator is trained to look realistic and hallucinates more than "
                     "the other methods.")
    return "\n".join(f"- {item}" for item in items)


def _weights_licence(ex) -> str:
    from teachdiff.data.registry import DATASETS

    config = ex.train_config
    info = DATASETS.get(config.get("dataset")) if not config.get("data") else None
    if info is not None and info.is_synthetic:
        return "trained only on teachdiff's simulated data (MIT), released with the code under the MIT licence."
    if info is not None:
        return (f"trained on `{info.name}`, whose licence is: {info.licence} The data's terms may bind the weights; "
                f"check them before you share this package (declared `{ex.licence}`).")
    return ("trained on data that teachdiff does not know. Whoever trained the model decides the weights' licence "
            f"and states it with `teachdiff export --license` (this package: `{ex.licence}`).")


def _tiling_text(ex, sides: str) -> str:
    """The README's section on tiling, the image border and the cost per tile."""
    geometry = ex.geometry
    border_note = ("" if ex.kind == "ddpm" else " (teachdiff's `benchmarks/results/border.md` measures which is "
                   "closer to the ground truth: `restore`'s, for CARE and UNet-RCAN)")
    device_note = f"{'a GPU' if torch.cuda.is_available() else 'the CPU'} of the exporting machine"
    return f"""## Tiling and cost

Inputs of {sides} pixels per side (batch of any size). The outputs have a halo of
{geometry.halo} pixels: a consumer that tiles a large image crops {geometry.halo} pixels at each tile
border, so neighbouring tiles overlap by {2 * geometry.halo} pixels, as `teachdiff restore` overlaps its
{geometry.restore_tile}-pixel tiles. The input is mirror-padded (reflect) at the image border,
where `teachdiff restore` does not pad: within the network's receptive field of the image border
the two differ slightly{border_note}.

Cost per {geometry.tile}x{geometry.tile} tile: {ex.calls} network call{"s" if ex.calls > 1 else ""}, \
{ex.gflop:.3g} GFLOP; {ex.seconds:.2g} s on {device_note} (torch {torch.__version__}, \
{torch.get_num_threads()} thread(s))."""


def _readme(ex, capture_mean: float, restored_mean: float) -> str:
    norm, kind, geometry = ex.norm, ex.kind, ex.geometry
    gain_in, offset_in = _affine_in(norm)
    gain_out, offset_out = _affine_out(norm)
    sides = f"{geometry.tile} + n x {geometry.step}" if geometry.step else f"exactly {geometry.tile}"
    back = (f"`{ex.output_ids[0]}` is clipped to [-1, 1] and mapped back with "
            f"`{_affine_text('y', gain_out, offset_out)}`"
            + (f", `std` is multiplied by {gain_out:.9g}" if kind == "ddpm" else ""))
    if kind == "ddpm":
        full_range = 2 * gain_out
        outputs = (f"- `mean`: DDPM-avg, the mean of {FAST_SAMPLING.samples} samples of stochastic DDIM with "
                   f"{FAST_SAMPLING.steps} steps (eta = {FAST_SAMPLING.eta:g}), {FAST_SAMPLING.calls} network calls "
                   "per tile: the default of `teachdiff restore`, whose MAE was within 2 % of the paper's "
                   "DDPM-avg (15 samples of 200 ancestral steps, 3000 calls) on teachdiff's synthetic datasets "
                   "(teachdiff's `benchmarks/results/frontier.md`).\n"
                   "- `std`: the per-pixel standard deviation of those samples (Eq. 15 of the paper, 1/N), on the "
                   "capture's intensity scale. `teachdiff restore` writes the same map divided by the scale's "
                   f"full range ({full_range:.6g}).\n\n"
                   f"Sampling is deterministic for seed {ex.seed}: the noise of teachdiff's noise field is keyed by "
                   "the pixel's position in the tile, so a tile always gives the same result and the test outputs "
                   "are reproduced exactly. A pixel that lands elsewhere in a tile (another tiling, other padding) "
                   "draws other samples: a DDPM-avg of the same quality, not the same numbers.")
    else:
        outputs = "- `restored`: the restoration, on the capture's intensity scale."
    return f"""# {ex.name}

{LABELS[kind]} restoration of fluorescence microscopy images, trained and exported with
[teachdiff](https://github.com/teachdiff/teachdiff), a course and library that reproduces
Osuna-Vargas et al., *Denoising diffusion models for high-resolution microscopy image restoration*,
WACV 2025 (arXiv:2409.12078).

## Input and output

- `raw`: one raw capture (2-D, one channel), on its own intensity scale. Preprocessing maps it to
  the network's range [-1, 1] as in training: `{_affine_text("x", gain_in, offset_in)}`
  ({norm.describe()}).
{outputs}

{back}: the scale `teachdiff restore` writes.

{_tiling_text(ex, sides)}

## Training data

{_training_text(ex)}

The test tensors and the cover are a {geometry.tile}x{geometry.tile} crop of {ex.capture_where}: mean
intensity {capture_mean:.4g} in the capture, {restored_mean:.4g} in the restoration. Covers: capture |
{"DDPM-avg, and DDPM-avg | std map" if kind == "ddpm" else "restoration"}.

## What it must not be trusted for

{_limits_text(ex)}

## Validation

`bioimageio.core`'s `test_model` (`bioimageio test FILE.zip`) runs the test input through every
weight format and compares the result with the test outputs; the export is tested that way in
teachdiff's test suite. To score the model on your own ground-truth pairs, restore them with
`teachdiff restore --checkpoint CHECKPOINT` and score them with `teachdiff evaluate --pred DIR --gt DIR`
(MAE, PSNR, MS-SSIM and more, as in the paper).

## Licence and citation

The code of teachdiff, including the architecture this package builds, is under the MIT licence.
Weights: {_weights_licence(ex)} This package is declared `{ex.licence}`.

Please cite the paper whose method this model follows: {PAPER_CITATION_TEXT}
"""


def _affine_in(norm: Normalization) -> tuple[float, float]:
    """(gain, offset) of capture -> [-1, 1]: ``Normalization.input_to_model`` as x * gain + offset."""
    low, high = (0.0, float(2**norm.bit_depth - 1)) if norm.mode == "bitdepth" else (norm.x_low, norm.x_high)
    gain = 2.0 / max(high - low, 1e-6)
    return gain, -1.0 - low * gain


def _affine_out(norm: Normalization) -> tuple[float, float]:
    """(gain, offset) of [-1, 1] -> the target's scale after clipping: ``Normalization.from_model``."""
    low, high = (0.0, float(2**norm.bit_depth - 1)) if norm.mode == "bitdepth" else (norm.y_low, norm.y_high)
    half = (high - low) / 2.0
    return half, half + low
