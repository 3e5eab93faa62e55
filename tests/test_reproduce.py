"""The paper's numbers and the `reproduce` pipeline end to end (with shortened training)."""

import csv
import dataclasses

import numpy as np
import pytest

import teachdiff
import teachdiff.training.runs
from teachdiff.evaluation import metrics
from teachdiff.core.paper import PAPER_RESULTS, paper_value
from teachdiff.evaluation.reproduce import ReproduceConfig, reproduce


def test_paper_numbers_match_spec_table():
    """Spot checks against SPEC.md §6, typed independently of teachdiff/paper.py."""
    spec = {("microtubules", "ddpm-avg"): (3.99, 32.81, 0.89, 0.19), ("microtubules", "care"): (4.11, 32.58, 0.89, 0.20),
            ("mitochondria", "n2v"): (3.06, 34.78, 0.77, 0.32), ("synapses", "rcan"): (5.66, 26.11, 0.81, 0.19),
            ("zebrafish", "ddpm"): (2.98, 32.62, 0.95, 0.09), ("zebrafish", "ddpm-avg"): (2.43, 34.62, 0.97, 0.15)}
    for (dataset, method), values in spec.items():
        got = tuple(paper_value(dataset, method, m) for m in ("mae", "psnr", "ms_ssim", "lpips"))
        assert got == values, (dataset, method)
    assert paper_value("zebrafish", "gt", "resolution") == 776.70
    assert paper_value("synthetic-zebrafish", "ddpm", "mae") is None
    assert set(PAPER_RESULTS) == {"microtubules", "mitochondria", "synapses", "zebrafish"}
    assert all(len(methods) == 8 for methods in PAPER_RESULTS.values())


@pytest.fixture
def short_training(monkeypatch, tmp_path):
    original = teachdiff.training.presets.train_preset

    def short(dataset, preset="quick", model="ddpm"):
        cfg, method_cfg = original(dataset, preset, model)
        return dataclasses.replace(cfg, epochs=1, steps_per_epoch=3, val_images=2), method_cfg

    monkeypatch.setattr(teachdiff.training.runs, "train_preset", short)


@pytest.mark.slow
def test_reproduce_writes_table_figures_and_scores(tmp_path, short_training):
    cfg = dataclasses.replace(ReproduceConfig.preset_for("synthetic-zebrafish", "quick"), models=("ddpm", "care"),
                              n_avg=3, steps=3, test_images=2, use_zoo=False)  # train: the zoo has these
    result = reproduce(cfg, tmp_path, progress=False)
    for name in ("scores.csv", "table.md", "boxplots.png", "averaging.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    methods = [row["method"] for row in result["table"]]
    assert methods == ["raw", "ddpm", "ddpm-avg", "care", "gaussian", "nlm"]
    with open(tmp_path / "scores.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(methods) * 2 * len(cfg.postprocessing)  # a row per mode, method and image
    assert {r["postprocessing"] for r in rows} == set(cfg.postprocessing) == set(result["tables"])
    assert len(result["averaging_curve"]) == 3
    table = (tmp_path / "table.md").read_text()
    assert "Synthetic stand-in" in table and "2.43" in table  # the paper's zebrafish DDPM-avg MAE as reference
    assert all(f"post-processing: {mode}" in table for mode in cfg.postprocessing)
    assert not result["shifts"]  # zebrafish is not registered: no re-alignment
    avg = next(r for r in result["table"] if r["method"] == "ddpm-avg")
    assert avg["mae_diff"] == pytest.approx(avg["mae"] - 2.43)
    # a second run loads the finished models instead of training again
    before = (tmp_path / "models" / "care" / "best.pt").stat().st_mtime_ns
    reproduce(dataclasses.replace(cfg, classical=False), tmp_path, progress=False)
    assert (tmp_path / "models" / "care" / "best.pt").stat().st_mtime_ns == before


def test_extra_models_are_scored_and_post_processed_as_their_kind(tmp_path):
    """A model from another dataset (zero-shot transfer) scored beside the dataset's own: under
    `paper` a CARE is rescaled whatever its label."""
    cfg = dataclasses.replace(ReproduceConfig.preset_for("synthetic-zebrafish", "quick"), models=("care",),
                              extra=(("CARE from microtubules", "synthetic-microtubules-care-quick"),),
                              classical=False, test_images=2, postprocessing=("paper", "none"))
    result = reproduce(cfg, tmp_path, progress=False)
    assert [r["method"] for r in result["table"]] == ["raw", "care", "CARE from microtubules"]
    paper = result["predictions_by_mode"]["paper"]["CARE from microtubules"]
    none = result["predictions_by_mode"]["none"]["CARE from microtubules"]
    np.testing.assert_allclose(paper, metrics.clip_and_rescale(none, result["reference"]))
    assert not np.allclose(paper, none)
