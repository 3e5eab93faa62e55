"""What a model was trained on, and whether an image looks like it (issue 27, item 1).

Every zoo entry and every checkpoint carries a training data card (teachdiff.store.datacard);
`weights list` shows it, `restore` warns when an input lies far outside the training inputs'
intensities, and `weights suggest` ranks the zoo's models for given images.
"""

import warnings

import numpy as np
import pytest
import tifffile
import torch

from teachdiff.store import datacard, zoo
from teachdiff.store.suggest import suggest
from teachdiff.cli.main import main
from teachdiff.data import get_dataset_info, make_datasets, to_model_range
from teachdiff.data.registry import CASES
from teachdiff.data.synthetic import microscope_config, simulate_pair

ZOO_CARE = "synthetic-microtubules-care-quick"


def _widefield_like(case, seed):
    """A simulated widefield capture of ``case``'s structures: a wide PSF, many photons, a high
    out-of-focus background and camera offset, as a widefield image differs from a STED one."""
    config = microscope_config(case, psf_sigma_x=4.0, dose_x=100, background=0.6, offset=10)
    return simulate_pair(case, 256, seed, config=config).x


def _card(case):
    return zoo.get(f"synthetic-{case}-care-quick").data_card


def test_every_zoo_entry_states_what_it_was_trained_on():
    for entry in zoo.entries():
        card, info = entry.data_card, get_dataset_info(entry.dataset)
        assert card["dataset"] == entry.dataset
        assert card["modality"] == info.imaging and ("STED" in info.imaging or "confocal" in info.imaging)
        assert card["relation"] == info.modality and "->" in card["relation"]
        assert card["pixel_size_nm"] == info.pixel_size_nm and card["pixel_size_kind"] == info.pixel_size_kind
        assert info.pixel_size_kind == ("nominal" if info.is_synthetic else "stated")
        assert card["patch_size"] == 64 and card["input_patches"] == 64
        p = card["input_percentiles"]
        assert -1 <= p["p1"] <= p["p50"] <= p["p99"] <= p["p99.9"] <= 1


def test_zoo_card_statistics_are_the_training_inputs_percentiles():
    """Checked against numpy on the same training split, made again without augmentation (the card
    reads its items unaugmented, as new images come)."""
    for case in ("microtubules", "zebrafish"):
        train = make_datasets(f"synthetic-{case}", patch_size=64, quick=True, seed=0, augmentation=False)["train"]
        picks = np.unique(np.linspace(0, len(train) - 1, 64).round().astype(int))
        pooled = np.concatenate([train[int(i)]["x"].numpy().ravel() for i in picks])
        for key, q in (("p50", 50), ("p99", 99), ("p99.9", 99.9)):
            assert _card(case)["input_percentiles"][key] == pytest.approx(np.percentile(pooled, q), abs=1e-4)


def test_weights_list_shows_each_models_training_data_readably(capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    for entry in zoo.entries():
        assert entry.name in out
    for what in ("modality", "input->target", "pixel size", "25 nm (nominal)", "scaling", "inputs", "p99.9",
                 "simulated STED", "single confocal capture -> average of 50 captures", "weights suggest"):
        assert what in out, what


def test_card_building_leaves_the_global_random_state_alone():
    """The trainer makes the card between building the network and the first step: reading
    augmented items must not change the random numbers training draws next."""
    train = make_datasets("synthetic-synapses", patch_size=64, quick=True, seed=0)["train"]
    torch.manual_seed(5)
    np.random.seed(5)
    expected = torch.rand(3), np.random.rand(3)
    torch.manual_seed(5)
    np.random.seed(5)
    datacard.from_training_set("synthetic-synapses", train, 64, n=16)
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])


def test_trainer_writes_the_training_data_card_into_its_checkpoints(tmp_path):
    from teachdiff.training.config import TrainConfig
    from teachdiff.store.checkpoint import load_checkpoint
    from teachdiff.store.resolve import load_method
    from teachdiff.training.loop import train

    cfg = TrainConfig(dataset="synthetic-microtubules", model="care", epochs=1, steps_per_epoch=1, val_images=1,
                      sample_every=0)
    train(cfg, out_dir=tmp_path / "run", progress=False)
    card = load_checkpoint(tmp_path / "run" / "best.pt")["data_card"]
    assert card["dataset"] == "synthetic-microtubules" and card["modality"] == "simulated STED (fixed cells)"
    assert card["input_percentiles"]["p50"] == pytest.approx(_card("microtubules")["input_percentiles"]["p50"],
                                                             abs=1e-3)
    assert load_method(tmp_path / "run").data_card == card
    # The release path gives the same card to a checkpoint of any age, measured again if need be.
    payload = load_checkpoint(tmp_path / "run" / "best.pt")
    del payload["data_card"]
    assert datacard.for_checkpoint(payload)["input_percentiles"] == card["input_percentiles"]


def test_in_distribution_images_are_near_and_far_ones_far_for_every_zoo_card():
    """The calibration of FAR_OUTSIDE: new simulations of each dataset (other seeds than training,
    crops of 64² and whole 256² fields) stay within; 7x brighter copies and widefield-like captures
    do not, and neither does a confocal zebrafish image for a STED microtubules model."""
    for case in CASES:
        card = _card(case)
        for seed in (7001, 7002):
            image = simulate_pair(case, 256, seed).x
            for view in (image, image[100:164, 30:94]):
                assert datacard.compare(card, to_model_range(view, 8)).distance < datacard.FAR_OUTSIDE
            bright = np.clip(image.astype(np.float64) * 7, 0, 255)
            assert datacard.compare(card, to_model_range(bright, 8)).far
            assert datacard.compare(card, to_model_range(_widefield_like(case, seed), 8)).far
    zebrafish = simulate_pair("zebrafish", 256, 7003).x
    assert datacard.compare(_card("microtubules"), to_model_range(zebrafish, 8)).far


def test_restore_warns_when_input_far_outside_training_statistics(tmp_path, capsys):
    good = simulate_pair("microtubules", 128, 7004).x
    inputs = {"good": good, "bright": np.clip(good.astype(np.uint16) * 7, 0, 255).astype(np.uint8),
              "widefield": _widefield_like("microtubules", 7005)[:128, :128]}
    for name, image in inputs.items():
        tifffile.imwrite(tmp_path / f"{name}.tif", image)
    argv = ["restore", "--model", ZOO_CARE, "--out", str(tmp_path / "out"), "--no-progress", "--device", "cpu"]
    warnings.simplefilter("always")
    assert main(argv + [str(tmp_path / "good.tif")]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(argv + [str(tmp_path / "bright.tif"), str(tmp_path / "widefield.tif")]) == 0
    err = capsys.readouterr().err
    for name in ("bright", "widefield"):
        line = next(line for line in err.splitlines() if f"{name}.tif lies far outside" in line)
        assert ZOO_CARE in line and "synthetic-microtubules" in line and "training range brighter" in line
        assert "teachdiff weights suggest" in line


def test_restore_of_a_checkpoint_without_statistics_does_not_guess(tmp_path):
    """A checkpoint from before cards: the registry's facts, no statistics, so no comparison."""
    from teachdiff.store.datacard import stored

    card = stored({"train_config": {"dataset": "synthetic-zebrafish", "patch_size": 64}})
    assert card["modality"] == "simulated confocal" and card["input_percentiles"] is None
    assert datacard.compare(card, np.zeros((8, 8))) is None
    assert stored({}) is None


def test_weights_suggest_ranks_the_model_trained_on_similar_images_first(tmp_path, capsys, monkeypatch):
    paths = {}
    for case in ("zebrafish", "microtubules"):
        paths[case] = [tmp_path / f"{case}_{i}.tif" for i in range(2)]
        for i, path in enumerate(paths[case]):
            tifffile.imwrite(path, simulate_pair(case, 128, 7100 + i).x)
    for case in ("zebrafish", "microtubules"):
        ranked = suggest(paths[case])
        assert ranked[0].card["dataset"] == f"synthetic-{case}" and ranked[0].within == 2
        assert [e.model for e in ranked[0].models][:1] == [min(ranked[0].models, key=zoo.reported_mae).model]
        assert main(["weights", "suggest", *map(str, paths[case])]) == 0
        out = capsys.readouterr().out
        assert f"1. synthetic-{case}: distance" in out and f"Suggested: synthetic-{case}-" in out
        assert "largest difference" in out and "modality" in out
    # The real captures of 'hagen' span the whole 8-bit range, so no 8-bit image lies far outside
    # them: the refusal is checked against the synthetic models alone.
    synthetic = [e for e in zoo.entries() if get_dataset_info(e.dataset).is_synthetic]
    monkeypatch.setattr(zoo, "entries", lambda: synthetic)
    bright = tmp_path / "bright.tif"
    tifffile.imwrite(bright, np.full((128, 128), 250, dtype=np.uint8))
    assert main(["weights", "suggest", str(bright)]) == 0
    assert "None of the zoo's models was trained on intensities like these" in capsys.readouterr().out


def test_readme_and_the_own_images_chapter_mention_weights_suggest():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert "teachdiff weights suggest" in (root / "README.md").read_text()
    assert "teachdiff weights suggest" in (root / "notebooks" / "13_own_images.md").read_text()
