"""Full mode in CI: every chapter's full-mode code path at the paper's sizes (256², the paper's
U-Net and the baselines' paper networks, the colab presets), with capped step and image counts.

The smoke itself lives in benchmarks/gpu/full_mode_smoke.py, where benchmarks/gpu/run.sh also
runs it on a GPU; this test runs the same function on the CPU. It takes minutes on two cores.
"""

import importlib.util
from pathlib import Path

import pytest

SMOKE = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "full_mode_smoke.py"


@pytest.mark.slow
def test_full_mode_smoke_on_cpu(tmp_path, monkeypatch):
    monkeypatch.delenv("TEACHDIFF_QUICK", raising=False)
    monkeypatch.setenv("TEACHDIFF_RUNS", str(tmp_path / "runs"))
    spec = importlib.util.spec_from_file_location("full_mode_smoke", SMOKE)
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    times = smoke.run_smoke("cpu", tmp_path)
    assert len(times) == 7  # chapters 4, 5, 6, 7, the baselines, reproduce, 13: all ran
