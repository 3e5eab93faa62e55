"""The README's instructions work as written (issue 16: `make install`, the Python restore example)."""

import re
from pathlib import Path

import numpy as np
import tifffile
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_readme_mentions_make_install_which_the_makefile_has():
    assert "make install" in (ROOT / "README.md").read_text()
    assert re.search(r"^install:", (ROOT / "Makefile").read_text(), re.MULTILINE)


def test_readme_python_restore_example_runs_on_a_checkpoint(tmp_path, monkeypatch):
    from teachdiff.methods.ddpm import DiffusionConfig, DiffusionMethod
    from teachdiff.store.checkpoint import save_checkpoint
    from teachdiff.core.unet import UNetConfig

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    example = next(block for block in blocks if "load_method" in block and "restore_image" in block)
    torch.manual_seed(0)
    (tmp_path / "runs" / "mt").mkdir(parents=True)
    save_checkpoint(tmp_path / "runs" / "mt" / "best.pt", DiffusionMethod(DiffusionConfig(unet=UNetConfig.tiny(), T=3)))
    image = np.random.default_rng(0).integers(0, 256, (40, 72), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "capture.tif", image)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(example, namespace)  # noqa: S102 - the README's own code
    result = namespace["result"]
    assert result.mean.shape == result.std.shape == result.entropy.shape == image.shape
    assert 0 <= result.mean.min() and result.mean.max() <= 255
