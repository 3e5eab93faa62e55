"""Bad command-line input gets a one-line message, never a traceback or a misleading error (issue 16)."""

import numpy as np
import pytest
import torch

import teachdiff
from teachdiff.cli.main import main
from teachdiff.data import write_image
from teachdiff.methods.ddpm import DiffusionConfig, DiffusionMethod
from teachdiff.store.resolve import load_method
from teachdiff.store.checkpoint import save_checkpoint
from teachdiff.core.unet import UNetConfig

# (command line without the bad flag, flag): every numeric flag of every command.
TRAIN = ["train", "--dataset", "synthetic-microtubules", "--out", "unused"]
RESTORE = ["restore", "in.tif", "--checkpoint", "best.pt", "--out", "unused"]
BAD_VALUES = [
    (TRAIN, "--batch-size", ["0", "-2", "1.5", "eight"]),
    (TRAIN, "--epochs", ["0"]),
    (TRAIN, "--steps-per-epoch", ["0"]),
    (TRAIN, "--patch-size", ["0"]),
    (TRAIN, "--max-steps", ["0"]),
    (TRAIN, "--max-minutes", ["-1", "0", "nan", "inf"]),
    (TRAIN, "--lr", ["0", "-1e-4"]),
    (TRAIN, "--ema", ["0", "1", "1.5"]),
    (TRAIN, "--num-workers", ["-1"]),
    (TRAIN, "--seed", ["-1"]),
    (RESTORE, "--samples", ["0"]),
    (RESTORE, "--steps", ["0"]),
    (RESTORE, "--tile", ["-1"]),
    (RESTORE, "--overlap", ["-8"]),
    (RESTORE, "--batch-size", ["0"]),
    (RESTORE, "--seed", ["-3"]),
    (RESTORE, "--interval", ["0", "1", "90"]),
    (RESTORE, "--eta", ["-0.5", "2"]),
    (["data", "check", "folder", "--dataset", "zebrafish"], "--patch-size", ["0"]),
    (["data", "simulate", "toy", "--case", "zebrafish"], "--n-fov", ["0"]),
    (["data", "simulate", "toy", "--case", "zebrafish"], "--size", ["-64"]),
    (["data", "simulate", "toy", "--case", "zebrafish"], "--captures", ["0"]),
    (["evaluate", "--pred", "p", "--gt", "g", "--out", "s.csv"], "--pixel-size", ["0"]),
    (["reproduce", "zebrafish", "--out", "unused"], "--samples", ["0"]),
    (["reproduce", "zebrafish", "--out", "unused"], "--test-images", ["0"]),
    (["reproduce", "zebrafish", "--out", "unused"], "--steps", ["0"]),
    (["reproduce", "zebrafish", "--out", "unused"], "--eta", ["1.5"]),
]


@pytest.mark.parametrize("argv, flag, values", BAD_VALUES, ids=[f"{a[0]}{f}" for a, f, _ in BAD_VALUES])
def test_numeric_flags_are_rejected_at_parsing_with_the_flag_named(argv, flag, values, tmp_path, monkeypatch,
                                                                   capsys):
    monkeypatch.chdir(tmp_path)  # nothing may be written: parsing fails before any work
    for value in values:
        with pytest.raises(SystemExit) as exit_info:
            main(argv + [f"{flag}={value}"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {flag}: must be" in err and repr(value) in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_good_numeric_values_still_parse():
    from teachdiff.cli.main import build_parser

    args = build_parser().parse_args(TRAIN + ["--batch-size", "2", "--max-minutes", "0.5", "--ema", "0.999",
                                              "--num-workers", "0", "--lr", "1e-3"])
    assert (args.batch_size, args.max_minutes, args.ema, args.num_workers, args.lr) == (2, 0.5, 0.999, 0, 1e-3)
    args = build_parser().parse_args(RESTORE + ["--tile", "0", "--overlap", "0"])
    assert (args.tile, args.overlap) == (0, 0)


def test_unknown_device_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown device 'tpu'.*cpu"):
        teachdiff.device("tpu")
    assert teachdiff.device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_says_cuda_is_not_available(tmp_path, capsys):
    with pytest.raises(ValueError, match="CUDA is not available"):
        teachdiff.device("cuda")
    # the API too: not "truncated or corrupt"
    ckpt = save_checkpoint(tmp_path / "best.pt", DiffusionMethod(DiffusionConfig(unet=UNetConfig.tiny(), T=4)))
    with pytest.raises(ValueError, match="CUDA is not available"):
        load_method(ckpt, map_location="cuda")
    image = write_image(tmp_path / "in.png", np.zeros((16, 16), np.uint8))
    for device, message in (("cuda", "CUDA is not available"), ("tpu", "unknown device 'tpu'")):
        assert main(["restore", str(image), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"),
                     "--device", device]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "corrupt" not in err


def test_simulate_into_an_existing_file_is_a_clear_error(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    assert main(["data", "simulate", str(target), "--case", "zebrafish", "--n-fov", "3", "--size", "32"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("teachdiff data simulate: error:") and "is a file" in err and "Traceback" not in err
    assert target.read_text() == "keep me"


def test_restore_checkpoint_may_be_a_run_folder(tmp_path, capsys):
    image = write_image(tmp_path / "in.png", np.full((16, 16), 40, np.uint8))
    run = tmp_path / "run"
    run.mkdir()
    argv = ["restore", str(image), "--checkpoint", str(run), "--samples", "1", "--sampler", "ddim", "--steps", "1",
            "--tile", "0", "--out", str(tmp_path / "out"), "--no-progress", "--device", "cpu"]
    assert main(argv) == 1  # an empty folder: say what is missing
    assert "folder without best.pt" in capsys.readouterr().err
    save_checkpoint(run / "last.pt", DiffusionMethod(DiffusionConfig(unet=UNetConfig.tiny(), T=4)))
    assert main(argv) == 1
    assert "it holds last.pt" in capsys.readouterr().err
    (run / "last.pt").rename(run / "best.pt")
    assert main(argv) == 0
    assert f"using {run / 'best.pt'}" in capsys.readouterr().out
    assert (tmp_path / "out" / "in_mean.tif").is_file()


# ----------------------------------------------------------------------------------------------
# Issue 27: one style for every command, and a fast --help
# ----------------------------------------------------------------------------------------------

WITH_PROGRESS_BARS = [  # every (sub)command that draws a progress bar
    ["data", "check", "folder"],
    ["data", "download", "zebrafish"],
    TRAIN,
    RESTORE,
    ["evaluate", "--pred", "p", "--gt", "g", "--out", "s.csv"],
    ["reproduce", "zebrafish", "--out", "unused"],
    ["weights", "fetch", "some-model"],
]


@pytest.mark.parametrize("argv", WITH_PROGRESS_BARS, ids=[" ".join(a[:2]) for a in WITH_PROGRESS_BARS])
def test_every_subcommand_with_progress_bars_accepts_no_progress(argv):
    from teachdiff.cli.main import build_parser

    args = build_parser().parse_args(argv + ["--no-progress"])
    assert args.no_progress is True


def test_data_check_no_progress_prints_no_bar(tmp_path, capsys):
    assert main(["data", "simulate", str(tmp_path / "toy"), "--case", "mitochondria", "--n-fov", "3",
                 "--size", "64"]) == 0
    capsys.readouterr()
    argv = ["data", "check", str(tmp_path / "toy"), "--dataset", "mitochondria", "--patch-size", "32"]
    assert main(argv) == 0
    assert "%|" in capsys.readouterr().err  # the decoding bar
    assert main(argv + ["--no-progress"]) == 0
    assert "%|" not in capsys.readouterr().err


@pytest.mark.parametrize("argv, prog", [(["data", "check", "x", "--bogus"], "teachdiff data check"),
                                        (["restore", "in.tif", "--model", "m", "--out", "o", "--fast"],
                                         "teachdiff restore"),
                                        (["weights", "list", "--all"], "teachdiff weights list")])
def test_an_unknown_option_prints_the_usage_of_its_subcommand(argv, prog, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {prog} ") and f"{prog}: error: unrecognized arguments: {argv[-1]}" in err


def test_errors_of_every_subcommand_have_one_prefix_naming_it(tmp_path, capsys):
    cases = [(["data", "check", str(tmp_path / "missing")], "teachdiff data check: error: "),
             (["weights", "path", "no-such-model"], "teachdiff weights path: error: "),
             (["weights", "suggest", str(tmp_path / "missing.tif")], "teachdiff weights suggest: error: "),
             (["evaluate", "--pred", str(tmp_path), "--gt", str(tmp_path / "g"), "--out", str(tmp_path / "s.csv")],
              "teachdiff evaluate: error: ")]
    for argv, prefix in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith(prefix) and "Traceback" not in err, err


@pytest.mark.parametrize("argv", [["--help"], ["weights", "list"], ["restore", "--help"], ["data", "list"]])
def test_help_and_weights_list_do_not_import_torch(argv):
    """`teachdiff --help` and `weights list` answer without importing torch, SciPy or matplotlib (the
    seconds those take are what made them slow); checked in a fresh interpreter."""
    import subprocess
    import sys

    code = ("import sys\nfrom teachdiff.cli.main import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'scipy', 'matplotlib', 'skimage') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True)
    assert run.stdout.strip().splitlines()[-1] == "[]", run.stdout[-300:]
    assert "usage: teachdiff" in run.stdout or "synthetic-microtubules" in run.stdout
