"""`teachdiff evaluate` on `teachdiff restore`'s output as it is (issue 16, items 4 and 10)."""

from __future__ import annotations

import csv
import types
import warnings

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage

from teachdiff.cli import main as cli
from teachdiff.evaluation import evaluate, metrics
from teachdiff.cli.restore import restore_files

SIZE = 192  # above MS-SSIM's 176-pixel limit


def ground_truth(seed: int, top: int = 255) -> np.ndarray:
    smooth = ndimage.gaussian_filter(np.random.default_rng(seed).random((SIZE, SIZE)), 2)
    return (smooth - smooth.min()) / (smooth.max() - smooth.min()) * (top * 0.8) + top * 0.1


def identity_baseline():
    """A stand-in for a restored baseline checkpoint: it returns its input."""
    return types.SimpleNamespace(kind="care", restore=lambda x: x)


@pytest.fixture
def gt_dir(tmp_path):
    folder = tmp_path / "gt"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(ground_truth(i).astype(np.uint8)).save(folder / f"fov_{i}.png")
    return folder


def rows_of(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_evaluate_scores_restore_output_as_is(gt_dir, tmp_path, capsys):
    """restore's folder (`_restored.tif` + `.png` preview per input) for 2 of 3 GT images scores
    the 2 TIFFs, says that 1 GT image was skipped, and gives the scores of the TIFFs themselves."""
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    rng = np.random.default_rng(1)
    for i in (0, 2):
        gt = np.asarray(Image.open(gt_dir / f"fov_{i}.png"), dtype=float)
        Image.fromarray(np.clip(gt + rng.normal(0, 8, gt.shape), 0, 255).astype(np.uint8)).save(noisy / f"fov_{i}.png")
    out = tmp_path / "restored"
    restore_files(identity_baseline(), sorted(noisy.iterdir()), out, tile=None, progress=False)
    assert sorted(p.name for p in out.iterdir())[:2] == ["fov_0_restored.png", "fov_0_restored.tif"]

    assert cli.main(["evaluate", "--pred", str(out), "--gt", str(gt_dir), "--out", str(tmp_path / "s.csv"),
                     "--no-lpips", "--no-progress"]) == 0
    rows = rows_of(tmp_path / "s.csv")
    assert [r["image"] for r in rows] == ["fov_0", "fov_2"]
    expected = metrics.evaluate(tifffile.imread(out / "fov_2_restored.tif"),
                                np.asarray(Image.open(gt_dir / "fov_2.png")), lpips=False)
    assert float(rows[1]["mae"]) == pytest.approx(expected["mae"], rel=1e-9)
    printed = capsys.readouterr().out
    assert "skipped 1 of 3 ground-truth image(s) without a prediction: fov_1" in printed
    assert "scored 2 <name>_restored file(s)" in printed and "used the TIFF of 2 name(s)" in printed


def test_evaluate_scores_the_ddpm_mean_and_leaves_out_samples_and_uncertainty_maps(gt_dir, tmp_path, capsys):
    pred = tmp_path / "pred"
    ddpm, care = pred / "DDPM-avg", pred / "CARE"
    ddpm.mkdir(parents=True)
    for i in range(3):
        gt = np.asarray(Image.open(gt_dir / f"fov_{i}.png"), dtype=np.float32)
        tifffile.imwrite(ddpm / f"fov_{i}_mean.tif", gt + 1)  # MAE exactly 1
        tifffile.imwrite(ddpm / f"fov_{i}_sample.tif", gt + 50)
        tifffile.imwrite(ddpm / f"fov_{i}_std.tif", np.full_like(gt, 0.1))
        tifffile.imwrite(ddpm / f"fov_{i}_entropy.tif", np.full_like(gt, 0.5))
    restore_files(identity_baseline(), [gt_dir / "fov_1.png", gt_dir / "fov_2.png"], care, tile=None, progress=False)
    assert cli.main(["evaluate", "--pred", str(pred), "--gt", str(gt_dir), "--methods", "DDPM-avg", "CARE",
                     "--out", str(tmp_path / "s.csv"), "--no-lpips", "--no-progress"]) == 0
    rows = rows_of(tmp_path / "s.csv")
    assert [(r["method"], r["image"]) for r in rows] == [("DDPM-avg", "fov_1"), ("DDPM-avg", "fov_2"),
                                                          ("CARE", "fov_1"), ("CARE", "fov_2")]
    assert [float(r["mae"]) for r in rows] == pytest.approx([1, 1, 0, 0], abs=1e-4)
    printed = capsys.readouterr().out
    assert "DDPM-avg: scored 3 <name>_mean file(s)" in printed and "left out 9 _sample/_std/_entropy" in printed
    assert "DDPM-avg: skipped 1 prediction(s) without a counterpart: fov_0_mean.tif" in printed


def test_evaluate_puts_restore_output_of_16bit_inputs_on_the_0_255_scale(tmp_path):
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    gt16 = (ground_truth(5, top=65535)).astype(np.uint16)
    tifffile.imwrite(gt_dir / "cell.tif", gt16)
    restore_files(identity_baseline(), [gt_dir / "cell.tif"], tmp_path / "out", tile=None, progress=False)
    assert tifffile.imread(tmp_path / "out" / "cell_restored.tif").max() > 255  # the input's own scale
    assert cli.main(["evaluate", "--pred", str(tmp_path / "out"), "--gt", str(gt_dir), "--out",
                     str(tmp_path / "s.csv"), "--no-lpips", "--no-progress"]) == 0
    assert float(rows_of(tmp_path / "s.csv")[0]["mae"]) == pytest.approx(0, abs=0.01)


def test_evaluate_refuses_predictions_on_another_scale_unless_pred_range_says_so(gt_dir, tmp_path, capsys):
    for name, transform, pred_range in (("unit", lambda g: g / 255, "0 1"), ("model", lambda g: g / 127.5 - 1, "-1 1"),
                                        ("sixteen", lambda g: g * 257, "0 65535")):
        pred = tmp_path / name
        pred.mkdir()
        for i in range(3):
            gt = np.asarray(Image.open(gt_dir / f"fov_{i}.png"), dtype=np.float32)
            tifffile.imwrite(pred / f"fov_{i}.tif", transform(gt).astype(np.float32))
        out = tmp_path / f"{name}.csv"
        argv = ["evaluate", "--pred", str(pred), "--gt", str(gt_dir), "--out", str(out), "--no-lpips", "--no-progress"]
        assert cli.main(argv) == 1
        assert f"pass --pred-range {pred_range}" in capsys.readouterr().err and not out.exists()
        assert cli.main(argv + ["--pred-range", *pred_range.split()]) == 0
        assert max(float(r["mae"]) for r in rows_of(out)) < 1e-3
    assert cli.main(argv + ["--overwrite", "--pred-range", "0", "1"]) == 1  # a wrong range is refused too
    assert "does not fit" in capsys.readouterr().err


def test_evaluate_checks_that_out_is_writable_before_scoring(gt_dir, tmp_path, monkeypatch, capsys):
    scored = []
    monkeypatch.setattr(metrics, "evaluate", lambda *a, **k: scored.append(1))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    pred = tmp_path / "pred"
    pred.mkdir()
    for i in range(3):
        (pred / f"fov_{i}.png").write_bytes((gt_dir / f"fov_{i}.png").read_bytes())
    for out in (a_file / "scores.csv", tmp_path):  # a folder that cannot be created; a folder, not a file
        assert cli.main(["evaluate", "--pred", str(pred), "--gt", str(gt_dir), "--out", str(out)]) == 1
        assert str(out) in capsys.readouterr().err
    assert scored == []


def test_evaluate_no_progress_prints_no_bar_and_warnings_are_not_inside_the_bar(gt_dir, tmp_path, capsys):
    pred = tmp_path / "pred"
    pred.mkdir()
    for i in range(3):
        gt = np.asarray(Image.open(gt_dir / f"fov_{i}.png"))
        Image.fromarray(np.full_like(gt, 100) if i == 1 else gt).save(pred / f"fov_{i}.png")  # constant: warns
    argv = ["evaluate", "--pred", str(pred), "--gt", str(gt_dir), "--no-lpips"]
    warnings.simplefilter("always")  # each run shows its warnings (pytest restores the filters)
    assert cli.main(argv + ["--out", str(tmp_path / "a.csv"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "scoring" not in err and "%|" not in err
    assert "MetricWarning" in err  # the warnings themselves are still shown
    assert cli.main(argv + ["--out", str(tmp_path / "b.csv")]) == 0
    segments = capsys.readouterr().err.replace("\r", "\n").split("\n")
    warned = [s for s in segments if "MetricWarning" in s]
    assert warned and not any("%|" in s or "scoring" in s for s in warned)
    assert any("scoring pred" in s for s in segments)


def test_evaluate_reports_a_resolution_without_decorrelation_peak_as_nan(gt_dir, tmp_path, capsys):
    pred = tmp_path / "noise"
    pred.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray(rng.integers(60, 140, (SIZE, SIZE), dtype=np.uint8)).save(pred / f"fov_{i}.png")
    assert cli.main(["evaluate", "--pred", str(pred), "--gt", str(gt_dir), "--out", str(tmp_path / "s.csv"),
                     "--no-lpips", "--no-progress", "--pixel-size", "20"]) == 0
    rows = rows_of(tmp_path / "s.csv")
    assert all(r["resolution"] == "nan" and r["resolution_ratio"] == "nan" for r in rows)
    assert all(float(r["resolution_gt"]) < 98 * 20 for r in rows)  # the GT's own resolution is measured
    assert "3 prediction(s) have no decorrelation peak" in capsys.readouterr().out
