"""The model zoo: manifest, hash-checked and resumable fetches, offline errors, loading (issue 11)."""

import dataclasses
import hashlib

import numpy as np
import pytest
import tifffile
import torch
from http_server import LocalServer, closed_port_url

from teachdiff.store import zoo
from teachdiff.store.zoo import file_sha256
from teachdiff.cli.main import main
from teachdiff.methods.ddpm import DiffusionConfig, DiffusionMethod
from teachdiff.evaluation.reproduce import chapter_config
from teachdiff.store.resolve import load_method, load_zoo_model
from teachdiff.store.checkpoint import save_checkpoint
from teachdiff.training.runs import train_or_load, trained_checkpoint
from teachdiff.core.unet import UNetConfig

NAME = "synthetic-microtubules-ddpm-quick"


def _trained_like_checkpoint(path):
    """A tiny DDPM checkpoint with non-trivial weights (the zero-initialised gains opened)."""
    torch.manual_seed(0)
    method = DiffusionMethod(DiffusionConfig(unet=dataclasses.replace(UNetConfig.tiny(), image_size=32), T=4,
                                             val_steps=2))
    with torch.no_grad():
        for p in method.parameters():
            if p.ndim == 0:
                p.fill_(0.5)
    return save_checkpoint(path, method, optimizers=[], history=[{"step": 1}], step=1)


@pytest.fixture
def released(tmp_path, monkeypatch):
    """A zoo with one released model: its bundled folder, manifest and an empty user cache."""
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    monkeypatch.setattr(zoo, "BUNDLED_DIR", bundled)
    monkeypatch.setenv("TEACHDIFF_WEIGHTS", str(tmp_path / "cache"))
    checkpoint = _trained_like_checkpoint(tmp_path / "best.pt")
    sha, size = zoo.export_checkpoint(checkpoint, bundled / f"{NAME}.pt", {"name": NAME})
    entry = zoo.ZooEntry(name=NAME, dataset="synthetic-microtubules", model="ddpm", preset="quick",
                         config={}, sha256=sha, size=size, file=f"{NAME}.pt", bundled=True, url=None,
                         command="python benchmarks/zoo/build_quick_zoo.py")
    zoo.write_manifest([entry])
    return entry


def _unbundle(entry) -> bytes:
    """Take the model out of the package; returns its bytes, to publish on a server."""
    path = zoo.BUNDLED_DIR / entry.file
    data = path.read_bytes()
    path.unlink()
    return data


def _publish(entry, url):
    """The manifest now says: not bundled, download from ``url``."""
    zoo.write_manifest([dataclasses.replace(entry, bundled=False, url=url)])


def test_released_checkpoint_has_no_training_state(released):
    payload = torch.load(zoo.fetch(NAME), weights_only=False)
    assert "optimizers" not in payload and "history" not in payload
    assert payload["zoo"]["name"] == NAME and payload["kind"] == "ddpm"


def test_a_release_drops_exactly_the_training_state_that_the_trainer_writes(tmp_path):
    """TRAINING_STATE_KEYS names keys of a real run's checkpoint (fp16's "grad_scaler" included),
    and a release keeps every other key."""
    from teachdiff.store.checkpoint import TRAINING_STATE_KEYS, load_checkpoint
    from teachdiff.training.config import TrainConfig
    from teachdiff.training.loop import train

    generator = torch.Generator().manual_seed(0)
    pairs = [{"x": torch.rand(1, 32, 32, generator=generator) * 2 - 1,
              "y": torch.rand(1, 32, 32, generator=generator) * 2 - 1} for _ in range(4)]
    config = TrainConfig(dataset="custom", patch_size=32, batch_size=2, epochs=1, steps_per_epoch=1, val_images=1,
                         sample_every=0, ema_decay=0.9)
    tiny = DiffusionConfig(unet=dataclasses.replace(UNetConfig.tiny(), image_size=32), T=4, val_steps=2)
    run = train(config, tiny, tmp_path / "run", datasets={"train": pairs, "val": pairs[:1]}, progress=False)
    written = load_checkpoint(run.last_checkpoint)
    assert set(TRAINING_STATE_KEYS) <= set(written)
    zoo.export_checkpoint(run.last_checkpoint, tmp_path / "released.pt")
    released = torch.load(tmp_path / "released.pt", weights_only=False)
    assert set(released) == set(written) - set(TRAINING_STATE_KEYS) | {"weights_dtype", "zoo"}


def test_release_into_a_folder_that_does_not_exist_yet(released, tmp_path):
    """A fresh clone has no weights folder until the first model is released."""
    folder = tmp_path / "fresh" / "weights"
    sha, size = zoo.export_checkpoint(tmp_path / "best.pt", folder / "m.pt")
    zoo.write_manifest([dataclasses.replace(released, file="m.pt", sha256=sha, size=size)], folder / "manifest.json")
    assert zoo.read_manifest(folder / "manifest.json")[0].sha256 == file_sha256(folder / "m.pt")


def test_bundled_file_is_found_and_hash_checked(released):
    assert zoo.fetch(NAME) == zoo.BUNDLED_DIR / released.file
    assert zoo.verify() == [(NAME, "ok (bundled)")]


def test_sha256_mismatch_is_refused_with_a_clear_error(released):
    path = zoo.BUNDLED_DIR / released.file
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # same size, other content
    path.write_bytes(bytes(data))
    with pytest.raises(zoo.ZooError, match="sha256"):
        zoo.fetch(NAME)
    assert zoo.verify()[0][1].startswith("CORRUPT")


def test_download_is_verified_cached_and_reused(released):
    data = _unbundle(released)
    with LocalServer({f"/{released.file}": data}) as server:
        _publish(released, f"{server.url}/{released.file}")
        path = zoo.fetch(NAME, progress=False)
        assert path == zoo.cache_dir() / released.file
        assert hashlib.sha256(path.read_bytes()).hexdigest() == released.sha256
        zoo.fetch(NAME, progress=False)
        assert len(server.requests) == 1  # the second fetch used the cache


def test_truncated_cache_file_is_fetched_again(released):
    data = _unbundle(released)
    cached = zoo.cache_dir() / released.file
    cached.parent.mkdir(parents=True)
    cached.write_bytes(data[: len(data) // 3])  # an interrupted copy by hand
    with LocalServer({f"/{released.file}": data}) as server:
        _publish(released, f"{server.url}/{released.file}")
        assert zoo.fetch(NAME, progress=False) == cached
    assert cached.read_bytes() == data


def test_interrupted_download_resumes_with_a_range_request(released):
    data = _unbundle(released)
    part = zoo.cache_dir() / f"{released.file}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:1000])
    with LocalServer({f"/{released.file}": data}) as server:
        _publish(released, f"{server.url}/{released.file}")
        path = zoo.fetch(NAME, progress=False)
    assert server.requests == [(f"/{released.file}", "bytes=1000-")]
    assert path.read_bytes() == data and not part.exists()


def test_a_download_with_the_wrong_content_is_deleted_not_kept(released):
    data = _unbundle(released)
    with LocalServer({f"/{released.file}": data[::-1]}) as server:
        _publish(released, f"{server.url}/{released.file}")
        with pytest.raises(zoo.ZooError, match="does not match the manifest's sha256"):
            zoo.fetch(NAME, progress=False)
    assert list(zoo.cache_dir().iterdir()) == []


def test_offline_fetch_fails_fast_and_names_file_url_and_where_to_put_it(released, capsys):
    url = closed_port_url(f"/{released.file}")
    _unbundle(released)
    _publish(released, url)
    assert main(["weights", "fetch", NAME, "--no-progress"]) == 1
    message = capsys.readouterr().err
    for part in (released.file, url, str(zoo.cache_dir() / released.file), released.sha256):
        assert part in message


def test_unknown_name_lists_the_released_models(released):
    with pytest.raises(zoo.ZooError, match=NAME):
        zoo.get("no-such-model")


def test_zoo_model_restores_exactly_like_its_checkpoint_file(released):
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    by_name, by_path = load_method(NAME), load_method(zoo.BUNDLED_DIR / released.file)
    a = by_name.restore(x, generator=torch.Generator().manual_seed(3))
    b = by_path.restore(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    c = load_zoo_model(NAME, map_location="cpu").restore(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, c)


def test_train_or_load_takes_the_zoo_model_instead_of_training(released, tmp_path, monkeypatch):
    monkeypatch.setenv("TEACHDIFF_RUNS", str(tmp_path / "runs"))
    method = train_or_load("synthetic-microtubules", "quick", "ddpm")
    reference = load_method(zoo.BUNDLED_DIR / released.file)
    assert all(torch.equal(p, q) for p, q in zip(method.state_dict().values(), reference.state_dict().values()))
    assert not (tmp_path / "runs").exists()  # nothing was trained
    assert train_or_load(NAME).kind == "ddpm"


def test_weights_cli_lists_verifies_and_prints_the_path(released, capsys):
    assert main(["weights", "list"]) == 0
    assert NAME in capsys.readouterr().out
    assert main(["weights", "verify"]) == 0
    assert "ok (bundled)" in capsys.readouterr().out
    assert main(["weights", "path", NAME]) == 0
    assert capsys.readouterr().out.strip() == str(zoo.BUNDLED_DIR / released.file)


def test_restore_cli_takes_a_zoo_model_by_name(released, tmp_path):
    image = tmp_path / "capture.tif"
    tifffile.imwrite(image, np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8))
    assert main(["restore", "--model", NAME, str(image), "--out", str(tmp_path / "out"), "--samples", "2",
                 "--sampler", "ddim", "--steps", "2", "--no-progress", "--device", "cpu"]) == 0
    assert (tmp_path / "out" / "capture_mean.tif").is_file()


def test_the_package_manifest_and_its_bundled_files_agree():
    """Every entry's bundled file exists with the recorded size and sha256, and every bundled file
    has an entry: the manifest lists only models that exist."""
    listed = {e.file for e in zoo.entries() if e.bundled}
    present = {p.name for p in zoo.BUNDLED_DIR.glob("*.pt")}
    assert listed == present
    for entry in zoo.entries():
        assert entry.bundled or entry.url, f"{entry.name} has neither a bundled file nor a URL"
        if entry.bundled:
            path = zoo.BUNDLED_DIR / entry.file
            assert path.stat().st_size == entry.size
            assert hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256
        assert entry.command, f"{entry.name} lacks its training command"
        # scores, or a note that says why there are none yet and where the model is scored instead
        assert entry.scores or "not yet scored" in entry.notes, f"{entry.name} lacks its scores"


def test_trained_checkpoint_is_the_zoo_file_behind_train_or_load(released, tmp_path, monkeypatch):
    monkeypatch.setenv("TEACHDIFF_RUNS", str(tmp_path / "runs"))
    assert trained_checkpoint("synthetic-microtubules") == zoo.BUNDLED_DIR / released.file
    assert not (tmp_path / "runs").exists()


def test_a_chapter_compares_every_model_of_the_zoo_plus_its_competitor(released):
    rcan = dataclasses.replace(released, name="synthetic-microtubules-rcan-quick", model="rcan")
    zoo.write_manifest([released, rcan])
    assert chapter_config("synthetic-microtubules", "quick", "care").models == ("ddpm", "care", "rcan")
    assert chapter_config("synthetic-zebrafish", "quick", "n2v").models == ("ddpm", "n2v")
    assert chapter_config("synthetic-microtubules", "paper", "care").models == ("ddpm", "care", "n2v", "pix2pix",
                                                                                 "rcan")


def test_a_released_pix2pix_keeps_its_generator_only_and_restores_the_same(tmp_path):
    from teachdiff.methods.base import build_method

    torch.manual_seed(0)
    method = build_method("pix2pix", {"n_down": 5, "ngf": 4, "ndf": 4})
    path = save_checkpoint(tmp_path / "best.pt", method.eval(), optimizers=[], history=[], step=1)
    zoo.export_checkpoint(path, tmp_path / "released.pt")
    released = torch.load(tmp_path / "released.pt", weights_only=False)["model"]
    assert released and not any(k.startswith("discriminator.") for k in released)
    assert any(k.startswith("discriminator.") for k in method.state_dict())
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    assert torch.equal(load_method(tmp_path / "released.pt").restore(x), load_method(path).restore(x))


def test_a_half_precision_release_halves_the_file_and_restores_within_the_rounding(tmp_path):
    """float16 storage (pix2pix in the quick zoo): the network is float32 again after loading,
    and its restoration differs from the float32 release's only by the weights' rounding."""
    from teachdiff.methods.base import build_method

    torch.manual_seed(0)
    method = build_method("pix2pix", {"n_down": 5, "ngf": 8, "ndf": 4})
    path = save_checkpoint(tmp_path / "best.pt", method.eval(), optimizers=[], history=[], step=1)
    _, full_size = zoo.export_checkpoint(path, tmp_path / "full.pt")
    _, half_size = zoo.export_checkpoint(path, tmp_path / "half.pt", half=True)
    assert half_size < 0.6 * full_size
    stored = torch.load(tmp_path / "half.pt", weights_only=False)
    assert stored["weights_dtype"] == "float16"
    assert {v.dtype for v in stored["model"].values() if v.is_floating_point()} == {torch.float16}
    full, half = load_method(tmp_path / "full.pt"), load_method(tmp_path / "half.pt")
    assert {p.dtype for p in half.parameters()} == {torch.float32}
    for name, p in half.generator.state_dict().items():  # each weight: its float32 value, rounded
        assert torch.equal(p, full.generator.state_dict()[name].half().float()), name
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        a, b = full.restore(x), half.restore(x)
    assert not torch.equal(a, b) and (a - b).abs().max() < 1e-2  # 2**-11 relative per weight
