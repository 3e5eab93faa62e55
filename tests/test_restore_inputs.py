"""``teachdiff restore`` checks every input file before restoring the first (issue 16, item 3)."""

import types

import numpy as np
import pytest
import tifffile

from teachdiff.cli.main import main
from teachdiff.data.io import read_header, read_image
from teachdiff.cli.restore import restore_files


@pytest.fixture
def good_and_broken(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    good = folder / "a_good.tif"
    tifffile.imwrite(good, np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))
    whole = folder / "whole.tif"
    tifffile.imwrite(whole, np.zeros((256, 256), np.uint16))
    truncated = folder / "b_truncated.tif"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # the header survives
    whole.unlink()
    empty = folder / "c_empty.tif"
    empty.write_bytes(b"")
    return good, truncated, empty


def test_truncated_and_empty_tiffs_give_errors_that_name_the_file(good_and_broken):
    _, truncated, empty = good_and_broken
    read_header(truncated)  # a truncated file has an intact header: only decoding finds the damage
    with pytest.raises(ValueError, match=r"b_truncated\.tif: cannot be read.*truncated"):
        read_image(truncated)
    for reader in (read_header, read_image):
        with pytest.raises(ValueError, match=r"c_empty\.tif: is empty \(0 bytes\)"):
            reader(empty)


def test_restore_checks_all_inputs_before_restoring_the_first(good_and_broken, tmp_path):
    good, truncated, empty = good_and_broken
    calls = []

    def restore(x):
        calls.append(x.shape)
        return x

    method = types.SimpleNamespace(kind="care", restore=restore)
    for broken in (truncated, empty):
        with pytest.raises(ValueError, match=broken.name):
            restore_files(method, [good, broken], tmp_path / "out", tile=None, progress=False)
        assert calls == [] and not list((tmp_path / "out").glob("a_good_*"))  # the good file was not restored


def test_restore_cli_names_the_truncated_file_before_loading_the_checkpoint(good_and_broken, tmp_path, capsys):
    good, truncated, _ = good_and_broken
    argv = ["restore", "--checkpoint", str(tmp_path / "not-needed-yet.pt"), str(good), str(truncated),
            "--out", str(tmp_path / "out"), "--device", "cpu"]
    assert main(argv) == 1
    assert "b_truncated.tif" in capsys.readouterr().err
