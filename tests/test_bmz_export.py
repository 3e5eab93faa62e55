"""``teachdiff export``: BioImage Model Zoo packages that bioimageio.core accepts offline and that
restore what ``teachdiff restore`` restores (issue 29).

The packages are checked by bioimageio.core itself (``test_model``: every weight format
reproduces the test outputs and runs at several tile sizes and batch sizes) and by
``bioimageio.core.predict`` against ``teachdiff restore`` on captures the packages never saw.
Every test here runs with the network cut off: a connection attempt fails the test.
"""

import json
import re
import socket
import zipfile

import numpy as np
import pytest
import tifffile
import torch

bioimageio_core = pytest.importorskip("bioimageio.core", reason="needs the [bmz] extra")

from teachdiff.cli import main as cli  # noqa: E402
from teachdiff.export import PackagedModel, export_package  # noqa: E402
from teachdiff.export.readme import _affine_in, _affine_out  # noqa: E402
from teachdiff.data.folder import Normalization  # noqa: E402
from teachdiff.data.synthetic import simulate_pair  # noqa: E402
from teachdiff.inference.sampling import FAST_SAMPLING
from teachdiff.inference.restore import restore  # noqa: E402
from teachdiff.methods.ddpm import DiffusionConfig, DiffusionMethod  # noqa: E402
from teachdiff.cli.restore import restore_files  # noqa: E402
from teachdiff.store.resolve import load_method
from teachdiff.store.checkpoint import save_checkpoint  # noqa: E402
from teachdiff.core.unet import UNetConfig  # noqa: E402

# bioimageio.core loads torchscript weights with torch.jit.load, which torch 2.13 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

CARE = "synthetic-microtubules-care-quick"
DDPM = "synthetic-microtubules-ddpm-quick"


@pytest.fixture(scope="module", autouse=True)
def offline(tmp_path_factory):
    """No network: every socket connection or name lookup raises and is recorded; bioimageio's
    cache goes to a temporary folder. Fails the module if anything tried to connect."""
    from bioimageio.spec._internal._settings import settings

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:2] or args[:1])
        raise OSError("network access in an offline test")

    saved = (socket.socket.connect, socket.create_connection, socket.getaddrinfo, settings.cache_path)
    socket.socket.connect, socket.create_connection, socket.getaddrinfo = refuse, refuse, refuse
    settings.cache_path = tmp_path_factory.mktemp("bioimageio-cache")
    try:
        yield
    finally:
        socket.socket.connect, socket.create_connection, socket.getaddrinfo, settings.cache_path = saved
    assert not attempts, f"bioimageio tried to reach the network: {attempts[:3]}"


@pytest.fixture(scope="module")
def care_zip(tmp_path_factory, one_thread):
    return export_package(CARE, tmp_path_factory.mktemp("care") / "care.zip", progress=None).path


@pytest.fixture(scope="module")
def ddpm_zip(tmp_path_factory, one_thread):
    return export_package(DDPM, tmp_path_factory.mktemp("ddpm") / "ddpm.zip", progress=None).path


def _rdf(path):
    import yaml

    with zipfile.ZipFile(path) as z:
        return yaml.safe_load(z.read("rdf.yaml")), z.namelist(), z.read("README.md").decode()


def _test_model(path):
    from bioimageio.core import test_model

    summary = test_model(path)
    failed = [(d.name, [e.msg[:300] for e in d.errors]) for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed
    return [d.name for d in summary.details]


def _capture(size, seed):
    pair = simulate_pair("microtubules", size, seed=seed, bit_depth=8)
    return pair.x, pair.y.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# bioimageio.core accepts the packages
# ----------------------------------------------------------------------------------------------


def test_care_package_passes_test_model_in_both_weight_formats(care_zip):
    names = _test_model(care_zip)
    for fmt in ("pytorch_state_dict", "torchscript"):
        assert f"Reproduce test outputs from test inputs ({fmt})" in names
        assert f"Run {fmt} inference for inputs with batch_size: 2 and size parameter n: 2" in names


@pytest.mark.slow
def test_ddpm_package_passes_test_model_in_both_weight_formats(ddpm_zip):
    names = _test_model(ddpm_zip)
    for fmt in ("pytorch_state_dict", "torchscript"):
        assert f"Reproduce test outputs from test inputs ({fmt})" in names


@pytest.mark.parametrize("kind", ["n2v", "rcan", "pix2pix"])
def test_every_baseline_exports_a_package_that_passes_test_model(kind, tmp_path, one_thread):
    result = export_package(f"synthetic-mitochondria-{kind}-quick", tmp_path / f"{kind}.zip", progress=None)
    assert result.weight_formats == ("pytorch_state_dict", "torchscript")
    _test_model(result.path)
    with zipfile.ZipFile(result.path) as z:
        z.extract("weights.pt", tmp_path)
    keys = torch.load(tmp_path / "weights.pt", weights_only=True)
    assert not any(k.startswith("method.discriminator.") for k in keys)  # pix2pix: generator only


@pytest.mark.slow
def test_ddpm_package_declares_sampler_seed_halo_cost_and_citation(ddpm_zip):
    rdf, files, readme = _rdf(ddpm_zip)
    ours = rdf["config"]["teachdiff"]
    assert (ours["sampler"], ours["steps"], ours["samples"], ours["eta"], ours["seed"]) == \
        (FAST_SAMPLING.sampler, FAST_SAMPLING.steps, FAST_SAMPLING.samples, FAST_SAMPLING.eta, 0)
    assert ours["network_calls_per_tile"] == FAST_SAMPLING.calls == 80
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"]["seed"] == 0
    assert [o["id"] for o in rdf["outputs"]] == ["mean", "std"]
    halos = {a["halo"] for o in rdf["outputs"] for a in o["axes"] if "halo" in a}
    assert halos == {4} == {ours["halo"]}  # half of teachdiff restore's default overlap of 64-px tiles
    assert rdf["inputs"][0]["axes"][2]["size"] == {"min": 64, "step": 4}
    assert rdf["cite"][0]["doi"] == "10.48550/arXiv.2409.12078" and "WACV 2025" in rdf["cite"][0]["text"]
    assert rdf["license"] == "MIT"
    assert {"cover.png", "cover_std.png", "README.md", "weights.pt", "weights.torchscript"} <= set(files)
    for heading in ("## Training data", "## What it must not be trusted for", "## Validation", "MIT licence"):
        assert heading in readme
    assert "80 network calls" in readme and re.search(r"halo of\s+4 pixels", readme)


# ----------------------------------------------------------------------------------------------
# predict on a capture gives what teachdiff restore gives
# ----------------------------------------------------------------------------------------------


def test_care_predict_gives_the_image_that_teachdiff_restore_writes_away_from_the_border(care_zip, tmp_path):
    """Inside, the same image: wherever no padding reaches. At the border they pad differently:
    teachdiff restore mirror-pads only the bottom and right to the network's size multiple (the
    whole-image restoration, which its tiles reproduce), bioimageio.core first mirror-pads every
    side by the package's halo (16), less than CARE's receptive radius. restore's border is the
    closer one to the GT (benchmarks/results/border.md), so it stays as it is."""
    from bioimageio.core import predict

    from teachdiff.export.package import tile_geometry

    capture, _ = _capture((200, 168), seed=2901)  # neither side a multiple of 16 or of a tile
    tifffile.imwrite(tmp_path / "cap.tif", capture)
    method = load_method(CARE)
    restore_files(method, [tmp_path / "cap.tif"], tmp_path / "out", progress=False)
    written = tifffile.imread(tmp_path / "out" / "cap_restored.tif")
    predicted = predict(model=str(care_zip), inputs=capture[None, None].astype(np.float32))
    got = predicted.members["restored"].data.to_numpy()[0, 0]
    assert got.shape == written.shape == capture.shape
    margin = tile_geometry(method).halo + method.halo
    inside = (slice(margin, -margin), slice(margin, -margin))
    assert np.abs(got[inside] - written[inside]).max() < 1e-3  # grey levels (0..255)
    assert np.abs(got - written).max() > 1e-3  # the borders differ: the docstring's reason
    assert "benchmarks/results/border.md" in _rdf(care_zip)[2]  # and the package's README says so


@pytest.mark.slow
def test_ddpm_predict_in_tiles_matches_teachdiff_restore_by_mae_and_std(ddpm_zip, tmp_path):
    from bioimageio.core import predict

    capture, gt = _capture(128, seed=2902)
    tifffile.imwrite(tmp_path / "cap.tif", capture)
    fast = FAST_SAMPLING
    restore_files(load_method(DDPM), [tmp_path / "cap.tif"], tmp_path / "out", n_samples=fast.samples,
                  sampler=fast.sampler, steps=fast.steps, eta=fast.eta, progress=False)
    mean = tifffile.imread(tmp_path / "out" / "cap_mean.tif")
    std = tifffile.imread(tmp_path / "out" / "cap_std.tif") * 255  # restore: std / 255 on 8-bit data
    # blocksize 0: 64-pixel blocks with the package's halo, as a consumer tiles a large image
    out = predict(model=str(ddpm_zip), inputs=capture[None, None].astype(np.float32), blocksize_parameter=0)
    got_mean = out.members["mean"].data.to_numpy()[0, 0]
    got_std = out.members["std"].data.to_numpy()[0, 0]
    mae_restore, mae_package = np.abs(mean - gt).mean(), np.abs(got_mean - gt).mean()
    assert abs(mae_package / mae_restore - 1) < 0.05, (mae_package, mae_restore)
    assert mae_package < 0.8 * np.abs(capture - gt).mean()  # a restoration, not the input
    assert got_std.min() >= 0 and abs(got_std.mean() / std.mean() - 1) < 0.1, (got_std.mean(), std.mean())


# ----------------------------------------------------------------------------------------------
# The packaged network
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_ddpm():
    torch.manual_seed(0)
    unet = UNetConfig(image_size=32, channels=8, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(),
                      channels_per_head=8)
    return DiffusionMethod(DiffusionConfig(unet=unet, T=20)).eval()


def _packaged(method, seed=0):
    module = PackagedModel("ddpm", json.loads(json.dumps(method.config_dict())), seed=seed)
    module.method.load_state_dict(method.state_dict())
    return module.eval()


def test_packaged_ddpm_is_teachdiff_restore_of_the_whole_tile(small_ddpm, one_thread):
    x = torch.rand(1, 1, 30, 26) * 0.4 - 0.8  # not a multiple of the size multiple: padded inside
    with torch.no_grad():
        mean, std = _packaged(small_ddpm, seed=5)(x)
    fast = FAST_SAMPLING
    ref = restore(small_ddpm.unet, x, small_ddpm.schedule, n_samples=fast.samples, sampler=fast.sampler,
                  steps=fast.steps, eta=fast.eta, seed=5, tile=None, progress=False)
    assert mean.shape == std.shape == x.shape
    torch.testing.assert_close(mean, ref.mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(std, 2 * ref.std, atol=1e-5, rtol=0)  # restore: std on [0, 1]
    assert std.mean() > 0.01


def test_packaged_ddpm_is_deterministic_per_seed_and_independent_of_the_batch(small_ddpm, one_thread):
    a, b = torch.rand(2, 1, 1, 32, 32) * 0.4 - 0.8
    module = _packaged(small_ddpm, seed=1)
    with torch.no_grad():
        alone, again, batch = module(a)[0], module(a)[0], module(torch.cat([b, a]))[0]
        other_seed = _packaged(small_ddpm, seed=2)(a)[0]
    assert torch.equal(alone, again)
    torch.testing.assert_close(batch[1:], alone, atol=1e-5, rtol=0)
    assert (other_seed - alone).abs().max() > 1e-3


@pytest.mark.parametrize("norm", [Normalization.from_bit_depth(12, 16),
                                  Normalization("percentile", 16, 16, 103.0, 3999.5, 88.0, 6100.0, 3.0, 99.8)])
def test_package_pre_and_postprocessing_is_the_training_normalisation(norm):
    values = np.random.default_rng(0).uniform(0, 4095, 1000).astype(np.float32)
    gain, offset = _affine_in(norm)
    np.testing.assert_allclose(values * gain + offset, norm.input_to_model(values), atol=1e-5)
    network = np.linspace(-1.3, 1.3, 101, dtype=np.float32)  # beyond [-1, 1]: clipped first
    gain, offset = _affine_out(norm)
    np.testing.assert_allclose(np.clip(network, -1, 1) * gain + offset, norm.from_model(network), rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Bad input: a clear answer, never a half-written file
# ----------------------------------------------------------------------------------------------


def _export(capsys, *args):
    code = cli.main(["export", *map(str, args)])
    return code, capsys.readouterr().err


def test_unknown_model_lists_the_zoo_names(tmp_path, capsys):
    code, err = _export(capsys, "no-such-model", "--out", tmp_path / "x.zip")
    assert code == 1 and "unknown model 'no-such-model'" in err and DDPM in err and CARE in err
    assert not list(tmp_path.iterdir())


def test_existing_out_is_refused_without_force_and_replaced_with_it(tmp_path, capsys, one_thread):
    out = tmp_path / "care.zip"
    out.write_bytes(b"an earlier package")
    code, err = _export(capsys, CARE, "--out", out)
    assert code == 1 and "--force" in err and out.read_bytes() == b"an earlier package"
    assert _export(capsys, CARE, "--out", out, "--force")[0] == 0
    assert zipfile.is_zipfile(out)


def test_out_must_be_a_zip_file(tmp_path, capsys):
    code, err = _export(capsys, CARE, "--out", tmp_path / "care.tar")
    assert code == 1 and "must end in .zip" in err


def test_bad_licence_is_named(tmp_path, capsys):
    code, err = _export(capsys, CARE, "--out", tmp_path / "care.zip", "--license", "MIT-ish")
    assert code == 1 and "'MIT-ish' is not an SPDX licence id" in err
    assert not list(tmp_path.iterdir())


def test_checkpoint_without_a_saved_normaliser_gets_a_clear_error(tmp_path, capsys, small_ddpm):
    checkpoint = save_checkpoint(tmp_path / "best.pt", small_ddpm)  # no normalisation, no dataset
    code, err = _export(capsys, checkpoint, "--out", tmp_path / "x.zip")
    assert code == 1 and "no saved normalisation" in err and "--bit-depth" in err
    code, err = _export(capsys, checkpoint, "--out", tmp_path / "x.zip", "--bit-depth", "8")
    assert code == 1 and "--sample" in err  # the next question: which capture to test it on
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]


def test_a_failed_export_removes_its_partial_zip_and_keeps_the_old_one(tmp_path, monkeypatch, one_thread):
    import bioimageio.spec

    def fail_halfway(descr, output_path, **kwargs):
        output_path.write_bytes(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bioimageio.spec, "save_bioimageio_package", fail_halfway)
    out = tmp_path / "care.zip"
    out.write_bytes(b"an earlier package")
    with pytest.raises(PermissionError, match="could not write .*No space left on device"):
        export_package(CARE, out, force=True, torchscript=False, progress=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["care.zip"]
    assert out.read_bytes() == b"an earlier package"


@pytest.mark.slow
def test_a_model_of_your_own_folder_is_exported_with_its_saved_normalisation(tmp_path, small_ddpm, one_thread):
    """The book's path: a model trained on a folder of 12-bit captures in 16-bit files; the test
    capture comes from the folder's test split, the preprocessing is the saved 12-bit scaling."""
    import dataclasses

    from teachdiff.data import write_image
    from teachdiff.data.folder import FolderConfig, prepare_folder

    folder = FolderConfig(str(tmp_path / "pairs"), bit_depth=12, split_fractions=(0.6, 0.2, 0.2))
    for f in range(5):
        pair = simulate_pair("microtubules", 48, seed=2910 + f, bit_depth=16)
        write_image(tmp_path / "pairs" / "raw" / f"fov{f}.tif", pair.x // 16)
        write_image(tmp_path / "pairs" / "gt" / f"fov{f}.tif", pair.y // 16)
    checkpoint = save_checkpoint(tmp_path / "best.pt", small_ddpm,
                                 normalization=Normalization.from_bit_depth(12, 16).to_dict(),
                                 train_config={"data": dataclasses.asdict(folder), "preset": "quick", "seed": 0})
    result = export_package(checkpoint, tmp_path / "mine.zip", progress=None)
    rdf, _, readme = _rdf(result.path)
    gain = rdf["inputs"][0]["preprocessing"][1]["kwargs"]["gain"]
    assert gain == pytest.approx(2 / 4095)
    test_fov = prepare_folder(folder, 32, progress=False)["test"].pairs[0].x_path.name
    assert test_fov in rdf["config"]["teachdiff"]["test_capture"] and "own folder of pairs" in readme
    with zipfile.ZipFile(result.path) as z:
        z.extract("test_input.npy", tmp_path)
    test_input = np.load(tmp_path / "test_input.npy")
    assert test_input.shape == (1, 1, 32, 32) and 255 < test_input.max() <= 4095  # 12-bit values, unscaled
    _test_model(result.path)


def test_a_sample_beyond_the_models_bit_depth_is_refused(tmp_path, capsys):
    write = tmp_path / "capture16.tif"
    tifffile.imwrite(write, (_capture(64, seed=2920)[0].astype(np.uint16) * 257))
    code, err = _export(capsys, CARE, "--out", tmp_path / "care.zip", "--sample", write)
    assert code == 1 and "values up to" in err and "8-bit range 0..255" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["capture16.tif"]
