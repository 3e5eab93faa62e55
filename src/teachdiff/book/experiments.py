"""The experiment each reproduction chapter (9-12) has of its own, beside the comparison that
:mod:`teachdiff.book.reproduction` runs for all of them:

- chapter 9 (zebrafish): :func:`capture_ladder` (FMD's avg2 ... avg16 inputs) and
  :func:`pseudo_replication` (what "200 (4)" in Table S1 does to a p-value);
- chapter 10 (microtubules): :func:`shift_table` (the §4.1 re-alignment), :func:`rescale_maps` and
  :func:`postprocessing_ablation` (the §3.6 map as a free fit per method);
- chapter 11 (mitochondria): :func:`displacement_penalty` (a shift between x and y, and what
  pixel metrics make of it);
- chapter 12 (synapses): :func:`puncta_readout` (synapse strength, §4.3) and :func:`restore_stack`
  with :func:`z_roughness` (a 2-D model applied to a z-stack, the xz view of Fig. 3D).
"""

from __future__ import annotations

import math

import numpy as np
import torch

import teachdiff
from teachdiff.book.reproduction import Chapter, label
from teachdiff.core.paper import POSTPROCESSING
from teachdiff.core.scale import to_model_range
from teachdiff.evaluation import metrics, stats
from teachdiff.evaluation.reproduce import grey_levels

__all__ = ["synthetic_captures", "capture_ladder", "captures_worth", "pseudo_replication", "shift_table",
           "rescale_maps", "postprocessing_ablation", "displacement_penalty", "puncta_readout", "restore_stack",
           "z_roughness"]


def _model_input(images: np.ndarray) -> torch.Tensor:
    """Grey levels 0..255 (..., H, W) as the models' input: [-1, 1], float32."""
    return torch.as_tensor(to_model_range(images, 8))


# ---------------------------------------------------------------------------------------------
# Chapter 9: the noise ladder and pseudo-replication (zebrafish)
# ---------------------------------------------------------------------------------------------


def synthetic_captures(chapter: Chapter, items, n: int, seed: int = 1, test_set=None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` fresh captures of the test patches ``items`` of a chapter on a synthetic dataset: the
    same fields as the test split, new photon and read noise
    (:func:`teachdiff.data.synthetic.simulate_captures`). Returns ``(captures, gt)``, shaped
    (n, len(items), p, p) and (len(items), p, p), in grey levels 0..255."""
    from teachdiff.data import get_dataset_info
    from teachdiff.data.loaders import SyntheticSizes, synthetic_fov
    from teachdiff.data.synthetic import fov_seed, simulate_captures

    info = get_dataset_info(chapter.dataset)
    if not info.is_synthetic:
        raise ValueError(f"{chapter.dataset!r} is not simulated: fresh captures exist only for synthetic-* datasets.")
    test_set = chapter.test_set() if test_set is None else test_set
    patches, p = test_set.patches, test_set.patches.patch_size
    sizes = SyntheticSizes.default(p, chapter.preset == "quick")
    fovs: dict[int, tuple] = {}
    captures, gt = np.zeros((n, len(items), p, p)), np.zeros((len(items), p, p))
    for k, item in enumerate(items):
        fov, _, r, c = (int(v) for v in patches.index[int(test_set.indices[item])])
        if fov not in fovs:
            pair = synthetic_fov(info.synthetic_case, "test", fov, sizes, chapter.cfg.seed)
            fovs[fov] = (pair, simulate_captures(pair, n, fov_seed(seed, fov)))
        pair, extra = fovs[fov]
        x, y, _ = patches.patch(int(test_set.indices[item]))
        if not (np.array_equal(pair.x[r:r + p, c:c + p], x) and np.array_equal(pair.y[r:r + p, c:c + p], y)):
            raise RuntimeError("the simulated field does not match the test patch; synthetic_fov and the loaders "
                               "have drifted apart.")
        gt[k] = y
        for j in range(n):
            captures[j, k] = extra[j][r:r + p, c:c + p]
    return captures, gt


def capture_ladder(captures: np.ndarray, gt: np.ndarray, ks=(1, 2, 4, 8, 16)) -> dict[int, float]:
    """FMD's avg2 ... avg16 inputs: for each k, the median over patches of the MAE between the
    mean of the first k ``captures`` (n, N, H, W) and the GT (N, H, W). Averaging k independent
    captures divides the noise variance by k, so the MAE falls roughly as 1/sqrt(k) while noise
    dominates it, and levels off where what remains is the difference in signal."""
    if max(ks) > len(captures):
        raise ValueError(f"the ladder needs {max(ks)} captures, got {len(captures)}.")
    return {k: float(np.median([metrics.mae(a, g) for a, g in zip(captures[:k].mean(0), gt)])) for k in ks}


def captures_worth(ladder: dict[int, float], mae: float) -> float:
    """How many averaged captures a restoration with median MAE ``mae`` is worth on the
    :func:`capture_ladder`: k interpolated linearly in log k and log MAE between the two rungs
    around ``mae``; ``inf`` below the last rung, 0 above the first (worse than one capture)."""
    ks = sorted(ladder)
    if mae >= ladder[ks[0]]:
        return 0.0
    for k1, k2 in zip(ks, ks[1:]):
        m1, m2 = ladder[k1], ladder[k2]
        if m2 <= mae <= m1 and m1 > m2:
            t = (math.log(m1) - math.log(mae)) / (math.log(m1) - math.log(m2))
            return math.exp(math.log(k1) + t * (math.log(k2) - math.log(k1)))
    return math.inf


def pseudo_replication(chapter: Chapter, methods=("care", "n2v"), n_captures: int = 50, crop: int = 64,
                       seed: int = 1) -> dict:
    """Score two methods on the scored test sub-FOVs x ``n_captures`` noise realisations, as the
    paper's zebrafish test set is 4 sub-FOVs x 50 captures (Table S1, "200 (4)"), and test the
    difference twice: over every image (pseudo-replicated: the images of a sub-FOV share its
    structure) and over the sub-FOVs (each the mean over its captures), the units that are
    independent. ``crop``: a centred crop of each patch (the networks' training size) keeps it
    fast. Both methods are post-processed as in the paper (§3.6 rescales CARE, Noise2Void and
    UNet-RCAN alike). Returns the per-image MAEs, both tests and the counts."""
    if not chapter.synthetic:
        raise ValueError("the experiment simulates fresh captures; run it on the synthetic stand-in.")
    test_set = chapter.test_set()
    n_fields = len(test_set) if chapter.cfg.test_images is None else min(chapter.cfg.test_images, len(test_set))
    captures, gt = synthetic_captures(chapter, range(n_fields), n_captures, seed, test_set)
    top = (captures.shape[-1] - crop) // 2
    window = (..., slice(top, top + crop), slice(top, top + crop))
    captures, gt = captures[window], gt[window]
    reference = chapter.reference()
    inputs = _model_input(captures.reshape(-1, 1, crop, crop))
    mae = {}
    for model in methods:
        with torch.no_grad():
            restored = grey_levels(chapter.method(model).restore(inputs)[:, 0])
        restored = metrics.postprocess(model, restored, reference, "paper").reshape(captures.shape)
        mae[model] = np.abs(restored - gt).mean(axis=(-2, -1))  # (n_captures, n_fields)
    a, b = (mae[m] for m in methods)
    images = stats.wilcoxon_signed_rank(a.ravel(), b.ravel())
    mood = stats.mood_median_test(a.ravel(), b.ravel())
    fields = stats.wilcoxon_signed_rank(a.mean(0), b.mean(0))
    return {"methods": tuple(methods), "mae": mae, "n_fields": n_fields, "n_captures": n_captures,
            "crop": crop, "wilcoxon_images": images, "mood_images": mood, "wilcoxon_fields": fields}


# ---------------------------------------------------------------------------------------------
# Chapter 10: re-alignment and the rescaling ablation (microtubules)
# ---------------------------------------------------------------------------------------------


def shift_table(shifts: dict[str, np.ndarray]) -> str:
    """Markdown: for each method, the median and largest length of the (dy, dx) shifts that the
    re-alignment applied (``reproduce``'s ``shifts[mode]``), in pixels."""
    lines = ["| method | median shift (px) | largest shift (px) | median (dy, dx) (px) |", "|---|---|---|---|"]
    for method, applied in shifts.items():
        length = np.hypot(applied[:, 0], applied[:, 1])
        dy, dx = np.nanmedian(applied, axis=0)
        lines.append(f"| {label(method)} | {np.nanmedian(length):.2f} | {np.nanmax(length):.2f} "
                     f"| ({dy:+.2f}, {dx:+.2f}) |")
    return "\n".join(lines) + "\n"


def rescale_maps(outputs: dict[str, np.ndarray], reference) -> dict[str, tuple[float, float]]:
    """The linear map ``y' = gain * y + offset`` that §3.6's mean/std rescaling
    (:func:`teachdiff.evaluation.metrics.clip_and_rescale`) fits to each method's whole stack of clipped
    outputs: ``gain = std_ref / std_pred``, ``offset = mean_ref - gain * mean_pred``."""
    maps = {}
    for method, out in outputs.items():
        clipped = np.clip(out, 0, 255)
        gain = reference.std / clipped.std() if clipped.std() > 0 else math.nan
        maps[method] = (float(gain), float(reference.mean - gain * clipped.mean()))
    return maps


def postprocessing_ablation(result: dict, modes=POSTPROCESSING, align=(False, True)) -> list[dict]:
    """The median MAE of the raw input and every model under each post-processing mode, with and
    without the re-alignment, from ``reproduce``'s ``outputs`` (no model runs again). The
    classical filters, tuned per mode inside ``reproduce``, are left out. One dict per method:
    ``{"method": m, (mode, aligned): median MAE, ...}``."""
    gt = result["gt"]
    rows = {m: {"method": m} for m in result["outputs"]}
    for mode in modes:
        processed = {m: metrics.postprocess(m, out, result["reference"], mode) for m, out in result["outputs"].items()}
        for aligned in align:
            predictions = metrics.align_predictions(processed, gt)[0] if aligned else processed
            for m, pred in predictions.items():
                rows[m][(mode, aligned)] = float(np.median([metrics.mae(p, g) for p, g in zip(pred, gt)]))
    return list(rows.values())


# ---------------------------------------------------------------------------------------------
# Chapter 11: a shift between x and y (mitochondria)
# ---------------------------------------------------------------------------------------------


def _shifted(images: np.ndarray, d: float) -> np.ndarray:
    """Each image moved by ``d`` pixels along both axes (cubic spline, edges continued, clipped
    to the 0..255 scale, which the spline's overshoot can leave)."""
    from scipy import ndimage

    return np.clip(np.stack([ndimage.shift(im, (d, d), order=3, mode="nearest") for im in images]), 0, 255)


def displacement_penalty(predictions: dict[str, np.ndarray], gt: np.ndarray, displacements=(0, 0.5, 1, 2, 3),
                         margin: int = 8) -> list[dict]:
    """What a shift between x and y does to the scores. A model restores what ``x`` shows where
    ``x`` shows it, so when the sample moved by ``d`` pixels between the two acquisitions, every
    prediction is off from the GT by ``d``: here each prediction (and the GT itself, a perfect
    restoration) is moved by ``d`` along both axes, and scored by MAE, PSNR and Pearson against
    the GT on the interior (``margin`` pixels from each edge left out, where the shift invents
    pixels). One dict per (method, d)."""
    inner = (slice(None), slice(margin, -margin), slice(margin, -margin))
    rows = []
    for method, pred in {"gt": gt, **predictions}.items():
        for d in displacements:
            moved = _shifted(pred, d)[inner]
            target = gt[inner]
            rows.append({"method": method, "d": float(d),
                         "mae": float(np.median([metrics.mae(p, g) for p, g in zip(moved, target)])),
                         "psnr": float(np.median([metrics.psnr(p, g) for p, g in zip(moved, target)])),
                         "pearson": float(np.median([metrics.pearson(p, g) for p, g in zip(moved, target)]))})
    return rows


# ---------------------------------------------------------------------------------------------
# Chapter 12: synapse intensities and the z-stack (synapses)
# ---------------------------------------------------------------------------------------------


def puncta_readout(predictions: dict[str, np.ndarray], gt: np.ndarray, min_distance: int = 3,
                   threshold: float = 0.5, radius: int = 1) -> dict:
    """Synapse strength as a neuroscientist would read it (§4.3: "applications studying the
    changes in synapse strength"): find the puncta of the GT (local maxima at least
    ``min_distance`` pixels apart and above ``threshold`` x the image's 99.9th percentile), take
    the mean intensity in the (2 ``radius`` + 1)² window around each, in the GT and in every
    prediction, and compare. Returns ``{"gt": (P,), method: (P,) ...}``, the intensities of the P
    puncta."""
    from skimage.feature import peak_local_max

    readout = {"gt": []}
    readout.update({m: [] for m in predictions})
    for i, target in enumerate(gt):
        peaks = peak_local_max(target, min_distance=min_distance, threshold_abs=threshold * np.percentile(target, 99.9),
                               exclude_border=radius + 1)
        for name, images in [("gt", gt), *predictions.items()]:
            image = images[i]
            readout[name] += [float(image[r - radius:r + radius + 1, c - radius:c + radius + 1].mean())
                              for r, c in peaks]
    return {name: np.asarray(values) for name, values in readout.items()}


def restore_stack(chapter: Chapter, stack: np.ndarray, methods, n_samples: int = 4, generator=None) -> dict:
    """Restore a z-stack (Z, H, W; 0..255) slice by slice, as the paper's 2-D models do, with each
    of ``methods`` of the chapter (``ddpm``: each slice sampled independently with the chapter's
    sampler; returns one sample ``ddpm``, the mean ``ddpm-avg`` of ``n_samples`` and all samples
    ``ddpm-samples``, (Z, n_samples, H, W)). Everything in 0..255 and post-processed as in the
    paper (§3.6) with the chapter's GT reference; ``ddpm-samples`` only clipped."""
    from teachdiff.inference.sampling import sample_tiled

    cfg, reference = chapter.cfg, chapter.reference()
    x = _model_input(stack[:, None]).to(teachdiff.device())
    restored, samples = {}, None
    for model in methods:
        method = chapter.method(model)
        if model == "ddpm":
            tile = method.unet.config.image_size
            drawn = sample_tiled(method.unet, x, method.schedule, n_samples=n_samples, sampler=cfg.sampler,
                                 steps=cfg.steps, eta=cfg.eta, tile=tile if tile < max(x.shape[-2:]) else None,
                                 overlap=tile // 4, generator=generator, progress=False).cpu()
            samples = grey_levels(drawn[:, :, 0])
            restored["ddpm"], restored["ddpm-avg"] = samples[:, 0], grey_levels(drawn[:, :, 0].mean(1))
            continue
        with torch.no_grad():
            restored[model] = grey_levels(method.restore(x, generator=generator)[:, 0])
    out = {m: metrics.postprocess(m, pred, reference, "paper") for m, pred in restored.items()}
    if samples is not None:
        out["ddpm-samples"] = samples
    return out


def z_roughness(stack: np.ndarray) -> float:
    """Mean absolute difference between neighbouring slices of a (Z, H, W) stack: how much the
    image changes from one slice to the next. Slices restored independently add their own
    randomness to it."""
    return float(np.abs(np.diff(np.asarray(stack, dtype=float), axis=0)).mean())
