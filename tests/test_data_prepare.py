"""Preparation: FMD split counts, TIFF z-stacks, STED-sized FOVs, registration, scaling, bad input."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from teachdiff.data import (
    apply_shift,
    check_dataset,
    estimate_shift,
    from_model_range,
    make_dataloaders,
    prepare_dataset,
    register_pair,
    to_display_range,
    to_model_range,
)
from teachdiff.data.io import write_image
from teachdiff.data.pairs import ArrayPair
from teachdiff.data.prepare import PatchSet
from teachdiff.data.synthetic import simulate_pair


@pytest.fixture(scope="module")
def fmd_folder(tmp_path_factory):
    """An FMD-shaped Confocal_FISH folder: 20 FOVs x 50 captures of 512^2 + avg50 (tiny values)."""
    root = tmp_path_factory.mktemp("fmd") / "Confocal_FISH"
    rng = np.random.default_rng(0)
    for fov in range(1, 21):
        (root / "raw" / str(fov)).mkdir(parents=True)
        (root / "gt" / str(fov)).mkdir(parents=True)
        gt = np.full((512, 512), fov, np.uint8)
        Image.fromarray(gt).save(root / "gt" / str(fov) / "avg50.png", compress_level=1)
        for capture in range(50):
            raw = gt + rng.integers(0, 3, size=(1, 512), dtype=np.uint8)  # cheap, still a distinct file
            Image.fromarray(np.broadcast_to(raw, (512, 512))).save(
                root / "raw" / str(fov) / f"HV140_P1005100{capture:02d}.png", compress_level=1
            )
    (root / "avg2" / "1").mkdir(parents=True)  # FMD's other noise levels are ignored
    return root


def test_fmd_folder_gives_table_s1_split_with_no_sub_fov_leak(fmd_folder):
    sets = prepare_dataset("zebrafish", fmd_folder.parent, patch_size=256, progress=False)
    assert {s: len(p) for s, p in sets.items()} == {"train": 3600, "val": 200, "test": 200}
    sub_fovs = {s: {p.sub_fov(i) for i in range(len(p))} for s, p in sets.items()}
    assert [len(sub_fovs[s]) for s in ("train", "val", "test")] == [72, 4, 4]  # Table S1 parentheses
    assert not (sub_fovs["train"] & sub_fovs["val"] or sub_fovs["train"] & sub_fovs["test"] or sub_fovs["val"] & sub_fovs["test"])
    assert sets["test"].fovs == ["19"] and sets["val"].fovs == ["20"]  # FMD's own test FOV is our test FOV
    # Every one of the 50 captures of a test sub-FOV is paired with the same averaged target.
    names = [sets["test"].name(i) for i in range(len(sets["test"])) if sets["test"].sub_fov(i) == "19/r0c256"]
    assert len(names) == 50
    x, y, _ = sets["test"].patch(0)
    assert x.shape == (256, 256) and np.all(y == 19)
    report = check_dataset("zebrafish", fmd_folder, decode=False, progress=False)
    assert report.ok, report.problems
    assert [report.splits[s].sub_fovs for s in ("train", "val", "test")] == [72, 4, 4]


def test_fmd_loader_batches(fmd_folder):
    loaders = make_dataloaders("zebrafish", root=fmd_folder, batch_size=8, quick=True)
    batch = next(iter(loaders["test"]))
    assert batch["x"].shape == (8, 1, 256, 256) and batch["x"].dtype == torch.float32
    # The GT of FOV 19 is the constant 19: scaled to [-1, 1] from 8 bits.
    assert torch.allclose(batch["y"], torch.full_like(batch["y"], 2 * 19 / 255 - 1))


def test_16bit_tiff_z_stacks_give_the_implied_patch_counts(tmp_path):
    rng = np.random.default_rng(1)
    depths = {"train": 20, "val": 3, "test": 2}
    for split, z in depths.items():
        stack = rng.integers(0, 60000, size=(z, 550, 550), dtype=np.uint16)
        write_image(tmp_path / split / "raw" / f"{split}_fov.tif", stack)
        write_image(tmp_path / split / "gt" / f"{split}_fov.tif", stack)
    sets = prepare_dataset("synapses", tmp_path, patch_size=256, progress=False)
    # 550 px -> 2 x 2 non-overlapping 256^2 tiles per slice (the last 38 px are not used).
    assert {s: len(p) for s, p in sets.items()} == {s: 4 * z for s, z in depths.items()}
    assert sets["train"].bit_depth == 16
    x, y, name = sets["val"].patch(5)  # slice 1, tile (0, 256)
    stack = tifffile.imread(tmp_path / "val" / "raw" / "val_fov.tif")
    np.testing.assert_array_equal(x, stack[1, 0:256, 256:512])
    assert name == "val_fov/z01/r0c256"
    loaders = make_dataloaders("synapses", root=tmp_path, batch_size=4, augmentation=False)
    batch = next(iter(loaders["val"]))
    expected = 2 * torch.from_numpy(stack[0, :256, :256].astype(np.float32)) / 65535 - 1
    torch.testing.assert_close(batch["x"][0, 0], expected)


def test_sted_sized_fov_gives_100_patches(tmp_path):
    y = np.random.default_rng(0).integers(0, 256, size=(2560, 2560), dtype=np.uint8)
    for split in ("train", "val", "test"):
        write_image(tmp_path / split / "raw" / "a.tif", y)
        write_image(tmp_path / split / "gt" / "a.png", y)
    sets = prepare_dataset("microtubules", tmp_path, patch_size=256, progress=False)
    assert [len(sets[s]) for s in ("train", "val", "test")] == [100, 100, 100]  # (2560 / 256)^2
    assert sets["train"].shifts == [(0, 0)]


def test_shifted_copy_is_registered_back_and_padding_is_mirrored():
    big = simulate_pair("microtubules", 300, seed=4)
    a, b = 7, -4  # the input shows the target's content displaced: x[i, j] = y[i + a, j + b]
    y = big.y[20:276, 20:276]
    x = big.x[20 + a : 276 + a, 20 + b : 276 + b]  # and it is the noisy low-dose view
    shift = estimate_shift(y, x)
    assert np.all(np.abs(shift - (a, b)) <= 1.0), shift
    x_reg, y_masked, whole = register_pair(x, y)
    assert whole == (a, b)
    # Valid region: x_reg[i, j] = x[i - a, j - b] is the low-dose view of the target's pixel (i, j).
    valid = np.zeros((256, 256), bool)
    valid[a:, : 256 + b] = True
    np.testing.assert_array_equal(x_reg[valid], big.x[20:276, 20:276][valid])
    # Padding: the first a rows and last -b columns of x_reg are zero, and exactly there the
    # target is zeroed too (mirrored padding); elsewhere the target is untouched.
    assert np.all(x_reg[~valid] == 0) and np.all(y_masked[~valid] == 0)
    np.testing.assert_array_equal(y_masked[valid], y[valid])
    # The lazily cut patches agree with registering the whole pair.
    ps = PatchSet([ArrayPair(x=x[None], y=y[None], fov="a", name="a", bit_depth=8)], 64, 8, shifts=[whole])
    for i in range(len(ps)):
        xp, yp, _ = ps.patch(i)
        _, _, r, c = ps.index[i]
        np.testing.assert_array_equal(xp, x_reg[r : r + 64, c : c + 64])
        np.testing.assert_array_equal(yp, y_masked[r : r + 64, c : c + 64])


def test_folder_pairs_are_registered_during_preparation(tmp_path):
    big = simulate_pair("microtubules", 300, seed=5)
    for split in ("train", "val", "test"):
        write_image(tmp_path / split / "raw" / "a.tif", big.x[27:283, 16:272])  # displaced by (7, -4)
        write_image(tmp_path / split / "gt" / "a.tif", big.y[20:276, 20:276])
    sets = prepare_dataset("microtubules", tmp_path, patch_size=128, progress=False)
    assert sets["test"].shifts == [(7, -4)]
    x, y = sets["test"].load_pair(0)
    assert np.all(x[0, :7] == 0) and np.all(y[0, :7] == 0) and np.all(y[0, :, -4:] == 0)


def test_apply_shift_moves_content_and_reports_valid_pixels():
    img = np.arange(1, 26, dtype=np.uint8).reshape(5, 5)
    out, valid = apply_shift(img, (1, -2))
    np.testing.assert_array_equal(out[1:, :3], img[:4, 2:])
    assert valid.sum() == 4 * 3 and np.all(out[~valid] == 0)


def test_intensity_scaling_round_trips():
    v8 = np.array([0, 51, 255], np.uint8)
    np.testing.assert_allclose(to_model_range(v8, 8), [-1, 2 * 51 / 255 - 1, 1], rtol=1e-6)
    v16 = torch.tensor([0, 65535], dtype=torch.int32)
    torch.testing.assert_close(to_model_range(v16, 16), torch.tensor([-1.0, 1.0]))
    np.testing.assert_allclose(from_model_range(to_model_range(v8, 8), 8), v8, atol=1e-4)
    t = torch.tensor([-1.5, -1.0, 0.0, 1.0, 2.0])
    torch.testing.assert_close(to_display_range(t), torch.tensor([0.0, 0.0, 127.5, 255.0, 255.0]))
    assert to_display_range(np.array([0.0]), as_uint8=True).dtype == np.uint8


def test_automatic_split_is_by_fov_and_deterministic(tmp_path):
    for i in range(12):
        img = np.full((64, 64), i, np.uint8)
        write_image(tmp_path / "raw" / f"cell{i:02d}.tif", img)
        write_image(tmp_path / "gt" / f"cell{i:02d}.tif", img)
    a = prepare_dataset("mitochondria", tmp_path, patch_size=32, progress=False)
    b = prepare_dataset("mitochondria", tmp_path, patch_size=32, progress=False)
    fovs = {s: set(a[s].fovs) for s in a}
    assert {s: len(f) for s, f in fovs.items()} == {"train": 10, "val": 1, "test": 1}  # Table S1 fractions
    assert not (fovs["train"] & fovs["test"]) and not (fovs["val"] & fovs["test"])
    assert {s: b[s].fovs for s in b} == {s: a[s].fovs for s in a}
    assert len(a["train"]) == 10 * 4


# ----------------------------------------------------------------------------- bad input


def _snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_empty_folder_explains_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no 'raw/' folder[\s\S]*ROOT/gt/<name>"):
        prepare_dataset("microtubules", tmp_path)
    (tmp_path / "raw").mkdir()
    (tmp_path / "gt").mkdir()
    with pytest.raises(FileNotFoundError, match="no image pairs"):
        prepare_dataset("microtubules", tmp_path)


def test_unpaired_files_are_named(tmp_path):
    img = np.zeros((64, 64), np.uint8)
    write_image(tmp_path / "raw" / "a.tif", img)
    write_image(tmp_path / "raw" / "b.tif", img)
    write_image(tmp_path / "gt" / "a.tif", img)
    write_image(tmp_path / "gt" / "c.png", img)
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"2 file\(s\) without a partner[\s\S]*b\.tif \(no gt/b[\s\S]*c\.png \(no raw/c"):
        prepare_dataset("microtubules", tmp_path)
    assert _snapshot(tmp_path) == before


def test_size_mismatch_names_both_files(tmp_path):
    write_image(tmp_path / "raw" / "a.tif", np.zeros((64, 64), np.uint8))
    write_image(tmp_path / "gt" / "a.tif", np.zeros((64, 80), np.uint8))
    with pytest.raises(ValueError, match=r"raw/a\.tif has shape \(1, 64, 64\)[\s\S]*gt/a\.tif has \(1, 64, 80\)[\s\S]*same size"):
        prepare_dataset("mitochondria", tmp_path)  # not registered; with registration the common centre is used


def test_corrupt_images_are_named(tmp_path):
    write_image(tmp_path / "raw" / "a.png", np.zeros((64, 64), np.uint8))
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "a.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"gt/a\.png: cannot be read[\s\S]*corrupt"):
        prepare_dataset("microtubules", tmp_path)


def test_truncated_image_is_reported_by_check_and_by_the_loader(tmp_path):
    for i in range(3):
        write_image(tmp_path / "raw" / f"f{i}.png", np.random.default_rng(i).integers(0, 255, (64, 64), dtype=np.uint8))
        write_image(tmp_path / "gt" / f"f{i}.png", np.zeros((64, 64), np.uint8))
    broken = tmp_path / "raw" / "f1.png"
    broken.write_bytes(broken.read_bytes()[:200])  # header intact, pixel data cut
    report = check_dataset("mitochondria", tmp_path, patch_size=32, progress=False)
    assert not report.ok and any("f1.png" in p and "corrupt" in p for p in report.problems)
    sets = prepare_dataset("mitochondria", tmp_path, patch_size=32, progress=False)
    split = next(s for s in sets.values() if "f1" in s.fovs)
    with pytest.raises(ValueError, match=r"f1\.png: cannot be read"):
        split.patch(next(i for i in range(len(split)) if split.name(i).startswith("f1")))


def test_rgb_image_is_refused_with_the_fix(tmp_path):
    write_image(tmp_path / "raw" / "a.tif", np.zeros((64, 64), np.uint8))
    (tmp_path / "gt").mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "gt" / "a.png")
    with pytest.raises(ValueError, match=r"gt/a\.png: is a colour image[\s\S]*grayscale"):
        prepare_dataset("microtubules", tmp_path)


def test_missing_datasets_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TEACHDIFF_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="teachdiff data download zebrafish"):
        make_dataloaders("zebrafish")
    with pytest.raises(FileNotFoundError, match=r"not available[\s\S]*root=<folder>[\s\S]*ROOT/raw/<name>"):
        make_dataloaders("synapses")
    with pytest.raises(ValueError, match="known datasets: microtubules"):
        make_dataloaders("tubulin")
    assert list(tmp_path.iterdir()) == []  # nothing was created


def test_write_image_never_overwrites(tmp_path):
    write_image(tmp_path / "a.tif", np.ones((8, 8), np.uint8))
    with pytest.raises(FileExistsError):
        write_image(tmp_path / "a.tif", np.zeros((8, 8), np.uint8))
    assert tifffile.imread(tmp_path / "a.tif").max() == 1
