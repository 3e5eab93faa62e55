"""`--no-progress` silences every progress bar: restore, evaluate, train, reproduce (issue 16)."""

import dataclasses

import numpy as np
import pytest
import tifffile
import torch

from teachdiff.cli.main import main
from teachdiff.data.io import write_image
from teachdiff.data.synthetic import simulate_pair

BAR_MARKS = ("%|", "it/s", "s/it")


def assert_no_bar(err: str):
    assert not any(mark in err for mark in BAR_MARKS), err[-500:]


@pytest.fixture
def registered_folder(tmp_path):
    """A tiny folder in the microtubules layout: one displaced pair per split, so that loading it
    registers the pairs (the step whose bar --no-progress did not reach)."""
    root = tmp_path / "microtubules"
    big = simulate_pair("microtubules", 300, seed=5)
    for split in ("train", "val", "test"):
        write_image(root / split / "raw" / "a.tif", big.x[27:283, 16:272])
        write_image(root / split / "gt" / "a.tif", big.y[20:276, 20:276])
    return root


def test_train_no_progress_prints_no_bar_not_even_for_registration(registered_folder, tmp_path, capsys):
    argv = ["train", "--dataset", "microtubules", "--data-root", str(registered_folder), "--model", "care",
            "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--out", str(tmp_path / "run")]
    assert main(argv + ["--no-progress"]) == 0
    assert_no_bar(capsys.readouterr().err)


def test_reproduce_no_progress_prints_no_bar(registered_folder, monkeypatch, tmp_path, capsys):
    from teachdiff.evaluation.reproduce import ReproduceConfig, reproduce

    monkeypatch.setenv("TEACHDIFF_DATA", str(registered_folder.parent))
    cfg = dataclasses.replace(ReproduceConfig.preset_for("microtubules", "quick"), models=(), classical=False,
                              test_images=1)
    reproduce(cfg, tmp_path / "repro", progress=False)
    assert_no_bar(capsys.readouterr().err)


def test_restore_no_progress_prints_no_bar(tmp_path, capsys):
    from teachdiff.methods.ddpm import DiffusionConfig, DiffusionMethod
    from teachdiff.store.checkpoint import save_checkpoint
    from teachdiff.core.unet import UNetConfig

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "best.pt", DiffusionMethod(DiffusionConfig(unet=UNetConfig.tiny(), T=4)))
    inputs = []
    for i in range(2):
        inputs.append(tmp_path / f"in_{i}.tif")
        tifffile.imwrite(inputs[-1], np.random.default_rng(i).integers(0, 256, (2, 40, 40), dtype=np.uint8))
    argv = ["restore", "--checkpoint", str(ckpt), *map(str, inputs), "--samples", "2", "--sampler", "ddim",
            "--steps", "2", "--tile", "32", "--overlap", "8", "--device", "cpu"]
    assert main(argv + ["--out", str(tmp_path / "quiet"), "--no-progress"]) == 0
    assert_no_bar(capsys.readouterr().err)
    assert main(argv + ["--out", str(tmp_path / "loud")]) == 0  # the bars exist without the flag
    assert "%|" in capsys.readouterr().err
