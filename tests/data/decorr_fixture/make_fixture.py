"""Regenerate the decorrelation fixture: test images and k_c from the authors' MATLAB code.

The images (band-limited noise at several cut-offs and SNRs, teachdiff's simulator, blurred
and noisy variants; uint16, 64-128 px, some non-square or odd-sized) are generated
deterministically and saved as ``images.npz``; GNU Octave then runs the unmodified functions of
github.com/Ades91/ImDecorr (``funcs/``) on them through ``run_getdcorr.m`` and the values
``kcMax`` and ``A0`` of ``getDcorr`` are written to ``getdcorr.json``. (Octave lacks MATLAB's ``gather``, which
``getDcorr.m`` calls for GPU arrays; ``octave_shim/gather.m`` supplies it as the identity that
it is for ordinary arrays.) The test
(tests/test_metrics_decorrelation.py) needs neither Octave nor this script.

Command (a checkout of Ades91/ImDecorr in IMDECORR, Octave installed, e.g. ``apt-get install
octave``)::

    python tests/data/decorr_fixture/make_fixture.py --imdecorr IMDECORR
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from scipy import io, ndimage

from teachdiff.data.synthetic import simulate_pair

HERE = Path(__file__).resolve().parent


def band_limited_noise(cutoff: float, shape: tuple[int, int], seed: int, snr: float | None) -> np.ndarray:
    """White noise through an ideal low-pass at ``cutoff`` (of Nyquist), plus white noise at ``snr``."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(shape[0])[:, None] / 0.5
    fx = np.fft.fftfreq(shape[1])[None, :] / 0.5
    signal = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * (np.hypot(fy, fx) < cutoff)))
    signal /= signal.std()
    noise = 0.0 if snr is None else rng.standard_normal(shape) / snr
    return 1000.0 + 200.0 * (signal + noise)


def to_uint16(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 65535).astype(np.uint16)


def make_images() -> dict[str, np.ndarray]:
    images = {}
    for i, (cutoff, shape, snr) in enumerate([
        (0.2, (96, 96), None), (0.4, (128, 128), None), (0.6, (96, 96), None),
        (0.8, (128, 128), None), (0.95, (64, 64), None), (0.5, (127, 127), None),
        (0.4, (96, 128), 4.0), (0.6, (128, 96), 2.0), (0.7, (96, 96), 1.0),
        (0.8, (128, 128), 0.5), (0.3, (101, 96), 0.25),
    ]):
        label = "clean" if snr is None else f"snr{snr:g}"
        images[f"band{int(cutoff * 100):02d}_{label}_{shape[0]}x{shape[1]}"] = to_uint16(
            band_limited_noise(cutoff, shape, seed=100 + i, snr=snr)
        )
    rng = np.random.default_rng(7)
    noise = 1000.0 + 200.0 * rng.standard_normal((96, 96))
    images["white_noise_96"] = to_uint16(noise)
    images["white_noise_blur1_96"] = to_uint16(ndimage.gaussian_filter(noise, 1.0))
    for case, size, seed in [("microtubules", 128, 1), ("mitochondria", 96, 2), ("synapses", 128, 3),
                             ("zebrafish", (96, 120), 4)]:
        pair = simulate_pair(case, size, seed=seed, bit_depth=16)
        name = f"{case}_{pair.x.shape[0]}x{pair.x.shape[1]}"
        images[f"{name}_x"] = pair.x
        images[f"{name}_y"] = pair.y
        if case in ("microtubules", "mitochondria"):
            target = pair.y.astype(np.float64)
            images[f"{name}_y_blur2"] = to_uint16(ndimage.gaussian_filter(target, 2.0))
            images[f"{name}_y_noisy"] = to_uint16(target + np.random.default_rng(seed).normal(0, 3 * target.std(), target.shape))
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imdecorr", type=Path, required=True, help="checkout of github.com/Ades91/ImDecorr")
    parser.add_argument("--commit", default="db536a36d12db95f5e4ea6c8644144a10cc42646", help="its commit (recorded)")
    args = parser.parse_args()
    funcs = (args.imdecorr / "funcs").resolve()
    if not (funcs / "getDcorr.m").is_file():
        raise FileNotFoundError(f"{funcs / 'getDcorr.m'} not found; pass a checkout of Ades91/ImDecorr")
    images = make_images()
    np.savez_compressed(HERE / "images.npz", **images)
    with tempfile.TemporaryDirectory() as tmp:
        mat, out = Path(tmp) / "images.mat", Path(tmp) / "getdcorr.txt"
        io.savemat(mat, images)
        driver = f"addpath('{HERE}'); run_getdcorr('{mat}', '{out}', '{funcs}');"
        subprocess.run(["octave-cli", "--no-gui", "--quiet", "--eval", driver], check=True)
        rows = [line.split() for line in out.read_text().splitlines()]
    version = subprocess.run(["octave-cli", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    fixture = {
        "description": "getDcorr(apodImRect(image, 20), linspace(0, 1, 50), 10) of the unmodified "
        "MATLAB code of github.com/Ades91/ImDecorr on images.npz",
        "reference": {"repository": "https://github.com/Ades91/ImDecorr", "commit": args.commit, "octave": version},
        "command": "python tests/data/decorr_fixture/make_fixture.py --imdecorr IMDECORR",
        "images": {name: {"shape": list(images[name].shape), "kc": float(kc), "A0": float(a0)} for name, kc, a0 in rows},
    }
    (HERE / "getdcorr.json").write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"{len(rows)} images -> {HERE / 'getdcorr.json'}")


if __name__ == "__main__":
    main()
