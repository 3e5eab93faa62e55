"""``teachdiff data list | check | simulate`` through the real command-line entry point."""

from teachdiff.cli import main
from teachdiff.data import DATASETS


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
    assert main(["data", "simulate", str(tmp_path / "toy"), "--case", "mitochondria", "--n-fov", "2", "--size", "64"]) == 1
    assert "already exist" in capsys.readouterr().err


def test_check_reports_problems_with_nonzero_exit(tmp_path, capsys):
    main(["data", "simulate", str(tmp_path / "toy"), "--case", "synapses", "--n-fov", "4", "--size", "64"])
    capsys.readouterr()
    # synapses are expected to be 16-bit; the simulated files are 8-bit: a problem, not a crash.
    assert main(["data", "check", str(tmp_path / "toy"), "--dataset", "synapses", "--patch-size", "32"]) == 1
    assert "expected to be 16-bit" in capsys.readouterr().out
    assert main(["data", "check", str(tmp_path / "missing"), "--dataset", "synapses"]) == 1
    assert "not a folder" in capsys.readouterr().err
