"""The report helpers of teachdiff.evaluation.reproduce that the book's chapters 8-12 use."""

import math

import numpy as np
import pytest

from teachdiff.evaluation.reproduce import (
    _median_table,
    choose_dataset,
    comparison_markdown,
    dataset_card,
    plot_boxplots,
    plot_examples,
)


def test_choose_dataset_falls_back_to_the_stand_in_only_when_the_data_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("TEACHDIFF_DATA", str(tmp_path))
    name, why = choose_dataset("microtubules")
    assert name == "synthetic-microtubules" and "not available" in why
    assert choose_dataset("synthetic-zebrafish") == ("synthetic-zebrafish", None)
    root = tmp_path / "microtubules"
    for sub in ("raw", "gt"):
        (root / sub).mkdir(parents=True)
        from teachdiff.data import write_image

        write_image(root / sub / "fov1.tif", np.zeros((64, 64), np.uint8))
    assert choose_dataset("microtubules") == ("microtubules", None)


def _rows():
    rng = np.random.default_rng(0)
    rows = []
    for method, offset in (("raw", 10.0), ("ddpm", 4.0), ("ddpm-avg", 3.0)):
        for i in range(5):
            rows.append({"method": method, "image": i, "mae": offset + rng.uniform(), "psnr": 30 - offset,
                         "ms_ssim": 0.8, "lpips": math.nan, "nrmse": 0.3, "pearson": 0.9, "resolution": 100.0,
                         "resolution_ratio": 1.1})
    return rows


def test_comparison_markdown_shows_ours_paper_and_difference():
    rows = _rows()
    table = _median_table(rows, "synthetic-microtubules")
    text = comparison_markdown(table, ["mae", "lpips"])
    lines = text.strip().splitlines()
    assert len(lines) == 2 + 3
    avg = next(r for r in table if r["method"] == "ddpm-avg")
    median = np.median([r["mae"] for r in rows if r["method"] == "ddpm-avg"])
    expected = f"{median:.2f} / 3.99 / {median - 3.99:.2f}"  # Table 2: DDPM-avg MAE 3.99
    assert f"| DDPM-avg | {expected} | n/a / 0.19 / n/a |" in lines
    assert avg["mae"] == pytest.approx(median)


def test_dataset_card_and_figures():
    card = dataset_card("zebrafish")
    assert "teachdiff data download zebrafish" in card and "3600 / 200 / 200" in card and "365 nm" in card
    rows = _rows()
    fig = plot_boxplots(rows, "test")
    assert len(fig.axes) == 3  # LPIPS is n/a in every row: no panel
    result = {"predictions": {"raw": np.zeros((2, 16, 16)), "ddpm": np.full((2, 16, 16), 5.0)},
              "gt": np.full((2, 16, 16), 3.0)}
    fig = plot_examples(result, ["raw", "ddpm"])
    titles = [ax.get_title() for ax in fig.axes]
    assert "|error|, MAE 3.0" in titles and "|error|, MAE 2.0" in titles and "GT" in titles
    with pytest.raises(ValueError, match="no predictions for"):
        plot_examples(result, ["care"])
