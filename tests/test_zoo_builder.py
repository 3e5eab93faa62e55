"""The quick-zoo builder's protocol: a curve that has not flattened is trained again, twice as long.

Runs the builder's own functions (benchmarks/zoo/build_quick_zoo.py) on a smoke-sized recipe
(``scale``: one step per epoch) so that the rule, not the learning, is what is tested.
"""

import importlib.util
import json
from pathlib import Path

import pytest

BUILDER = Path(__file__).resolve().parents[1] / "benchmarks" / "zoo" / "build_quick_zoo.py"


@pytest.fixture(scope="module")
def builder():
    spec = importlib.util.spec_from_file_location("build_quick_zoo", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _curve(steps, maes):
    return [{"step": s, "val_mae": m} for s, m in zip(steps, maes)]


def test_plateau_measures_the_gain_of_the_last_quarter(builder):
    steps = [250, 500, 750, 1000, 1250, 1500, 1750, 2000]
    # mitochondria UNet-RCAN's recorded curve: best 5.95 up to step 1500, then 5.65
    flat, gain = builder.plateau(_curve(steps, [9.51, 10.22, 6.44, 6.08, 5.95, 6.04, 5.65, 5.65]))
    assert not flat and gain == pytest.approx((5.95 - 5.65) / 5.95)
    flat, gain = builder.plateau(_curve(steps, [9.0, 7.0, 6.0, 5.5, 5.3, 5.2, 5.19, 5.18]))
    assert flat and gain == pytest.approx((5.2 - 5.18) / 5.2)
    # never below its first point: it has not learned, so it has not flattened
    assert not builder.plateau(_curve(steps, [5.0, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0]))[0]


@pytest.mark.slow
def test_a_curve_still_falling_is_trained_again_for_twice_the_steps(builder, tmp_path, monkeypatch):
    monkeypatch.setenv("TEACHDIFF_QUICK", "1")
    verdicts = iter([(False, 0.05), (True, 0.0)])  # the first run still improves, the second is flat
    monkeypatch.setattr(builder, "plateau", lambda curve, key="val_mae": next(verdicts))
    run = builder.train_to_plateau("synthetic-zebrafish", "care", tmp_path, progress=False, scale=0.01)

    short = run.with_name("care@20steps")
    assert run == tmp_path / "synthetic-zebrafish" / "models" / "care"
    assert builder.shorter_runs(run) == [short] and builder.run_length(run) == 2
    assert [p["step"] for p in json.loads((short / "curve.json").read_text())][-1] == 20
    assert [p["step"] for p in json.loads((run / "curve.json").read_text())][-1] == 40
    assert "--epochs 40 " in builder.command("synthetic-zebrafish", "care", builder.run_length(run))

    # resuming the finished protocol trains nothing more
    monkeypatch.setattr(builder, "plateau", lambda curve, key="val_mae": (True, 0.0))
    mtime = (run / "last.pt").stat().st_mtime
    assert builder.train_to_plateau("synthetic-zebrafish", "care", tmp_path, False, 0.01) == run
    assert (run / "last.pt").stat().st_mtime == mtime


@pytest.mark.slow
def test_noise2void_is_judged_by_its_own_validation_loss_not_the_ground_truth(builder, tmp_path, monkeypatch):
    monkeypatch.setenv("TEACHDIFF_QUICK", "1")
    keys = []
    monkeypatch.setattr(builder, "plateau", lambda curve, key="val_mae": keys.append(key) or (True, 0.0))
    run = builder.train_to_plateau("synthetic-zebrafish", "n2v", tmp_path, progress=False, scale=0.01)
    assert keys == ["val_loss_self"] and builder.run_length(run) == 1
    curve = json.loads((run / "curve.json").read_text())
    assert all(p["val_loss_self"] > 0 for p in curve)  # a masked MSE on the validation inputs
