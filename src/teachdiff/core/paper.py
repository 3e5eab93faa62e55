"""The numbers the paper reports (medians over each test set), for side-by-side comparison.

Sources: Tables 2-5 (MAE, PSNR, MS-SSIM, LPIPS), Tables S3-S4 (NRMSE, Pearson correlation) and
Table S5 (resolution in nm and the resolution ratio, Eq. 14) of Osuna-Vargas et al., WACV 2025.
Method keys match ``teachdiff`` model names: raw (the low-quality input), gt, n2v, pix2pix, rcan
(UNet-RCAN), care, ddpm (one sample) and ddpm-avg (the mean of 15 samples).
"""

from __future__ import annotations

METRICS = ("mae", "psnr", "ms_ssim", "lpips", "nrmse", "pearson", "resolution", "resolution_ratio")
METHODS = ("raw", "n2v", "pix2pix", "rcan", "care", "ddpm", "ddpm-avg")
METHOD_LABELS = {"raw": "Raw", "gt": "GT", "n2v": "Noise2Void", "pix2pix": "Pix2pix", "rcan": "UNet-RCAN",
                 "care": "CARE", "ddpm": "DDPM", "ddpm-avg": "DDPM-avg"}


def _rows(table: str) -> dict[str, dict[str, float]]:
    """Parse 'method: v1 v2 ...' lines in the order of METRICS."""
    out = {}
    for line in table.strip().splitlines():
        method, values = line.split(":")
        out[method.strip()] = {m: float(v) for m, v in zip(METRICS, values.split()) if v != "-"}
    return out


# method: MAE PSNR MS-SSIM LPIPS NRMSE Pearson resolution(nm) ratio
PAPER_RESULTS: dict[str, dict[str, dict[str, float]]] = {
    "microtubules": _rows("""
        raw:      17.6  20.88 0.10 0.71 0.99 0.46 128.60  1.3
        gt:       -     -     -    -    -    -     98.80  1.00
        n2v:      13.26 24.32 0.72 0.22 0.65 0.87 107.85  1.09
        pix2pix:  5.38  30.48 0.84 0.14 0.35 0.88  88.45  0.90
        rcan:     12.73 23.40 0.80 0.24 0.90 0.92 118.35  1.20
        care:     4.11  32.58 0.89 0.20 0.26 0.92 119.75  1.21
        ddpm:     4.71  31.61 0.84 0.11 0.29 0.89  97.6   0.99
        ddpm-avg: 3.99  32.81 0.89 0.19 0.25 0.92 115.28  1.17
    """),
    "mitochondria": _rows("""
        raw:      10.12 25.29 0.25 0.42 0.97 0.40 3563.64 11.91
        gt:       -     -     -    -    -    -     299.24  1.00
        n2v:      3.06  34.78 0.77 0.32 0.32 0.90  111.36  0.37
        pix2pix:  3.76  33.2  0.73 0.08 0.40 0.83  149.62  0.50
        rcan:     39.25 13.81 0.62 0.61 3.76 0.92   76.72  0.27
        care:     3.79  32.79 0.78 0.12 0.42 0.90  137.54  0.46
        ddpm:     3.33  34.1  0.77 0.08 0.36 0.87  177.38  0.59
        ddpm-avg: 2.72  35.88 0.81 0.28 0.30 0.92  110.74  0.37
    """),
    "synapses": _rows("""
        raw:      27.35 18.61 0.60 0.62 1.33 0.60 143.14 0.49
        gt:       -     -     -    -    -    -    293.33 1.00
        n2v:      26.87 18.74 0.60 0.61 1.32 0.61 147.04 0.50
        pix2pix:  6.16  24.43 0.77 0.19 0.69 0.77 230.58 0.79
        rcan:     5.66  26.11 0.81 0.19 0.58 0.83 385.88 1.32
        care:     12.67 23.35 0.69 0.24 0.74 0.83 363.20 1.24
        ddpm:     5.45  25.61 0.80 0.17 0.61 0.80 330.18 1.13
        ddpm-avg: 5.09  25.96 0.81 0.18 0.58 0.81 363.20 1.24
    """),
    "zebrafish": _rows("""
        raw:      8.43  25.28 0.86 0.52 0.70 0.74 5297.4  6.82
        gt:       -     -     -    -    -    -     776.70 1.00
        n2v:      2.76  33.72 0.96 0.13 0.27 0.94 1141.8  1.47
        pix2pix:  3.27  32.01 0.95 0.10 0.32 0.91  730.05 0.94
        rcan:     7.44  27.45 0.90 0.23 0.55 0.94 1031.70 1.33
        care:     3.10  32.74 0.96 0.14 0.31 0.95  772.35 0.99
        ddpm:     2.98  32.62 0.95 0.09 0.30 0.92  831.60 1.07
        ddpm-avg: 2.43  34.62 0.97 0.15 0.24 0.95  777.75 1.00
    """),
}


def paper_value(dataset: str, method: str, metric: str) -> float | None:
    """The paper's median for a dataset/method/metric, or None where the paper has none
    (synthetic datasets, the GT row of pixel metrics)."""
    return PAPER_RESULTS.get(dataset, {}).get(method, {}).get(metric)

POSTPROCESSING = ("paper", "none", "all")
"""How benchmark outputs are post-processed before scoring (:func:`teachdiff.evaluation.metrics.postprocess`):
``paper`` as §3.6, ``none`` every output only clipped, ``all`` every output rescaled alike."""
PAPER_RESCALED = ("care", "n2v", "rcan", "gaussian", "nlm")
"""The outputs that §3.6 rescales (N2V, CARE, UNet-RCAN), plus the two classical filters."""
