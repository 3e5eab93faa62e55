"""The bundled real dataset ``hagen``: offline, small, and split so that no test pixel is trained on."""

import fnmatch
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tifffile

from teachdiff.data import get_dataset_info, make_datasets
from teachdiff.cli.data import _list

INFO = get_dataset_info("hagen")
ROOT = INFO.bundled_root
SPLITS = ("train", "val", "test")


def _regions(split):
    return {p.stem: (tifffile.imread(p), tifffile.imread(ROOT / split / "gt" / p.name))
            for p in sorted((ROOT / split / "raw").glob("*.tif"))}


def test_the_bundle_is_small_and_declared_as_package_data():
    files = [p for p in ROOT.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 10 * 2**20
    patterns = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["teachdiff"]
    package = ROOT.parents[2]  # src/teachdiff
    for path in files:
        relative = str(path.relative_to(package))
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), f"{relative} would not be installed"
    assert "CC0" in (ROOT / "README.md").read_text() and "CC0" in INFO.licence


def test_no_test_or_validation_pixel_lies_in_a_training_region():
    regions = {split: _regions(split) for split in SPLITS}
    assert set(regions["test"]) >= set(regions["train"]) == set(regions["val"])
    assert "nucleus" in regions["test"] and "nucleus" not in regions["train"]  # a structure never trained on
    for name, (train_x, train_y) in regions["train"].items():
        train_rows = {row.tobytes() for row in train_y}
        for split in ("val", "test"):
            x, y = regions[split][name]
            assert x.shape[1] == train_x.shape[1]
            # independent of how the regions were cut: no row of the held-out target occurs in training
            shared = sum(row.tobytes() in train_rows for row in y if row.std() > 0)
            assert shared == 0, f"{name}: {shared} rows of {split} also in train"
            assert not np.array_equal(x[:8], train_x[-8:])


def test_each_pair_is_the_same_field_at_two_noise_levels():
    for name, (x, y) in _regions("test").items():
        assert x.dtype == np.uint8 and x.shape == y.shape
        r = np.corrcoef(x.ravel().astype(float), y.ravel().astype(float))[0, 1]
        assert r > 0.5, f"{name}: low/high correlate at r = {r:.2f}"


@pytest.mark.parametrize("quick, patch", [(True, 64), (False, 256)])
def test_the_bundle_loads_offline_in_both_modes(quick, patch, monkeypatch, tmp_path):
    monkeypatch.setenv("TEACHDIFF_DATA", str(tmp_path / "empty"))  # nothing downloaded
    sets = make_datasets("hagen", quick=quick, patch_size=patch, progress=False)
    assert all(len(sets[s]) > 0 for s in SPLITS)
    item = sets["train"][0]
    assert item["x"].shape == (1, patch, patch) and -1 <= float(item["x"].min()) <= float(item["x"].max()) <= 1


def test_data_list_shows_the_bundled_dataset_and_its_licence(capsys):
    _list(None)
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("hagen "))
    assert "bundled" in line
    assert "hagen: CC0 1.0" in out and "Bundled with teachdiff, offline: hagen" in out
