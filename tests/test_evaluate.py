"""`teachdiff evaluate`: pairing by name, per-image CSV, median table, clear errors."""

from __future__ import annotations

import argparse
import csv
import math

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage

from teachdiff.cli import main as cli
from teachdiff.cli import evaluate as evaluate_cli
from teachdiff.evaluation import evaluate, metrics

SIZE = 192  # the smallest convenient size above MS-SSIM's 176-pixel limit


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    evaluate_cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["evaluate", *argv])


def ground_truth(seed: int) -> np.ndarray:
    smooth = ndimage.gaussian_filter(np.random.default_rng(seed).random((SIZE, SIZE)), 2)
    return ((smooth - smooth.min()) / (smooth.max() - smooth.min()) * 200 + 20).astype(np.uint8)


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(0)
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    (pred_dir / "good").mkdir(parents=True)
    (pred_dir / "noisy").mkdir()
    for i in range(3):
        gt = ground_truth(i)
        Image.fromarray(gt).save(gt_dir / f"img_{i}.png")
        good = np.clip(gt + rng.normal(0, 2, gt.shape), 0, 255).astype(np.float32)
        tifffile.imwrite(pred_dir / "good" / f"img_{i}.tif", good)
        noisy = np.clip(gt + rng.normal(0, 12, gt.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(pred_dir / "noisy" / f"img_{i}.png")
    return pred_dir, gt_dir


def test_writes_per_image_csv_and_prints_median_table(folders, tmp_path, capsys):
    pred_dir, gt_dir = folders
    out = tmp_path / "scores.csv"
    args = parse("--pred", str(pred_dir), "--gt", str(gt_dir), "--methods", "noisy", "good",
                 "--pixel-size", "20", "--out", str(out), "--no-lpips", "--table", str(tmp_path / "t.md"))
    assert args.func(args) == 0

    with open(out) as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["method"], r["image"]) for r in rows] == [
        ("noisy", "img_0"), ("noisy", "img_1"), ("noisy", "img_2"),
        ("good", "img_0"), ("good", "img_1"), ("good", "img_2"),
    ]
    pred = tifffile.imread(pred_dir / "good" / "img_1.tif").astype(np.float64)
    gt = np.asarray(Image.open(folders[1] / "img_1.png"), dtype=np.float64)
    expected = metrics.evaluate(pred, gt, pixel_size=20.0, lpips=False)
    row = rows[4]
    for name, value in expected.items():
        assert float(row[name]) == pytest.approx(value, rel=1e-9, nan_ok=True)
    assert math.isnan(float(row["lpips"]))

    printed = capsys.readouterr().out
    assert "| Method | MAE ↓ | PSNR ↑ |" in printed and "| noisy |" in printed and "| good |" in printed
    assert "Mood's median test against noisy" in printed
    assert (tmp_path / "t.md").read_text().startswith("| Method |")


def test_single_method_folder_and_16_bit_rule(tmp_path, capsys):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "DDPM"
    gt_dir.mkdir()
    pred_dir.mkdir()
    gt = ground_truth(7)
    tifffile.imwrite(gt_dir / "a.tif", gt.astype(np.uint16) * 257)
    Image.fromarray(np.stack([gt] * 3, axis=-1)).save(pred_dir / "a.png")  # grey saved as RGB
    args = parse("--pred", str(pred_dir), "--gt", str(gt_dir), "--out", str(tmp_path / "s.csv"), "--no-lpips")
    assert args.func(args) == 0
    row = next(csv.DictReader(open(tmp_path / "s.csv")))
    assert row["method"] == "DDPM" and float(row["mae"]) == 0.0  # 16-bit / 257 == the 8-bit image
    assert "dividing by 257" in capsys.readouterr().out


def test_read_image_255(tmp_path):
    tifffile.imwrite(tmp_path / "x.tif", np.array([[0, 65535], [257, 514]], dtype=np.uint16))
    image, was_16_bit = evaluate.read_image_255(tmp_path / "x.tif")
    np.testing.assert_array_equal(image, [[0, 255], [1, 2]])
    assert was_16_bit
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 8, 8), dtype=np.uint8), photometric="minisblack")
    with pytest.raises(ValueError, match="2-D grey image"):
        evaluate.read_image_255(tmp_path / "stack.tif")
    tifffile.imwrite(tmp_path / "int.tif", np.zeros((8, 8), dtype=np.int32))
    with pytest.raises(ValueError, match="pixel type"):
        evaluate.read_image_255(tmp_path / "int.tif")


def test_missing_and_extra_files_are_skipped_and_named(folders, tmp_path, capsys):
    pred_dir, gt_dir = folders
    (pred_dir / "good" / "img_2.tif").unlink()
    tifffile.imwrite(pred_dir / "good" / "stray.tif", np.zeros((SIZE, SIZE), np.float32))
    assert run(pred_dir, gt_dir, tmp_path / "s.csv", "--methods", "good") == 0
    assert [r["image"] for r in csv.DictReader(open(tmp_path / "s.csv"))] == ["img_0", "img_1"]
    printed = capsys.readouterr().out
    assert "skipped 1 of 3 ground-truth image(s) without a prediction: img_2" in printed
    assert "good: skipped 1 prediction(s) without ground truth: stray.tif" in printed
    for path in (pred_dir / "good").iterdir():
        path.rename(path.with_name("other_" + path.name))
    with pytest.raises(ValueError, match=r"no prediction pairs with a ground-truth image \(img_0, img_1, img_2\)"):
        run(pred_dir, gt_dir, tmp_path / "t.csv", "--methods", "good")
    assert not (tmp_path / "t.csv").exists()


def test_other_input_errors(folders, tmp_path):
    pred_dir, gt_dir = folders
    out = tmp_path / "s.csv"
    with pytest.raises(ValueError, match=r"not found .* available: \['good', 'noisy'\]"):
        run(pred_dir, gt_dir, out, "--methods", "CARE")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run(tmp_path / "nowhere", gt_dir, out)
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(pred_dir / "noisy" / "img_0.png")
    with pytest.raises(ValueError, match="same pixels"):
        run(pred_dir, gt_dir, out, "--methods", "noisy")
    out.write_text("precious results")
    with pytest.raises(FileExistsError, match="--overwrite"):
        run(pred_dir, gt_dir, out, "--methods", "good")
    assert out.read_text() == "precious results"
    assert run(pred_dir, gt_dir, out, "--methods", "good", "--overwrite") == 0


def run(pred_dir, gt_dir, out, *extra: str) -> int:
    args = parse("--pred", str(pred_dir), "--gt", str(gt_dir), "--out", str(out), "--no-lpips", *extra)
    return args.func(args)


def test_command_is_registered():
    assert "teachdiff.cli.evaluate" in cli.COMMAND_MODULES


# ----------------------------------------------------------------------------------------------
# Issue 27: NaN predictions are named; images under 176² are scored with fewer MS-SSIM scales
# ----------------------------------------------------------------------------------------------


def test_evaluate_names_nan_predictions_with_count_and_file(tmp_path, capsys):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    for i in range(3):
        gt = ground_truth(i)
        Image.fromarray(gt).save(gt_dir / f"img_{i}.png")
        pred = gt.astype(np.float32)
        if i == 1:
            pred[:10, :5] = np.nan  # 50 NaN pixels, as a failed restoration writes them
            pred[20, 20] = np.inf
        tifffile.imwrite(pred_dir / f"img_{i}.tif", pred)
    argv = ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--no-lpips", "--out", str(tmp_path / "s.csv")]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("teachdiff evaluate: error:") and "NaN or infinite values in 1 file(s)" in err
    assert f"{pred_dir / 'img_1.tif'}: 50 NaN and 1 infinite of {SIZE * SIZE} pixels" in err
    assert "--pred-range" not in err and "look like" not in err  # not the scale misdiagnosis
    assert not (tmp_path / "s.csv").exists()


def test_evaluate_scores_small_images_with_fewer_ms_ssim_scales(tmp_path, capsys):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        gt = ground_truth(i)[:100, :120]  # under 176²: 5 scales do not fit, 4 (from 88 px) do
        Image.fromarray(gt).save(gt_dir / f"img_{i}.png")
        noisy = np.clip(gt + rng.normal(0, 5, gt.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(pred_dir / f"img_{i}.png")
    argv = ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--no-lpips", "--no-progress"]
    assert cli.main(argv + ["--out", str(tmp_path / "a.csv")]) == 1
    err = capsys.readouterr().err
    assert "100x120 pixels, smaller than the 176x176" in err and "pass --ms-ssim-scales 4" in err
    assert cli.main(argv + ["--out", str(tmp_path / "b.csv"), "--ms-ssim-scales", "4"]) == 0
    out = capsys.readouterr().out
    assert "MS-SSIM over 4 scale(s)" in out and "not comparable" in out
    with open(tmp_path / "b.csv") as handle:
        scored = [float(r["ms_ssim"]) for r in csv.DictReader(handle)]
    expected = [metrics.ms_ssim(np.asarray(Image.open(pred_dir / f"img_{i}.png"), dtype=np.float64),
                                np.asarray(Image.open(gt_dir / f"img_{i}.png"), dtype=np.float64), scales=4)
                for i in range(3)]
    np.testing.assert_allclose(scored, expected, rtol=1e-6)
    assert all(0.5 < s < 1 for s in scored)


# ----------------------------------------------------------------------------------------------
# Issue 26: the Python API the command calls; its messages name keywords, not flags
# ----------------------------------------------------------------------------------------------


def test_evaluate_folders_returns_rows_table_and_notes(folders):
    pred_dir, gt_dir = folders
    scored = evaluate.evaluate_folders(pred_dir, gt_dir, ["noisy", "good"], pixel_size=20, lpips=False,
                                       progress=False)
    assert scored.methods == ["noisy", "good"]
    assert [(r["method"], r["image"]) for r in scored.rows][:2] == [("noisy", "img_0"), ("noisy", "img_1")]
    good = next(r for r in scored.table if r["method"] == "good")
    noisy = next(r for r in scored.table if r["method"] == "noisy")
    assert good["mae"] < noisy["mae"] and good["n_images"] == 3 and "mae_stars" in good
    assert evaluate.median_table_markdown(scored.table).startswith("| Method | MAE ↓ |")


def test_evaluate_folders_messages_name_python_keywords(folders, tmp_path):
    pred_dir, gt_dir = folders
    with pytest.raises(ValueError, match=r"methods \['CARE'\] not found"):
        evaluate.evaluate_folders(pred_dir, gt_dir, ["CARE"], progress=False)
    with pytest.raises(ValueError, match=r"pred_range=\(LOW, HIGH\) needs LOW < HIGH"):
        evaluate.evaluate_folders(pred_dir, gt_dir, pred_range=(1, 0), progress=False)
    unit = tmp_path / "unit"
    unit.mkdir()
    for path in sorted(gt_dir.iterdir()):
        tifffile.imwrite(unit / f"{path.stem}.tif", np.asarray(Image.open(path), dtype=np.float32) / 255)
    with pytest.raises(ValueError, match=r"pass pred_range=\(0, 1\)") as refused:
        evaluate.evaluate_folders(unit, gt_dir, lpips=False, progress=False)
    assert "--" not in str(refused.value)
    scored = evaluate.evaluate_folders(unit, gt_dir, pred_range=(0, 1), lpips=False, progress=False)
    assert max(r["mae"] for r in scored.rows) < 1e-3
