"""``teachdiff restore``: files written, their scale and shape, and every refusal (issue 5)."""

import errno
import math
import os
import types

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from teachdiff.cli.main import main
from teachdiff.core.diffusion import NoiseSchedule
from teachdiff.inference.restore import restore_image
from teachdiff.cli.restore import restore_files
from teachdiff.core.unet import MPUNet, UNetConfig
from teachdiff.methods.ddpm import DiffusionConfig, DiffusionMethod

N_SAMPLES = 3


pytestmark = pytest.mark.usefixtures("one_thread")


def ddpm_method():
    torch.manual_seed(0)
    method = DiffusionMethod(DiffusionConfig(unet=UNetConfig.tiny(), T=4)).eval()
    with torch.no_grad():
        for p in method.unet.parameters():
            if p.ndim == 0:  # open the zero-initialised gains so the samples vary with the input
                p.fill_(0.5)
    return method


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    flat = tmp_path / "in" / "fov_8bit.tif"
    stack = tmp_path / "in" / "stack_16bit.tif"
    flat.parent.mkdir()
    tifffile.imwrite(flat, rng.integers(0, 256, size=(37, 50), dtype=np.uint8))
    tifffile.imwrite(stack, rng.integers(0, 4000, size=(2, 24, 19), dtype=np.uint16))
    return flat, stack


def test_ddpm_outputs_are_float32_maps_of_the_input_shape_and_scale(images, tmp_path):
    flat, stack = images
    out = tmp_path / "out"
    written = restore_files(ddpm_method(), [flat, stack], out, n_samples=N_SAMPLES, tile=32, overlap=8,
                            progress=False)
    assert len(written) == 2 * 4 * 2 and all(p.exists() for p in written)
    for path, shape, top in ((flat, (37, 50), 255), (stack, (2, 24, 19), 65535)):
        maps = {k: tifffile.imread(out / f"{path.stem}_{k}.tif") for k in ("mean", "sample", "std", "entropy")}
        for name, values in maps.items():
            assert values.shape == shape and values.dtype == np.float32, name
            preview = np.asarray(Image.open(out / f"{path.stem}_{name}.png"))
            assert preview.dtype == np.uint8 and preview.shape == shape[-2:]
        assert 0 <= maps["mean"].min() and maps["mean"].max() <= top
        assert 0 <= maps["std"].min() and maps["std"].max() <= 0.5
        assert 0 <= maps["entropy"].min() and maps["entropy"].max() <= math.log(N_SAMPLES) + 1e-6
        assert maps["std"].max() > 0  # the samples do differ
    # The files hold exactly what the library computes for the same seed.
    method = ddpm_method()
    expected = restore_image(method.unet, tifffile.imread(flat), method.schedule, n_samples=N_SAMPLES, tile=32,
                             overlap=8, seed=0, progress=False)
    np.testing.assert_allclose(tifffile.imread(out / "fov_8bit_mean.tif"), expected.mean, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(tifffile.imread(out / "fov_8bit_entropy.tif"), expected.entropy, atol=1e-5)


def test_baseline_writes_restored_in_the_input_scale(images, tmp_path):
    """A stand-in baseline that negates its input in [-1, 1] must give 255 - v (8-bit) exactly."""
    flat, _ = images
    negate = types.SimpleNamespace(kind="care", restore=lambda x: -x)
    written = restore_files(negate, [flat], tmp_path / "out", tile=16, overlap=4, progress=False)
    assert sorted(p.name for p in written) == ["fov_8bit_restored.png", "fov_8bit_restored.tif"]
    restored = tifffile.imread(tmp_path / "out" / "fov_8bit_restored.tif")
    np.testing.assert_allclose(restored, 255.0 - tifffile.imread(flat), atol=1e-3)


def test_existing_results_are_never_clobbered(images, tmp_path):
    flat, _ = images
    out = tmp_path / "out"
    out.mkdir()
    (out / "fov_8bit_std.tif").write_bytes(b"earlier result")
    with pytest.raises(FileExistsError, match="--overwrite"):
        restore_files(ddpm_method(), [flat], out, n_samples=2, progress=False)
    assert (out / "fov_8bit_std.tif").read_bytes() == b"earlier result"
    assert not (out / "fov_8bit_mean.tif").exists()  # refused before writing anything
    restore_files(ddpm_method(), [flat], out, n_samples=2, overwrite=True, progress=False)
    assert tifffile.imread(out / "fov_8bit_std.tif").shape == (37, 50)


def test_bad_inputs_and_output_folders(images, tmp_path):
    flat, _ = images
    rgb = tmp_path / "in" / "colour.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(rgb)
    with pytest.raises(ValueError, match="grayscale"):
        restore_files(ddpm_method(), [rgb], tmp_path / "out", progress=False)
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        restore_files(ddpm_method(), [tmp_path / "missing.tif"], tmp_path / "out", progress=False)
    a_file = tmp_path / "not_a_folder"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        restore_files(ddpm_method(), [flat], a_file, progress=False)
    with pytest.raises(PermissionError, match="writable"):  # a folder that cannot be created, even as root
        restore_files(ddpm_method(), [flat], a_file / "sub", progress=False)
    twin = tmp_path / "other" / flat.name
    twin.parent.mkdir()
    twin.write_bytes(flat.read_bytes())
    with pytest.raises(ValueError, match="same name"):
        restore_files(ddpm_method(), [flat, twin], tmp_path / "out", progress=False)
    rgb_model = ddpm_method()
    rgb_model.unet = MPUNet(UNetConfig(image_size=32, cond_channels=3, channels=8, channel_mult=(1,),
                                       num_blocks=1, attn_resolutions=()))
    with pytest.raises(ValueError, match="3 input channels"):
        restore_files(rgb_model, [flat], tmp_path / "out", progress=False)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores folder permissions")
def test_unwritable_output_folder(images, tmp_path):
    flat, _ = images
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="writable"):
            restore_files(ddpm_method(), [flat], locked, progress=False)
    finally:
        locked.chmod(0o700)


def test_full_disk_gives_a_clear_error_and_no_partial_files(images, tmp_path, monkeypatch):
    flat, _ = images

    def disk_full(path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", disk_full)
    out = tmp_path / "out"
    with pytest.raises(PermissionError, match="disk space"):
        restore_files(ddpm_method(), [flat], out, n_samples=2, progress=False)
    assert list(out.iterdir()) == []  # neither the temporary nor a truncated result is left


def test_cli_end_to_end_with_a_saved_checkpoint(images, tmp_path, capsys):
    train = pytest.importorskip("teachdiff.store.checkpoint")
    from teachdiff.methods.ddpm import DiffusionConfig, DiffusionMethod

    flat, stack = images
    ckpt = train.save_checkpoint(tmp_path / "best.pt", DiffusionMethod(DiffusionConfig(unet=UNetConfig.tiny(), T=4)))
    out = tmp_path / "out"
    argv = ["restore", "--checkpoint", str(ckpt), str(flat), str(stack), "--samples", "2", "--sampler", "ddim",
            "--steps", "2", "--tile", "32", "--overlap", "8", "--out", str(out), "--no-progress", "--device", "cpu"]
    assert main(argv) == 0
    assert tifffile.imread(out / "stack_16bit_entropy.tif").shape == (2, 24, 19)
    assert main(argv) == 1  # a second run refuses to clobber
    assert "--overwrite" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0
    assert main(["restore", "--checkpoint", str(tmp_path / "nope.pt"), str(flat), "--out", str(tmp_path / "o2")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_interval_writes_sample_quantiles_of_the_input_scale(images, tmp_path):
    flat, stack = images
    out = tmp_path / "out"
    written = restore_files(ddpm_method(), [stack], out, n_samples=4, tile=None, interval=0.5, progress=False)
    assert len(written) == 6 * 2
    lower, upper = (tifffile.imread(out / f"stack_16bit_{k}.tif") for k in ("lower", "upper"))
    expected = restore_image(ddpm_method().unet, tifffile.imread(stack), NoiseSchedule(T=4), n_samples=4, tile=None,
                             interval=0.5, progress=False)
    assert lower.shape == (2, 24, 19) and lower.dtype == np.float32
    np.testing.assert_allclose(lower, expected.lower, rtol=1e-6)
    np.testing.assert_allclose(upper, expected.upper, rtol=1e-6)
    assert np.all(lower <= upper) and upper.max() > 1000  # 16-bit scale, not [-1, 1]
    with pytest.raises(ValueError, match="at least 2 samples"):
        restore_files(ddpm_method(), [flat], tmp_path / "o2", n_samples=1, interval=0.9, progress=False)
    with pytest.raises(ValueError, match="between 0 and 1"):
        restore_files(ddpm_method(), [flat], tmp_path / "o3", n_samples=2, interval=90, progress=False)


def test_calibrated_interval_is_mean_plus_minus_scale_std(images, tmp_path):
    from teachdiff.evaluation.metrics import ConformalScale

    flat, _ = images
    calibration = ConformalScale(level=0.9, scale=2.0, min_std=0.5, settings={"sampler": "ddim", "steps": 2,
                                                                                "samples": 3})
    out = tmp_path / "out"
    restore_files(ddpm_method(), [flat], out, n_samples=3, sampler="ddim", steps=2, tile=None, interval=0.9,
                  calibration=calibration, progress=False)
    mean, std, lower, upper = (tifffile.imread(out / f"fov_8bit_{k}.tif") for k in ("mean", "std", "lower", "upper"))
    half = 2.0 * np.maximum(std * 255, 0.5)  # 8-bit: the 0..255 scale is the input's scale
    np.testing.assert_allclose(lower, np.clip(mean - half, 0, 255), atol=1e-3)
    np.testing.assert_allclose(upper, np.clip(mean + half, 0, 255), atol=1e-3)


def test_calibration_file_must_match_the_interval_and_the_sampler(tmp_path):
    from teachdiff.evaluation.metrics import ConformalScale
    from teachdiff.cli.restore import load_calibration

    path = ConformalScale(0.9, 2.0, settings={"sampler": "ddim", "steps": 10, "samples": 8}).save(tmp_path / "c.json")
    assert load_calibration(str(path), 0.9, "ddim", 10, 8).scale == 2.0
    with pytest.raises(ValueError, match="--interval"):
        load_calibration(str(path), None, "ddim", 10, 8)
    with pytest.raises(ValueError, match="fitted for a 0.9"):
        load_calibration(str(path), 0.8, "ddim", 10, 8)
    with pytest.raises(ValueError, match="made the same way"):
        load_calibration(str(path), 0.9, "ddpm", 10, 15)


def test_restore_defaults_to_the_fast_setting_and_both_helps_name_the_paper_setting(capsys):
    import argparse

    from teachdiff.evaluation import reproduce
    from teachdiff.cli import reproduce as reproduce_cli, restore as restore_cli
    from teachdiff.inference.sampling import FAST_SAMPLING, PAPER_SAMPLING

    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    restore_cli.add_parser(subparsers)
    reproduce_cli.add_parser(subparsers)
    args = parser.parse_args(["restore", "in.tif", "--checkpoint", "c.pt", "--out", "o"])
    assert (args.sampler, args.steps, args.samples) == (FAST_SAMPLING.sampler, FAST_SAMPLING.steps,
                                                         FAST_SAMPLING.samples)
    paper = reproduce.ReproduceConfig.preset_for("synthetic-zebrafish", "paper")
    assert (paper.sampler, paper.n_avg) == (PAPER_SAMPLING.sampler, PAPER_SAMPLING.samples)
    for command in ("restore", "reproduce"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert f"--sampler {PAPER_SAMPLING.sampler}" in text or f"with {PAPER_SAMPLING.sampler}" in text
        assert f"--steps {FAST_SAMPLING.steps} --samples {FAST_SAMPLING.samples}" in text or \
            f"default {FAST_SAMPLING.samples}" in text


def test_slow_restore_warns_with_faster_flags_and_no_progress_silences_everything(images, tmp_path, capsys):
    """slow_after_s=0: any run counts as slow, so the warning must appear after the first call,
    naming the flags of a faster run; with progress off, neither bar nor warning is printed."""
    flat, _ = images
    restore_files(ddpm_method(), [flat], tmp_path / "a", n_samples=N_SAMPLES, tile=32, overlap=8, progress=True,
                  slow_after_s=0)
    err = capsys.readouterr().err
    from teachdiff.inference.sampling import FAST_SAMPLING

    assert "warning: this restoration will take about" in err
    assert f"--sampler ddim --steps {FAST_SAMPLING.steps}" in err
    assert "call" in err  # the bar counts network calls
    restore_files(ddpm_method(), [flat], tmp_path / "b", n_samples=N_SAMPLES, tile=32, overlap=8, progress=False,
                  slow_after_s=0)
    assert capsys.readouterr() == ("", "")


def test_fast_setting_hint_points_slower_runs_to_the_fast_setting():
    from teachdiff.inference.sampling import FAST_SAMPLING
    from teachdiff.cli.restore import fast_setting_hint

    fast = f"--sampler ddim --steps {FAST_SAMPLING.steps} --eta {FAST_SAMPLING.eta:g}"
    assert fast in fast_setting_hint("ddpm", 20, 15)  # DDPM runs all T steps
    assert fast in fast_setting_hint("ddim", 50, 3) and "--samples " not in fast_setting_hint("ddim", 50, 3)
    assert f"--samples {FAST_SAMPLING.samples}" in fast_setting_hint("ddim", FAST_SAMPLING.steps, 30)
    already_fast = fast_setting_hint("ddim", FAST_SAMPLING.steps, FAST_SAMPLING.samples)
    assert "--steps" not in already_fast and "fewer --samples" in already_fast and "--device cuda" in already_fast


# ----------------------------------------------------------------------------------------------
# Issue 27: regression models do not sample; intervals that cannot reach their level; small images
# ----------------------------------------------------------------------------------------------


def _care_checkpoint(path):
    from teachdiff.methods.care import CARE, CAREConfig
    from teachdiff.store.checkpoint import save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(path, CARE(CAREConfig(depth=1, base_filters=4)))


def test_restore_refuses_an_interval_for_a_regression_model(images, tmp_path, capsys):
    flat, _ = images
    negate = types.SimpleNamespace(kind="care", restore=lambda x: -x)
    with pytest.raises(ValueError, match="only the DDPM samples"):
        restore_files(negate, [flat], tmp_path / "out", interval=0.9, progress=False, model_name="my-care")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    ckpt = _care_checkpoint(tmp_path / "care.pt")
    argv = ["restore", "--checkpoint", str(ckpt), str(flat), "--out", str(tmp_path / "cli"), "--no-progress"]
    assert main(argv + ["--interval", "0.9"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("teachdiff restore: error: --interval needs samples") and "care model" in err


def test_restore_warns_that_a_regression_model_ignores_the_sampling_options(images, tmp_path, capsys):
    flat, _ = images
    ckpt = _care_checkpoint(tmp_path / "care.pt")
    argv = ["restore", "--checkpoint", str(ckpt), str(flat), "--no-progress"]
    assert main(argv + ["--out", str(tmp_path / "a"), "--samples", "15", "--sampler", "ddpm"]) == 0
    err = capsys.readouterr().err
    assert "warning: --samples --sampler ignored" in err and "only the DDPM samples" in err
    assert (tmp_path / "a" / "fov_8bit_restored.tif").is_file()
    assert main(argv + ["--out", str(tmp_path / "b")]) == 0  # the defaults alone: nothing to warn about
    assert "ignored" not in capsys.readouterr().err


@pytest.mark.parametrize("samples, level, needed", [(2, 0.9, 19), (8, 0.9, 19), (15, 0.95, 39)])
def test_restore_warns_when_the_samples_cannot_reach_the_interval_level(images, tmp_path, samples, level, needed):
    flat, _ = images
    with pytest.warns(UserWarning, match=rf"cannot reach {level:.0%}; pass --samples {needed} or more"):
        restore_files(ddpm_method(), [flat], tmp_path / "out", n_samples=samples, sampler="ddim", steps=1,
                      tile=None, interval=level, progress=False)
    assert (samples - 1) / (samples + 1) < level <= (needed - 1) / (needed + 1)  # independent of the code
    assert (needed - 2) / needed < level  # and needed - 1 samples would not do


def test_restore_does_not_warn_when_the_samples_can_reach_the_level_or_it_is_calibrated(images, tmp_path):
    import warnings

    from teachdiff.evaluation.metrics import ConformalScale

    flat, _ = images
    big = tmp_path / "in" / "big.tif"
    tifffile.imwrite(big, np.random.default_rng(1).integers(0, 256, size=(64, 64), dtype=np.uint8))
    calibration = ConformalScale(level=0.9, scale=2.0, min_std=0.5, settings={})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        restore_files(ddpm_method(), [big], tmp_path / "a", n_samples=3, sampler="ddim", steps=1, tile=None,
                      interval=0.5, progress=False)
        restore_files(ddpm_method(), [big], tmp_path / "b", n_samples=3, sampler="ddim", steps=1, tile=None,
                      interval=0.9, calibration=calibration, progress=False)


def test_restore_warns_when_the_image_is_smaller_than_the_training_patch(tmp_path):
    tiny = tmp_path / "tiny.tif"
    tifffile.imwrite(tiny, np.full((2, 2), 7, dtype=np.uint8))
    method = ddpm_method()  # a U-Net of 64² patches and no data card: its image_size is the patch
    with pytest.warns(UserWarning, match="2x2 pixels is smaller than the 64x64 patches my-ddpm was trained on"):
        written = restore_files(method, [tiny], tmp_path / "out", n_samples=2, sampler="ddim", steps=1,
                                progress=False, model_name="my-ddpm")
    assert tifffile.imread(tmp_path / "out" / "tiny_mean.tif").shape == (2, 2) and written
    method.data_card = {"patch_size": 2}  # a model trained on patches this small: nothing to warn about
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        restore_files(method, [tiny], tmp_path / "out2", n_samples=2, sampler="ddim", steps=1, progress=False)


# ----------------------------------------------------------------------------------------------
# Issue 26: one interface for every method, one SamplingSetting from flag to sampler
# ----------------------------------------------------------------------------------------------


def test_the_command_line_passes_one_sampling_setting_built_from_its_flags(images, tmp_path, monkeypatch):
    from teachdiff.cli import restore as restore_cli
    from teachdiff.inference.settings import FAST_SAMPLING, SamplingSetting
    from teachdiff.store.checkpoint import save_checkpoint

    flat, _ = images
    ckpt = save_checkpoint(tmp_path / "best.pt", DiffusionMethod(DiffusionConfig(unet=UNetConfig.tiny(), T=4)))
    passed = []

    def record(method, inputs, out_dir, sampling, **options):
        passed.append(sampling)
        return []

    monkeypatch.setattr(restore_cli, "restore_files", record)
    argv = ["restore", "--checkpoint", str(ckpt), str(flat), "--out", str(tmp_path / "out"), "--device", "cpu"]
    assert main(argv) == 0
    assert main(argv + ["--sampler", "dpm++", "--steps", "3", "--samples", "2", "--eta", "0.5"]) == 0
    assert passed == [FAST_SAMPLING, SamplingSetting("dpm++", 3, 2, eta=0.5)]


def test_restore_files_takes_a_sampling_setting_or_its_fields(images, tmp_path):
    from teachdiff.inference.settings import SamplingSetting

    flat, _ = images
    restore_files(ddpm_method(), [flat], tmp_path / "a", SamplingSetting("ddim", 2, 3, eta=1.0), tile=None,
                  progress=False)
    restore_files(ddpm_method(), [flat], tmp_path / "b", n_samples=3, sampler="ddim", steps=2, eta=1.0, tile=None,
                  progress=False)
    for name in ("mean", "std"):
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "a" / f"fov_8bit_{name}.tif"),
                                      tifffile.imread(tmp_path / "b" / f"fov_8bit_{name}.tif"))


def test_restore_method_image_asks_the_method_what_it_is_not_its_kind():
    from teachdiff.inference.restore import draws_samples, restore_method_image, restore_with
    from teachdiff.inference.settings import SamplingSetting
    from teachdiff.methods.care import CARE, CAREConfig

    image = np.random.default_rng(3).integers(0, 256, size=(20, 24), dtype=np.uint8)
    method = ddpm_method()
    assert draws_samples(method) and method.denoiser is method.unet and method.input_channels == 1
    care = CARE(CAREConfig(depth=1, base_filters=4))
    assert not draws_samples(care) and care.training_patch_size is None and care.input_channels == 1
    got = restore_method_image(method, image, sampling=SamplingSetting("ddim", 2, 3, eta=1.0), tile=None, seed=1)
    expected = restore_image(method.unet, image, method.schedule, n_samples=3, sampler="ddim", steps=2, eta=1.0,
                             tile=None, seed=1, progress=False)
    np.testing.assert_array_equal(got.mean, expected.mean)
    np.testing.assert_array_equal(got.std, expected.std)
    negate = types.SimpleNamespace(kind="care", restore=lambda x: -x)  # anything with restore(x) restores once
    once = restore_method_image(negate, image, tile=None)
    assert once.std is None and once.entropy is None and once.n_samples == 1
    np.testing.assert_allclose(once.mean, 255.0 - image, atol=1e-3)
    assert restore_with(negate, image, tile=None)[1] is None
    with pytest.raises(ValueError, match="needs samples"):
        restore_method_image(negate, image, interval=0.9)
