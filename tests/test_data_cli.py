"""``teachdiff data list | check | simulate`` through the real command-line entry point."""

import pytest

from teachdiff.cli.main import main
from teachdiff.data import CASES, DATASETS


def test_list_shows_every_dataset(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TEACHDIFF_DATA", str(tmp_path))
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in DATASETS:
        assert name in out
    assert "3600/200/200" in out and str(tmp_path) in out


def test_simulate_then_check_reports_splits_and_patches(tmp_path, capsys):
    assert main(["data", "simulate", str(tmp_path / "toy"), "--case", "mitochondria", "--n-fov", "10", "--size", "128"]) == 0
    capsys.readouterr()
    assert main(["data", "check", str(tmp_path / "toy"), "--dataset", "mitochondria", "--patch-size", "64"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] in (["train"], ["val"], ["test"])}
    # 10 FOVs in the Table S1 proportions (85/5/10 %): 8 / 1 / 1 FOVs, each 128^2 = 4 patches of 64^2.
    assert [rows[s][1] for s in ("train", "val", "test")] == ["8", "1", "1"]
    assert [rows[s][5] for s in ("train", "val", "test")] == ["32", "4", "4"]
    assert "bit depth   8" in out and "problems    none" in out
    # A second simulate into the same folder refuses and changes nothing.
    assert main(["data", "simulate", str(tmp_path / "toy"), "--case", "mitochondria", "--n-fov", "3", "--size", "64"]) == 1
    assert "already exist" in capsys.readouterr().err


def test_check_warns_about_what_differs_from_the_paper_and_fails_only_on_problems(tmp_path, capsys):
    main(["data", "simulate", str(tmp_path / "toy"), "--case", "synapses", "--n-fov", "4", "--size", "64",
          "--bit-depth", "8"])
    capsys.readouterr()
    # synapses are expected to be 16-bit; 8-bit files are usable (scaled from 8 bit): a warning, exit 0.
    assert main(["data", "check", str(tmp_path / "toy"), "--dataset", "synapses", "--patch-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "warnings (1)" in out and "expected to be 16-bit" in out and "problems    none" in out
    # A truncated file is a real problem: exit 1.
    broken = tmp_path / "toy" / "gt" / "fov_001.tif"
    broken.write_bytes(broken.read_bytes()[:-1000])
    assert main(["data", "check", str(tmp_path / "toy"), "--dataset", "synapses", "--patch-size", "32"]) == 1
    out = capsys.readouterr().out
    assert "problems (" in out and "failed to read" in out
    assert main(["data", "check", str(tmp_path / "missing"), "--dataset", "synapses"]) == 1
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("case", CASES)
def test_simulated_folder_of_every_case_passes_check_for_its_dataset(case, tmp_path, capsys):
    out = tmp_path / case
    assert main(["data", "simulate", str(out), "--case", case, "--n-fov", "3", "--size", "64", "--captures", "2"]) == 0
    assert f"--dataset {case}" in capsys.readouterr().out
    assert main(["data", "check", str(out), "--dataset", case, "--patch-size", "32"]) == 0
    report = capsys.readouterr().out
    assert "problems    none" in report
    rows = {line.split()[0]: line.split() for line in report.splitlines() if line.split()[:1] in (["train"], ["val"], ["test"])}
    assert all(int(rows[s][5]) > 0 for s in ("train", "val", "test"))  # every split has patches
    if case == "zebrafish":  # FMD's layout: FOV 19 is the test FOV, 20 the validation FOV, 2 captures each
        assert "fixed split test=['19'], val=['20']" in report
        assert sorted(p.name for p in (out / "raw").iterdir()) == ["1", "19", "20"]
        assert [rows[s][2] for s in ("train", "val", "test")] == ["2", "2", "2"]


def test_folder_not_of_the_papers_size_is_a_warning_not_a_failure(tmp_path, capsys):
    out = tmp_path / "zf"
    assert main(["data", "simulate", str(out), "--case", "zebrafish", "--n-fov", "3", "--size", "256",
                 "--captures", "1"]) == 0
    capsys.readouterr()
    assert main(["data", "check", str(out), "--dataset", "zebrafish", "--no-decode"]) == 0  # paper's 256^2 patches
    report = capsys.readouterr().out
    assert "differ from the paper's Table S1 (3600, 200, 200)" in report and "problems    none" in report


def test_simulated_zebrafish_folder_trains_as_the_zebrafish_dataset(tmp_path, capsys):
    data = tmp_path / "zf"
    assert main(["data", "simulate", str(data), "--case", "zebrafish", "--n-fov", "3", "--size", "128",
                 "--captures", "2"]) == 0
    run = tmp_path / "run"
    assert main(["train", "--dataset", "zebrafish", "--data-root", str(data), "--max-steps", "1", "--batch-size", "2",
                 "--out", str(run), "--no-progress"]) == 0
    assert (run / "last.pt").is_file()


# ----------------------------------------------------------------------------------------------
# Issue 27: duplicated targets mean one field of view, whatever the file names say
# ----------------------------------------------------------------------------------------------


def _flat_folder_with_one_fov_four_times(root, near: bool):
    """FMD-style captures saved flat: raw/capK.png + gt/capK.png of ONE field (the same target, or
    with ``near`` averages of 6 different captures of it), plus four other fields of their own. 256²:
    on much smaller images the noise of a 6-capture average hides the match."""
    import numpy as np

    from teachdiff.data.io import write_image
    from teachdiff.data.synthetic import simulate_captures, simulate_pair

    field = simulate_pair("zebrafish", 256, seed=100)
    captures = simulate_captures(field, 24, seed=1)
    for k in range(4):
        target = np.mean(captures[6 * k:6 * k + 6], axis=0).round().astype(np.uint8) if near else field.y
        write_image(root / "raw" / f"cap{k}.png", captures[k])
        write_image(root / "gt" / f"cap{k}.png", target)
    for k in range(4):
        other = simulate_pair("zebrafish", 256, seed=10 + k)
        write_image(root / "raw" / f"other{k}.png", other.x)
        write_image(root / "gt" / f"other{k}.png", other.y)


@pytest.mark.parametrize("near", [False, True])
def test_data_check_groups_fovs_with_identical_targets_and_says_so(tmp_path, capsys, near):
    _flat_folder_with_one_fov_four_times(tmp_path, near)
    assert main(["data", "check", str(tmp_path), "--patch-size", "64", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "4 FOVs with duplicated targets grouped into 1" in out
    assert "cap0, cap1, cap2, cap3 -> FOV 'cap0'" in out and "raw/<fov>/<capture>.tif" in out
    from teachdiff.data.folder import FolderConfig, prepare_folder

    with pytest.warns(UserWarning, match="identical or near-identical targets"):  # training says so too
        sets = prepare_folder(FolderConfig(str(tmp_path)), patch_size=64, progress=False)
    holding = [split for split, ps in sets.items() if any(p.name.startswith("cap") for p in ps.pairs)]
    assert len(holding) == 1 and len([p for p in sets[holding[0]].pairs if p.name.startswith("cap")]) == 4
    assert sets["train"].merged_fovs == [["cap0", "cap1", "cap2", "cap3"]]
    assert sum(len(ps.fovs) for ps in sets.values()) == 5  # the four other fields stay apart


def test_distinct_fields_with_similar_content_are_not_grouped(tmp_path):
    """Different fields of one kind of sample, even under a shared illumination falloff, do not
    correlate like one field's targets do: nothing is merged."""
    import numpy as np

    from teachdiff.data.io import write_image
    from teachdiff.data.duplicates import duplicate_target_groups
    from teachdiff.data.pairs import find_pairs
    from teachdiff.data.synthetic import simulate_pair

    yy, xx = np.mgrid[:128, :128]
    falloff = np.exp(-((yy - 64) ** 2 + (xx - 64) ** 2) / (2 * 40**2))
    for k in range(6):
        pair = simulate_pair("zebrafish", 128, seed=20 + k)
        write_image(tmp_path / "raw" / f"f{k}.png", pair.x)
        write_image(tmp_path / "gt" / f"f{k}.png", np.clip(pair.y * falloff * 2 + 10, 0, 255).astype(np.uint8))
    assert duplicate_target_groups(find_pairs(tmp_path)[None]) == []
