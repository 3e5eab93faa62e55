"""Your own folder of pairs (issue 15): layouts, errors, splits, normalisation, fine-tuning, --out safety,
and 12-bit data in 16-bit files (issue 16, item 2)."""

import csv
import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from teachdiff.cli.main import main
from teachdiff.data import simulate_pair, write_image
from teachdiff.data.check import check_folder
from teachdiff.data.folder import (
    FolderConfig,
    Normalization,
    bit_depth_warning,
    make_folder_datasets,
    prepare_folder,
    restore_normalization,
)
from teachdiff.cli.restore import restore_files
from teachdiff.store.checkpoint import load_checkpoint
from teachdiff.store.resolve import load_method
from teachdiff.training.loop import train
from teachdiff.training.presets import train_preset

SIZE = 64


pytestmark = pytest.mark.usefixtures("one_thread")


def pair(seed, scale=16, size=SIZE):
    """A simulated pair as 16-bit arrays holding 12-bit content (x 16), as a 12-bit camera writes it."""
    p = simulate_pair("microtubules", size=size, seed=seed)
    return p.x.astype(np.uint16) * scale, p.y.astype(np.uint16) * scale


def flat_folder(root: Path, n=6, scale=16, ext=".tif") -> Path:
    for f in range(n):
        x, y = pair(f, scale)
        if ext == ".png":
            x, y = ((a // scale).astype(np.uint8) for a in (x, y))
        write_image(root / "raw" / f"fov{f:02d}{ext}", x)
        write_image(root / "gt" / f"fov{f:02d}{ext}", y)
    return root


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fn(*args, **kwargs)


# ---------------------------------------------------------------------------------------------- layouts


def test_three_layouts_and_z_stacks_are_detected(tmp_path):
    flat = quiet(prepare_folder, FolderConfig(str(flat_folder(tmp_path / "flat", ext=".png"))), 32, progress=False)
    assert sum(len(s.pairs) for s in flat.values()) == 6 and flat["train"].bit_depth == 8
    # per-FOV subfolders, images paired by name; one FOV holds a z-stack of 3 slices
    for f in range(4):
        for t in range(2):
            x, y = pair(10 * f + t)
            if f == 0 and t == 0:
                x, y = np.stack([x] * 3), np.stack([y] * 3)
            write_image(tmp_path / "sub" / "raw" / f"cell{f}" / f"t{t}.tif", x)
            write_image(tmp_path / "sub" / "gt" / f"cell{f}" / f"t{t}.tif", y)
    sub = quiet(prepare_folder, FolderConfig(str(tmp_path / "sub")), 32, progress=False)
    pairs = [p for s in sub.values() for p in s.pairs]
    assert len(pairs) == 8 and {p.fov for p in pairs} == {f"cell{f}" for f in range(4)}
    assert sum(len(s) for s in sub.values()) == (3 + 7) * 4  # slices x 2x2 patches of 32 px
    # FMD style: many captures per FOV, one target
    for f in range(3):
        for c in range(5):
            write_image(tmp_path / "fmd" / "raw" / f"{f}" / f"cap{c}.png", pair(100 * f + c)[0].astype(np.uint8))
        write_image(tmp_path / "fmd" / "gt" / f"{f}" / "avg.png", pair(100 * f)[1].astype(np.uint8))
    fmd = prepare_folder(FolderConfig(str(tmp_path / "fmd")), 32, progress=False)
    assert [len(fmd[s].pairs) for s in ("train", "val", "test")] == [5, 5, 5]
    assert all(len({p.y_path for p in fmd[s].pairs}) == 1 for s in fmd)


def test_splits_never_share_a_fov_and_fractions_can_be_changed(tmp_path):
    for f in range(20):
        for c in range(3):
            write_image(tmp_path / "raw" / f"fov{f}" / f"c{c}.png", pair(f, scale=1)[0].astype(np.uint8))
        write_image(tmp_path / "gt" / f"fov{f}" / "gt.png", pair(f, scale=1)[1].astype(np.uint8))
    for fractions, expected in (((0.8, 0.1, 0.1), (16, 2, 2)), ((0.5, 0.25, 0.25), (10, 5, 5))):
        sets = prepare_folder(FolderConfig(str(tmp_path), split_fractions=fractions), 32, progress=False)
        fovs = {s: {p.fov for p in sets[s].pairs} for s in sets}
        assert not (fovs["train"] & fovs["val"]) and not (fovs["train"] & fovs["test"]) and not (fovs["val"] & fovs["test"])
        assert tuple(len(fovs[s]) for s in ("train", "val", "test")) == expected
        assert all(len(sets[s].pairs) == 3 * len(fovs[s]) for s in sets)  # every capture of a FOV in its split
    again = prepare_folder(FolderConfig(str(tmp_path), split_fractions=(0.5, 0.25, 0.25)), 32, progress=False)
    assert {p.fov for p in again["test"].pairs} == fovs["test"]  # fixed seed: the same split every time


# ---------------------------------------------------------------------------------------------- errors


def test_unpaired_names_are_listed_with_a_count(tmp_path):
    flat_folder(tmp_path, n=3)
    for f in range(12):
        write_image(tmp_path / "raw" / f"lonely{f:02d}.tif", pair(f)[0])
    with pytest.raises(ValueError) as err:
        prepare_folder(FolderConfig(str(tmp_path)), 32, progress=False)
    message = str(err.value)
    assert "12 file(s) without a partner" in message and "lonely00.tif" in message and "and 4 more" in message


def test_sizes_differ_error_names_both_unless_registration_is_on(tmp_path):
    flat_folder(tmp_path, n=4)
    x, _ = pair(0)
    (tmp_path / "gt" / "fov00.tif").unlink()
    big = np.zeros((SIZE + 16, SIZE + 8), np.uint16)
    big[8 : 8 + SIZE, 4 : 4 + SIZE] = pair(0)[1]
    write_image(tmp_path / "gt" / "fov00.tif", big)
    with pytest.raises(ValueError, match=rf"\(1, {SIZE}, {SIZE}\).*\(1, {SIZE + 16}, {SIZE + 8}\).*--register"):
        prepare_folder(FolderConfig(str(tmp_path)), 32, progress=False)
    sets = quiet(prepare_folder, FolderConfig(str(tmp_path), register=True), 32, progress=False)
    fov0 = next((s, k) for s in sets for k, p in enumerate(sets[s].pairs) if p.fov == "fov00")
    reg_x, reg_y = sets[fov0[0]].load_pair(fov0[1])
    assert reg_x.shape == reg_y.shape == (1, SIZE, SIZE)
    assert np.array_equal(reg_y, pair(0)[1][None])  # the common centre of the larger target is the original


@pytest.mark.parametrize("case", ["empty", "no_gt", "rgb", "corrupt"])
def test_bad_folders_name_the_problem(tmp_path, case):
    (tmp_path / "raw").mkdir()
    if case != "no_gt":
        (tmp_path / "gt").mkdir()
    if case == "rgb":
        flat_folder(tmp_path, n=3, ext=".png")
        Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(tmp_path / "raw" / "colour.png")
        Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(tmp_path / "gt" / "colour.png")
        expected = r"colour\.png: .*colour"
    elif case == "corrupt":
        flat_folder(tmp_path, n=3)
        (tmp_path / "raw" / "broken.tif").write_bytes(b"II*\x00 not really a tiff")
        write_image(tmp_path / "gt" / "broken.tif", pair(0)[1])
        expected = r"broken\.tif: cannot be read"
    elif case == "empty":
        expected = "no image pairs found"
    else:
        expected = "has no 'gt/' folder"
    with pytest.raises((ValueError, FileNotFoundError), match=expected):
        prepare_folder(FolderConfig(str(tmp_path)), 32, progress=False)
    assert main(["data", "check", str(tmp_path), "--patch-size", "32"]) == 1


def test_data_check_reports_splits_bit_depth_percentiles_and_12_bit_content(tmp_path, capsys):
    flat_folder(tmp_path, n=6)
    assert main(["data", "check", str(tmp_path), "--patch-size", "32"]) == 0  # 12-bit content: a warning ...
    out = capsys.readouterr().out
    assert "warnings (1)" in out and "--bit-depth 12" in out and "p99.8" in out and "bit depth   16" in out
    report = check_folder(FolderConfig(str(tmp_path), bit_depth=12), patch_size=32, progress=False)
    assert report.ok and not report.warnings, (report.problems, report.warnings)  # ... --bit-depth 12 resolves
    assert sum(r.fovs for r in report.splits.values()) == 6 and sum(r.patches for r in report.splits.values()) == 24
    train_x = np.concatenate([tifffile.imread(tmp_path / "raw" / f"fov{f:02d}.tif").ravel() for f in range(6)])
    assert report.percentiles["raw"][100.0] <= train_x.max()
    assert "0..4095 (12-bit)" in report.scaling


# ---------------------------------------------------------------------------------------------- 12 bit


def test_twelve_bit_content_in_16_bit_files_is_detected():
    assert "--bit-depth 12" in bit_depth_warning(4095, 16)
    assert "--bit-depth 14" in bit_depth_warning(9000, 16)
    assert bit_depth_warning(40000, 16) is None and bit_depth_warning(200, 8) is None
    image = pair(3)[1]  # reaches 4080
    assert "--bit-depth 12" in restore_normalization(None, pair(3)[0], "dim.tif")[1]  # a dim 12-bit input too
    norm, warning = restore_normalization(None, image, "img.tif")
    assert norm.bit_depth == 16 and "--bit-depth 12" in warning
    norm, warning = restore_normalization(None, image, "img.tif", bit_depth=12)
    assert warning is None
    np.testing.assert_allclose(norm.input_to_model(image), image / 4095 * 2 - 1, atol=1e-6)
    with pytest.raises(ValueError, match="more than the 8-bit range"):
        restore_normalization(None, image * 0 + 300, "img.tif", bit_depth=8)
    trained12 = Normalization.from_bit_depth(12, container_bits=16)  # a model trained with --bit-depth 12
    assert restore_normalization(trained12, image, "img.tif") == (trained12, None)


def test_restore_and_evaluate_take_bit_depth(tmp_path, capsys):
    from teachdiff.methods.care import CARE, CAREConfig

    method = CARE(CAREConfig(base_filters=8, kernel_size=3)).eval()
    x, y = pair(5)
    write_image(tmp_path / "in" / "img.tif", x)
    write_image(tmp_path / "gt" / "img.tif", y)
    with pytest.warns(UserWarning, match="--bit-depth 12"):  # the CLI prints it as "warning: ..."
        restore_files(method, [tmp_path / "in" / "img.tif"], tmp_path / "as16", tile=None, progress=False)
    restore_files(method, [tmp_path / "in" / "img.tif"], tmp_path / "as12", tile=None, progress=False, bit_depth=12)
    as12 = tifffile.imread(tmp_path / "as12" / "img_restored.tif")
    with torch.no_grad():
        direct = method.restore(torch.as_tensor(x / 4095 * 2 - 1, dtype=torch.float32)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(as12, (direct + 1) / 2 * 4095, rtol=1e-4, atol=0.05)
    assert main(["restore", str(tmp_path / "in" / "img.tif"), "--checkpoint", "none", "--out", str(tmp_path / "o"),
                 "--bit-depth", "12"]) == 1  # parsed; fails only on the missing checkpoint
    # evaluate: with --bit-depth 12 both images are put on 0..255 by 255 / 4095
    gt = pair(6, size=192)[1]
    pred = np.clip(gt.astype(np.int64) - 160, 0, None).astype(np.uint16)
    write_image(tmp_path / "gt" / "big.tif", gt)
    (tmp_path / "gt" / "img.tif").unlink()
    write_image(tmp_path / "pred" / "big.tif", pred)
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--bit-depth", "12",
                 "--no-lpips", "--out", str(tmp_path / "s.csv")]) == 0
    mae = float(next(csv.DictReader(open(tmp_path / "s.csv")))["mae"])
    assert mae == pytest.approx(np.mean(gt - pred.astype(np.float64)) * 255 / 4095, rel=1e-6)
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--no-lpips",
                 "--out", str(tmp_path / "s16.csv")]) == 0
    assert "--bit-depth 12" in capsys.readouterr().err
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--bit-depth", "8",
                 "--no-lpips", "--out", str(tmp_path / "s8.csv")]) == 1


# ---------------------------------------------------------------------------------------------- training


def care_config(folder: FolderConfig, **kw):
    cfg, method_cfg = train_preset(folder.path, "quick", "care")
    cfg = dataclasses.replace(cfg, data=folder, patch_size=32, epochs=1, steps_per_epoch=2, val_images=2,
                              batch_size=2, **kw)
    return cfg, dataclasses.replace(method_cfg, base_filters=8)


def test_percentile_normalisation_round_trip(tmp_path):
    """Statistics measured on the training split, saved, reapplied by restore; 16-bit in, 16-bit range out."""
    folder = FolderConfig(str(flat_folder(tmp_path / "data", n=6, scale=200)), normalize="percentile")
    datasets = make_folder_datasets(folder, patch_size=32, progress=False)
    norm = datasets["train"].normalization
    train_files = {p.x_path for p in datasets["train"].patches.pairs}
    x_train = np.concatenate([tifffile.imread(p).ravel() for p in train_files]).astype(np.float64)
    y_train = np.concatenate([tifffile.imread(p.y_path).ravel() for p in datasets["train"].patches.pairs])
    assert norm.x_low == pytest.approx(np.percentile(x_train, 3)) and norm.x_high == pytest.approx(np.percentile(x_train, 99.8))
    assert norm.y_high == pytest.approx(np.percentile(y_train.astype(np.float64), 99.8))
    assert datasets["val"].normalization is norm  # one set of statistics for every split

    cfg, method_cfg = care_config(folder)
    result = train(cfg, method_cfg, tmp_path / "run", progress=False)
    assert load_checkpoint(result.best_checkpoint)["normalization"] == norm.to_dict()
    method = load_method(result.best_checkpoint)
    assert method.normalization == norm

    x, y = pair(0, scale=200)
    write_image(tmp_path / "new.tif", x)
    restore_files(method, [tmp_path / "new.tif"], tmp_path / "out", tile=None, progress=False)
    restored = tifffile.imread(tmp_path / "out" / "new_restored.tif")
    with torch.no_grad():
        direct = method.restore(torch.as_tensor(norm.input_to_model(x))[None, None])[0, 0]
    np.testing.assert_allclose(restored, norm.from_model(direct).numpy(), rtol=1e-5, atol=1e-2)
    assert restored.min() >= norm.y_low - 1e-3 and restored.max() <= norm.y_high + 1e-3
    assert restored.max() > 255  # on the 16-bit scale of the input, not 0..1 or 0..255
    back = norm.from_model(norm.target_to_model(y.astype(np.float32)))
    inside = (y >= norm.y_low) & (y <= norm.y_high)
    np.testing.assert_allclose(back[inside], y[inside], rtol=1e-5, atol=0.05)
    with pytest.raises(ValueError, match="measured on 16-bit"):
        restore_normalization(norm, (x // 256).astype(np.uint8), "eight.png")


def test_finetuning_takes_the_checkpoint_and_refuses_another_architecture(tmp_path):
    folder = FolderConfig(str(flat_folder(tmp_path / "data", n=5)), bit_depth=12)
    cfg, method_cfg = care_config(folder)
    base = train(cfg, method_cfg, tmp_path / "base", progress=False)
    wider = dataclasses.replace(method_cfg, base_filters=16)  # ignored: --init brings its own architecture
    tuned = train(dataclasses.replace(cfg, init=str(tmp_path / "base")), wider, tmp_path / "tuned", progress=False)
    base_w, tuned_w = (load_checkpoint(r.last_checkpoint)["model"] for r in (base, tuned))
    assert base_w.keys() == tuned_w.keys() and all(base_w[k].shape == tuned_w[k].shape for k in base_w)
    assert any(not torch.equal(base_w[k], tuned_w[k]) for k in base_w)
    with pytest.raises(ValueError, match="holds a 'care' model, but this run trains 'ddpm'"):
        train(dataclasses.replace(cfg, model="ddpm", init=str(tmp_path / "base")), None, tmp_path / "x", progress=False)
    assert main(["train", "--data", folder.path, "--bit-depth", "12", "--model", "rcan", "--init",
                 str(tmp_path / "base" / "best.pt"), "--out", str(tmp_path / "y"), "--no-progress"]) == 1


def test_nothing_in_out_is_overwritten_without_resume_or_force(tmp_path):
    folder = FolderConfig(str(flat_folder(tmp_path / "data", n=5)), bit_depth=12)
    cfg, method_cfg = care_config(folder)
    train(cfg, method_cfg, tmp_path / "run", progress=False)
    (tmp_path / "run" / "last.pt").unlink()  # a run folder with best.pt and logs but no last.pt
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    with pytest.raises(FileExistsError, match="--force"):
        train(cfg, method_cfg, tmp_path / "run", progress=False)
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()} == before
    args = ["train", "--data", folder.path, "--bit-depth", "12", "--model", "care", "--patch-size", "32",
            "--epochs", "1", "--steps-per-epoch", "1", "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(args) == 1
    assert main(args + ["--force"]) == 0
    assert (tmp_path / "run" / "last.pt").is_file()
    assert (tmp_path / "run" / "best.pt").read_bytes() != before["best.pt"]  # the old run's best.pt is gone


@pytest.mark.parametrize("model", ["ddpm", "care", "n2v", "pix2pix", "rcan"])
def test_every_model_trains_on_a_folder_and_saves_its_normalisation(tmp_path, model):
    folder = FolderConfig(str(flat_folder(tmp_path / "data", n=4, scale=200)), normalize="percentile")
    args = ["train", "--data", folder.path, "--normalize", "percentile", "--model", model, "--patch-size", "64",
            "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--out", str(tmp_path / "run"),
            "--no-progress"]
    assert main(args) == 0
    payload = load_checkpoint(tmp_path / "run" / "best.pt")
    assert payload["kind"] == model and payload["normalization"]["mode"] == "percentile"
    assert payload["train_config"]["data"]["path"] == folder.path
