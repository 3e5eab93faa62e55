"""The benchmark's one training protocol (teachdiff.training.protocol) and the zoo builder that follows it."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from teachdiff.training import protocol
from teachdiff.data import make_datasets

BUILDER = Path(__file__).resolve().parents[1] / "benchmarks" / "zoo" / "build_quick_zoo.py"
MODELS = ("ddpm", "care", "n2v", "pix2pix", "rcan")


@pytest.fixture(scope="module")
def builder():
    spec = importlib.util.spec_from_file_location("build_quick_zoo", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _curve(steps, maes):
    return [{"step": s, "val_mae": m} for s, m in zip(steps, maes)]


def test_every_model_sees_the_same_number_of_training_images():
    seen = {}
    for model in MODELS:
        cfg, _, marks = protocol.recipe("synthetic-microtubules", model)
        seen[model] = cfg.epochs * cfg.steps_per_epoch * cfg.batch_size
        assert cfg.random_crops and cfg.ema_decay == protocol.EMA_DECAY
        assert marks[-1] == cfg.epochs * cfg.steps_per_epoch and len(marks) == protocol.MARKS
    assert set(seen.values()) == {protocol.IMAGES}, seen
    sweep, _, _ = protocol.recipe("synthetic-microtubules", "care", lr=1e-3, fraction=protocol.SWEEP_FRACTION)
    assert protocol.images_seen(sweep) == protocol.IMAGES * protocol.SWEEP_FRACTION and sweep.lr == 1e-3


def test_plateau_measures_the_gain_of_the_last_quarter():
    steps = [250, 500, 750, 1000, 1250, 1500, 1750, 2000]
    # mitochondria UNet-RCAN's recorded curve: best 5.95 up to step 1500, then 5.65
    flat, gain = protocol.plateau(_curve(steps, [9.51, 10.22, 6.44, 6.08, 5.95, 6.04, 5.65, 5.65]))
    assert not flat and gain == pytest.approx((5.95 - 5.65) / 5.95)
    flat, gain = protocol.plateau(_curve(steps, [9.0, 7.0, 6.0, 5.5, 5.3, 5.2, 5.19, 5.18]))
    assert flat and gain == pytest.approx((5.2 - 5.18) / 5.2)
    # never below its first point: it has not learned, so it has not flattened
    assert not protocol.plateau(_curve(steps, [5.0, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0]))[0]


def test_a_best_checkpoint_in_the_first_quarter_is_flagged():
    # pix2pix zebrafish of the old zoo: released at step 200 of 2000
    history = [{"step": s, "best": s == 200} for s in range(100, 2001, 100)]
    curve = _curve(range(250, 2001, 250), [6.0, 6.3, 6.4, 6.5, 6.4, 6.6, 6.5, 6.5])
    assert protocol.best_step(history, "pix2pix") == 200 and protocol.best_too_early(history, "pix2pix")
    flags = protocol.run_flags(curve, history, "pix2pix")
    assert any("first quarter" in f for f in flags) and any("never went below" in f for f in flags)
    later = [{"step": s, "best": s in (300, 1800)} for s in range(100, 2001, 100)]
    assert not protocol.best_too_early(later, "care")
    assert protocol.run_flags(_curve(range(250, 2001, 250), [9, 7, 6, 5.5, 5.3, 5.2, 5.2, 5.2]), later, "care") == []
    # Noise2Void is released with its last weights: never "early"
    assert not protocol.best_too_early([{"step": 100, "best": True}, {"step": 2000}], "n2v")


def test_the_sweep_picks_the_rate_with_the_lowest_validation_value():
    sweep = {1e-3: _curve([1, 2], [7.0, 6.0]), 3e-3: _curve([1, 2], [6.5, 5.9]), 3e-4: _curve([1, 2], [8, 7])}
    assert protocol.choose_lr(sweep, "care") == 3e-3
    n2v = {1e-3: [{"step": 1, "val_loss_self": 0.02, "val_mae": 1.0}],
           3e-3: [{"step": 1, "val_loss_self": 0.01, "val_mae": 9.0}]}
    assert protocol.choose_lr(n2v, "n2v") == 3e-3  # its own loss, never the ground truth


def test_random_crops_are_seeded_fresh_and_aligned():
    sets = make_datasets("synthetic-zebrafish", quick=True, augmentation=False, random_crops=True)
    train, val = sets["train"], sets["val"]
    assert train.random_crops and not val.random_crops
    a, b, again = train[(0, 11)], train[(0, 12)], train[(0, 11)]
    assert np.array_equal(a["x"], again["x"]) and not np.array_equal(a["x"], b["x"])
    k, z = (int(v) for v in train.patches.index[0][:2])
    x_full, y_full = (arr[z] for arr in train.patches.pairs[k].load(train.patches._cache))
    r, c = (int(v) for v in a["name"].split("@r")[1].split("c"))
    p = train.patches.patch_size
    train.random_crops = False  # the grid patch of the same index names the same image
    assert train[0]["name"] == a["name"].split("@")[0]
    from teachdiff.core.scale import to_model_range

    np.testing.assert_allclose(a["x"][0], to_model_range(x_full[r:r + p, c:c + p], train.bit_depth), atol=1e-6)
    np.testing.assert_allclose(a["y"][0], to_model_range(y_full[r:r + p, c:c + p], train.bit_depth), atol=1e-6)


@pytest.mark.slow
def test_the_builder_sweeps_once_and_records_the_protocol(builder, tmp_path, monkeypatch):
    monkeypatch.setenv("TEACHDIFF_QUICK", "1")
    run = builder.train_model("synthetic-zebrafish", "n2v", tmp_path, progress=False, scale=0.01)
    record = json.loads((run / "protocol.json").read_text())
    assert record["sweep_dataset"] == builder.SWEEP_DATASET and record["sweep_key"] == "val_loss_self"
    assert len(record["lr_sweep"]) == len(protocol.LR_FACTORS) and record["lr"] in {float(k) for k in record["lr_sweep"]}
    sweeps = sorted(p.name for p in builder.sweep_folder(tmp_path, builder.SWEEP_DATASET, "n2v").iterdir())
    assert len(sweeps) == 3
    curve = json.loads((run / "curve.json").read_text())
    assert all(p["val_loss_self"] > 0 for p in curve)  # a masked MSE on the validation inputs
    mtime = (run / "last.pt").stat().st_mtime  # resuming the finished protocol trains nothing more
    builder.train_model("synthetic-zebrafish", "n2v", tmp_path, progress=False, scale=0.01)
    assert (run / "last.pt").stat().st_mtime == mtime
