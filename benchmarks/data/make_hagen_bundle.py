"""Build teachdiff's bundled real dataset ``hagen`` from the public sample crops of Hagen et al. 2021.

    python benchmarks/data/make_hagen_bundle.py MIRROR   # MIRROR: a git clone of
                                                          # github.com/ND-HowardGroup/Instant-Image-Denoising

The images are pairs of low-SNR (short exposure / low laser power) and high-SNR captures of the
same field of BPAE cells, from the GigaDB release of Hagen et al., *Fluorescence microscopy
datasets for training deep neural networks*, GigaScience 10(5):giab032, 2021 (GigaDB 100888),
as copied into that repository's
``Plugins/Model_validation/Out_of_distribution_structures/GigadB_dataset_sample_images/`` (its
``low_snr_images/`` and ``high_snr_images/``; the ``_denoised`` files are never used). Every
file is read from the repository's git objects by path and checked against the blob id recorded
here, so the bundle can be rebuilt bit for bit.

For each pair the script checks that it is honest (same field: the registration shift found by
phase correlation on smoothed copies must be below ``MAX_SHIFT`` px; the smoothed images must
correlate, ``MIN_CORRELATION``), records the linear intensity relation high ~ a * low + b, keeps
one channel (the images are 8-bit RGB renderings with the signal in one channel), cuts a
``CROP``² crop at the centre, and writes it as spatially disjoint regions: rows
``[0, TRAIN_ROWS)`` for training, then after a ``GAP``-pixel margin ``VAL_ROWS`` rows for
validation, then after another margin ``TEST_ROWS`` rows for testing (``test_only`` pairs go to
the test split whole). The README beside the data is written from the same numbers.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage
from skimage.registration import phase_cross_correlation

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "src" / "teachdiff" / "data" / "bundled" / "hagen"
FOLDER = "Plugins/Model_validation/Out_of_distribution_structures/GigadB_dataset_sample_images"
REPOSITORY = "https://github.com/ND-HowardGroup/Instant-Image-Denoising"
COMMIT = "c885aee"
CROP, TRAIN_ROWS, VAL_ROWS, TEST_ROWS, GAP = 1024, 448, 256, 256, 32
MAX_SHIFT, MIN_CORRELATION = 1.0, 0.9

# name: (structure, modality, low-SNR blob, high-SNR blob, test_only)
PAIRS = {
    "actin-20x": ("actin (F-actin)", "widefield 20x", "d121a5ea9ecd0f21ac0839cf19a55d1a9a2a35ba",
                  "d711d23cdae079a2a914d1bc7c27531bb50394e1", False),
    "actin-60x": ("actin (F-actin)", "widefield 60x", "5931edd1fbabbd1964bccb697db385718217e488",
                  "047d5f76d6476d8229704f074056d60e187dc284", False),
    "membrane": ("membrane", "widefield", "d0fb2bbeb001003509b71d1a83dc361e4153d5bc",
                 "b6da1ffe7e1c858f0d6af471f79199802a82964d", False),
    "mito-20x": ("mitochondria", "widefield 20x", "6a94c9ee7bb9a4ace7b6c35ecda9e64ed92004dc",
                 "e8db249c7983ac98c57244c1acfc521143c02fc9", False),
    "mito-60x": ("mitochondria", "widefield 60x", "df392f276f665cdd79c99673539fb9c907c1de91",
                 "369065f1f3438ca024ac91a3037791d592b3a70b", False),
    "mito-60x-noise2": ("mitochondria", "widefield 60x, lower SNR", "5e36595c1ab617d20fee5d85de12f90ae2a8953a",
                        "1d6733dff28212408923c94d22622b65565d9b76", False),
    "mito-confocal": ("mitochondria", "confocal", "66052bd291021aa1ec43d93bc12d571b8a0f61ac",
                      "d71a23dd0f059b6e1bdc050798d04357eb62b73e", False),
    "nucleus": ("nuclei", "widefield", "4b8024e7645be1fe95e00507e7f07ceebefdcb64",
                "bc0b3bdeb920d5fd834bedd86545fb14f37caaad", True),
}
SOURCE_FILES = {  # name -> (low-SNR file, high-SNR file) in FOLDER
    "actin-20x": "actin-20x-noise1", "actin-60x": "actin-60x-noise1", "membrane": "membrane",
    "mito-20x": "mito-20x-noise1", "mito-60x": "mito-60x-noise1", "mito-60x-noise2": "mito-60x-noise2",
    "mito-confocal": "mito-confocal", "nucleus": "nucleus",
}


def read_blob(mirror: Path, path: str, blob: str) -> np.ndarray:
    """The PNG at ``path`` in the mirror's HEAD, checked against its blob id, as a 2-D uint8 array."""
    git = ["git", "--git-dir", str(mirror)] if (mirror / "HEAD").is_file() else ["git", "-C", str(mirror)]
    found = subprocess.run(git + ["rev-parse", f"HEAD:{path}"], capture_output=True, text=True, check=True).stdout.strip()
    if found != blob:
        raise SystemExit(f"{path}: blob {found}, expected {blob}; the repository changed: check the new file by hand.")
    data = subprocess.run(git + ["cat-file", "blob", blob], capture_output=True, check=True).stdout
    from io import BytesIO

    from PIL import Image

    rgb = np.asarray(Image.open(BytesIO(data)))
    if rgb.ndim == 2:
        return rgb
    channel = int(np.argmax(rgb.reshape(-1, rgb.shape[-1])[:, :3].sum(0)))  # the channel that holds the signal
    return np.ascontiguousarray(rgb[..., channel])


def check_pair(low: np.ndarray, high: np.ndarray) -> dict:
    """Same field? (registration shift, correlation of smoothed copies) and the intensity relation."""
    low_s, high_s = (ndimage.gaussian_filter(a.astype(float), 2.0) for a in (low, high))
    shift, _, _ = phase_cross_correlation(high_s, low_s, upsample_factor=10, normalization=None)
    correlation = float(np.corrcoef(low_s.ravel(), high_s.ravel())[0, 1])
    slope, intercept = np.polyfit(low_s.ravel(), high_s.ravel(), 1)
    return {"shift": tuple(float(s) for s in shift), "correlation": correlation, "slope": float(slope),
            "intercept": float(intercept), "raw_mae": float(np.abs(low.astype(float) - high).mean())}


def regions(shape: tuple[int, int], test_only: bool) -> dict[str, tuple[slice, slice]]:
    """The centre crop's split regions as (rows, cols) slices of the full image."""
    H, W = shape
    side = min(CROP, H, W)
    r0, c0 = (H - side) // 2, (W - side) // 2
    cols = slice(c0, c0 + side)
    if test_only:
        return {"test": (slice(r0, r0 + side), cols)}
    val_start = r0 + TRAIN_ROWS + GAP
    test_start = val_start + VAL_ROWS + GAP
    assert test_start + TEST_ROWS <= r0 + side, "the regions do not fit the crop"
    return {"train": (slice(r0, r0 + TRAIN_ROWS), cols), "val": (slice(val_start, val_start + VAL_ROWS), cols),
            "test": (slice(test_start, test_start + TEST_ROWS), cols)}


README_HEAD = f"""# `hagen`: real low-/high-SNR pairs, bundled (Hagen et al. 2021)

Pairs of a low-SNR and a high-SNR capture of the same field of bovine pulmonary artery endothelial
(BPAE) cells: actin, mitochondria, membrane and nuclei, widefield (20x, 60x) and confocal.

- **Data:** Hagen G. M., Bendesky J., Machado R., Nguyen T.-A., Kumar T., Ventura J. *Fluorescence
  microscopy datasets for training deep neural networks.* GigaScience 10(5):giab032, 2021,
  doi:10.1093/gigascience/giab032; data in GigaDB, doi:10.5524/100888.
- **Licence:** GigaDB releases its datasets under CC0 1.0 (public domain dedication); the
  paper's data availability statement points to that GigaDB record. The copies we took them from
  sit in a GPL-3.0 code repository; the licence of the repository covers its code, the images
  stay the CC0 data of GigaDB. We checked this against the repository's files offline, not on
  GigaDB's website: cite the paper when you use them.
- **Taken from:** {REPOSITORY} at commit `{COMMIT}`, folder
  `{FOLDER}/` (`low_snr_images/` and `high_snr_images/` only; never the `_denoised` files), each
  file checked against its git blob id (table below). Built by
  `benchmarks/data/make_hagen_bundle.py`, which rebuilds these files bit for bit.
- **What was done to them:** the PNGs are 8-bit RGB renderings with the signal in one channel;
  that channel is kept. They are display images (8-bit, contrast set by the publisher), not raw
  camera counts: intensities are relative, and the low- and high-SNR images were scaled
  separately (see the fitted relation). A {CROP}² crop at the centre of each image (the whole
  image where it is smaller) is cut into spatially disjoint regions: rows 0-{TRAIN_ROWS - 1} for
  training, then after a {GAP}-pixel margin {VAL_ROWS} rows for validation, then after another
  {GAP}-pixel margin {TEST_ROWS} rows for testing. No test pixel is ever trained on. The nucleus
  pair goes to the test split whole: a structure no model is trained on, for the hallucination
  check of the course.
- **Pixel size:** not stated with these files (20x and 60x objectives differ); teachdiff reports
  the decorrelation resolution of this dataset in pixels.

Layout: `{{train,val,test}}/raw/<name>.tif` (low SNR) and `{{train,val,test}}/gt/<name>.tif` (high SNR),
8-bit, zlib-compressed TIFF.

## The pairs and their checks

Shift: registration offset (dy, dx) of the low- onto the high-SNR image by phase correlation of
smoothed copies (Gaussian, sigma 2 px; kept if below {MAX_SHIFT} px: none needed re-registration);
r: correlation of the smoothed images (kept if at least {MIN_CORRELATION}); relation: least-squares
fit high ~ a * low + b of the smoothed images; MAE: low vs high on the 0..255 scale (what a model
must beat).

| name | structure | modality | low-SNR blob | high-SNR blob | shift (px) | r | relation | MAE | split |
|---|---|---|---|---|---|---|---|---|---|
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mirror", type=Path, help="git clone (or bare repository) of Instant-Image-Denoising")
    args = parser.parse_args(argv)
    rows = []
    for name, (structure, modality, low_blob, high_blob, test_only) in PAIRS.items():
        stem = SOURCE_FILES[name]
        low = read_blob(args.mirror, f"{FOLDER}/low_snr_images/{stem}-lowsnr-sample.png", low_blob)
        high = read_blob(args.mirror, f"{FOLDER}/high_snr_images/{stem}-highsnr-sample.png", high_blob)
        if low.shape != high.shape:
            raise SystemExit(f"{name}: sizes differ ({low.shape} vs {high.shape}); not a pair.")
        check = check_pair(low, high)
        honest = max(abs(s) for s in check["shift"]) < MAX_SHIFT and check["correlation"] >= MIN_CORRELATION
        split_regions = regions(low.shape, test_only)
        if honest:
            for split, (r, c) in split_regions.items():
                for kind, image in (("raw", low), ("gt", high)):
                    target = OUT / split / kind / f"{name}.tif"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    tifffile.imwrite(target, image[r, c], compression="zlib", compressionargs={"level": 9})
        rows.append(f"| {name} | {structure} | {modality} | `{low_blob[:10]}` | `{high_blob[:10]}` | "
                    f"{check['shift'][0]:+.1f}, {check['shift'][1]:+.1f} | {check['correlation']:.3f} | "
                    f"{check['slope']:.2f} x {check['intercept']:+.1f} | {check['raw_mae']:.1f} | "
                    f"{', '.join(split_regions) if honest else 'rejected'} |")
        print(rows[-1], flush=True)
    (OUT / "README.md").write_text(README_HEAD + "\n".join(rows) + "\n")
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"bundle: {size / 1e6:.2f} MB in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
