"""Loaders: batch format, augmentation really applied and aligned, deterministic iteration."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from teachdiff.data import Augmentation, PairedPatchDataset, make_dataloaders
from teachdiff.data.loaders import EpochSampler
from teachdiff.data.pairs import ArrayPair
from teachdiff.data.prepare import PatchSet


def _identity_pairs(n=6, size=32, seed=0):
    """Pairs whose target equals the input, with no symmetry (so every transform is visible)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        img = rng.integers(0, 256, size=(1, size, size), dtype=np.uint8)
        pairs.append(ArrayPair(x=img, y=img.copy(), fov=f"f{i}", name=f"f{i}", bit_depth=8))
    return PatchSet(pairs, size, 8, split="train")


def _dihedral(img):
    out = []
    for k in range(4):
        r = np.rot90(img, k)
        out += [r, r[:, ::-1]]
    return out


def test_synthetic_quick_batches_have_the_documented_format():
    loaders = make_dataloaders("synthetic-synapses", quick=True, batch_size=8)
    assert {k: len(v.dataset) for k, v in loaders.items()} == {"train": 128, "val": 8, "test": 16}
    batch = next(iter(loaders["train"]))
    assert set(batch) == {"x", "y", "name", "index"}
    for key in ("x", "y"):
        assert batch[key].shape == (8, 1, 64, 64) and batch[key].dtype == torch.float32
        assert batch[key].min() >= -1 and batch[key].max() <= 1
    assert len(batch["name"]) == 8 and all(n.startswith("train_fov") for n in batch["name"])


def test_geometric_augmentation_is_applied_and_identical_on_x_and_y():
    patches = _identity_pairs()
    aug = Augmentation(blur_probability=0.0)
    dataset = PairedPatchDataset(patches, aug)
    sampler = EpochSampler(len(dataset), seed=0)
    changed = 0
    for _ in range(4):  # four epochs
        for item in sampler:
            sample = dataset[item]
            x, y = sample["x"][0].numpy(), sample["y"][0].numpy()
            np.testing.assert_array_equal(x, y)  # the pair stays aligned pixel for pixel
            original = patches.patch(sample["index"])[0].astype(np.float32) * 2 / 255 - 1
            assert any(np.allclose(x, t, atol=1e-6) for t in _dihedral(original))
            changed += not np.allclose(x, original, atol=1e-6)
    assert changed > 12  # 7 of the 8 symmetries change the patch: most items must differ


def test_augmented_training_batch_differs_from_the_plain_batch():
    patches = _identity_pairs(n=8)
    plain = PairedPatchDataset(patches, None)
    augmented = PairedPatchDataset(patches, Augmentation())
    order = list(EpochSampler(8, seed=3))
    xa = torch.stack([augmented[item]["x"] for item in order])
    xp = torch.stack([plain[i]["x"] for i, _ in order])
    assert not torch.equal(xa, xp)


def test_gaussian_filtering_touches_the_input_only():
    patches = _identity_pairs(n=1, size=48)
    aug = Augmentation(flips=False, rotations=False, blur_probability=1.0, blur_sigma=(0.8, 0.8))
    sample = PairedPatchDataset(patches, aug)[(0, 123)]
    original = patches.patch(0)[0].astype(np.float32) * 2 / 255 - 1
    np.testing.assert_allclose(sample["y"][0].numpy(), original, atol=1e-6)
    expected = ndimage.gaussian_filter(original, 0.8, mode="reflect")
    np.testing.assert_allclose(sample["x"][0].numpy(), expected, atol=1e-6)


def test_iteration_is_deterministic_per_seed_and_epoch_and_resumable():
    def epochs(loader, n):
        return [torch.cat([b["x"] for b in loader]) for _ in range(n)]

    a = make_dataloaders("synthetic-microtubules", quick=True, seed=7)["train"]
    b = make_dataloaders("synthetic-microtubules", quick=True, seed=7)["train"]
    c = make_dataloaders("synthetic-microtubules", quick=True, seed=8)["train"]
    ea, eb = epochs(a, 2), epochs(b, 2)
    assert torch.equal(ea[0], eb[0]) and torch.equal(ea[1], eb[1])
    assert not torch.equal(ea[0], ea[1])  # a new epoch reshuffles and re-augments
    assert not torch.equal(ea[0], epochs(c, 1)[0])
    resumed = make_dataloaders("synthetic-microtubules", quick=True, seed=7)["train"]
    resumed.sampler.load_state_dict({"seed": 7, "epoch": 1})
    assert torch.equal(epochs(resumed, 1)[0], ea[1])


def test_worker_processes_give_the_same_batches():
    single = make_dataloaders("synthetic-mitochondria", quick=True, seed=2, num_workers=0)["train"]
    multi = make_dataloaders("synthetic-mitochondria", quick=True, seed=2, num_workers=2)["train"]
    for b0, b2 in zip(single, multi):
        assert torch.equal(b0["x"], b2["x"]) and torch.equal(b0["y"], b2["y"]) and b0["name"] == b2["name"]


def test_validation_and_test_are_neither_shuffled_nor_augmented():
    loaders = make_dataloaders("synthetic-zebrafish", quick=True)
    val = loaders["val"].dataset
    batch = next(iter(loaders["val"]))
    assert batch["index"].tolist() == list(range(len(batch["index"])))
    x, y, _ = val.patches.patch(0)
    torch.testing.assert_close(batch["x"][0, 0], torch.from_numpy(x.astype(np.float32)) * 2 / 255 - 1)
    torch.testing.assert_close(batch["y"][0, 0], torch.from_numpy(y.astype(np.float32)) * 2 / 255 - 1)


def test_synthetic_splits_share_no_field_of_view():
    datasets = make_dataloaders("synthetic-microtubules", quick=True)
    fovs = {s: set(loader.dataset.patches.fovs) for s, loader in datasets.items()}
    assert not (fovs["train"] & fovs["val"] or fovs["train"] & fovs["test"] or fovs["val"] & fovs["test"])
    with pytest.raises(ValueError, match="takes no root"):
        make_dataloaders("synthetic-microtubules", root="/somewhere")


def test_plain_index_augmentation_follows_the_global_seed():
    dataset = PairedPatchDataset(_identity_pairs(n=1, size=32, seed=5), Augmentation(blur_probability=0.0))
    draws = []
    for seed in (0, 0, 1, 2, 3):
        torch.manual_seed(seed)
        draws.append(dataset[0]["x"])
    assert torch.equal(draws[0], draws[1])  # same global seed -> same augmentation
    assert any(not torch.equal(draws[0], d) for d in draws[2:])  # other seeds -> other augmentations
