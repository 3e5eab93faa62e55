"""``TEACHDIFF_CAPPED=1``, CI's run of full mode: sizes and splits stay, counts are capped.

What each place that honours the switch (teachdiff.capped_mode's docstring) keeps and caps,
checked on small models; tests/test_notebooks_full_mode.py runs the chapters under it.
"""

import copy
import dataclasses

import pytest
import torch

import teachdiff
from teachdiff.core.capping import cap_network_calls
from teachdiff.core.diffusion import NoiseSchedule
from teachdiff.inference.restore import restore
from teachdiff.inference.sampling import sample
from teachdiff.methods.ddpm import DiffusionConfig, DiffusionMethod
from teachdiff.evaluation.reproduce import ReproduceConfig
from teachdiff.store.resolve import load_method
from teachdiff.training.config import runs_dir
from teachdiff.store.checkpoint import save_checkpoint
from teachdiff.training.presets import train_preset
from teachdiff.core.unet import UNetConfig

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = DiffusionConfig(unet=dataclasses.replace(UNetConfig.tiny(), image_size=32), T=20)


@pytest.fixture
def capped(monkeypatch):
    monkeypatch.setenv("TEACHDIFF_CAPPED", "1")


class Counting(torch.nn.Module):
    """A network that counts the images it computes, and whose output depends on the image."""

    def __init__(self):
        super().__init__()
        self.images = 0

    def forward(self, x, y_t, level):
        self.images += x.shape[0]
        return x * level.reshape(-1, 1, 1, 1) + y_t


class Method(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = Counting()


def _inputs(n, side=8):
    g = torch.Generator().manual_seed(n * side)
    return torch.randn(n, 1, side, side, generator=g), torch.randn(n, 1, side, side, generator=g), torch.rand(n)


def test_capped_is_the_identity_unless_the_switch_is_on(monkeypatch):
    monkeypatch.delenv("TEACHDIFF_CAPPED", raising=False)
    assert not teachdiff.capped_mode() and teachdiff.capped(200, 2) == 200
    monkeypatch.setenv("TEACHDIFF_CAPPED", "1")
    assert teachdiff.capped_mode() and teachdiff.capped(200, 2) == 2 and teachdiff.capped(1, 2) == 1


def test_presets_keep_their_sizes_and_network_and_cap_the_counts(monkeypatch):
    for model in ("ddpm", "rcan"):
        monkeypatch.delenv("TEACHDIFF_CAPPED", raising=False)
        full_cfg, full_method = train_preset("synthetic-microtubules", "colab", model)
        monkeypatch.setenv("TEACHDIFF_CAPPED", "1")
        cfg, method_cfg = train_preset("synthetic-microtubules", "colab", model)
        assert cfg.patch_size == full_cfg.patch_size == 256 and cfg.lr == full_cfg.lr
        assert (cfg.epochs, cfg.total_steps, cfg.batch_size, cfg.val_images, cfg.num_workers) == (1, 1, 1, 1, 0)
        assert full_cfg.total_steps > 1
        if model == "ddpm":
            assert full_cfg.batch_size == 8 and method_cfg.val_steps == 1
            assert method_cfg.unet == full_method.unet == UNetConfig.paper()
        else:
            assert method_cfg == full_method  # the paper's UNet-RCAN


def test_capped_runs_live_apart_from_real_runs(monkeypatch, tmp_path, capped):
    monkeypatch.setenv("TEACHDIFF_RUNS", str(tmp_path))
    assert runs_dir() == tmp_path / "capped"


def test_a_capped_network_computes_one_image_per_signature_and_repeats_it(capped):
    method = cap_network_calls(Method()).eval()
    x, y_t, level = _inputs(5)
    with torch.no_grad():
        first = method.net(x, y_t, level)
        again = method.net(*_inputs(3))  # same signature: no new computation
        other = method.net(*_inputs(2, side=16))  # a new shape is a real call
    real = Counting()(x[:1], y_t[:1], level[:1])
    assert first.shape == x.shape and torch.equal(first, real.expand_as(first))
    assert again.shape == (3, 1, 8, 8) and torch.equal(again, real.expand(3, -1, -1, -1))
    assert other.shape == (2, 1, 16, 16)
    assert method.net.images == 2


def test_a_capped_network_trains_and_fails_for_real(capped):
    method = cap_network_calls(Method())
    x, y_t, level = _inputs(4)
    method.train()
    assert torch.equal(method.net(x, y_t, level), Counting()(x, y_t, level))
    method.eval()
    with torch.no_grad(), pytest.raises(RuntimeError):  # batch sizes that disagree: the real error
        method.net(x, y_t[:3], level)
    assert method.net.images == 8


def test_a_copy_of_a_capped_network_calls_its_own_weights(capped):
    method = cap_network_calls(DiffusionMethod(TINY)).eval()
    twin = copy.deepcopy(method)
    with torch.no_grad():
        for p in twin.parameters():
            p.add_(0.1)
        x = torch.rand(1, 1, 32, 32)
        level = torch.full((1,), 0.5)
        assert not torch.equal(method.unet(x, x, level), twin.unet(x, x, level))


def test_load_method_caps_the_networks_it_loads(tmp_path, capped):
    path = save_checkpoint(tmp_path / "best.pt", DiffusionMethod(TINY))
    method = load_method(path)
    assert method.unet.capped_outputs == {}
    with torch.no_grad():
        method.unet(torch.rand(3, 1, 32, 32), torch.rand(3, 1, 32, 32), torch.rand(3))
    assert len(method.unet.capped_outputs) == 1


def test_capped_sampling_keeps_every_shape_and_copies_the_first_batch(monkeypatch):
    model = Counting()
    x = torch.rand(5, 1, 8, 8)
    monkeypatch.setenv("TEACHDIFF_CAPPED", "1")
    out = sample(model, x, NoiseSchedule(T=50), n_samples=3, sampler="ddpm", batch_size=4, seed=0, progress=False)
    assert out.shape == (5, 3, 1, 8, 8)
    assert model.images == 2 * 4  # two steps of one batch of four (image, sample) pairs
    items = out.reshape(15, 1, 8, 8)
    assert torch.equal(items[4:8], items[:4]) and torch.equal(items[12:], items[:3])
    result = restore(model, x, NoiseSchedule(T=50), n_samples=15, sampler="ddim", steps=10, seed=0, progress=False,
                     keep_samples=True)
    assert result.samples.shape == (5, 15, 1, 8, 8) and result.std.shape == (5, 1, 8, 8)


def test_reproduce_presets_cap_test_images_and_samples(monkeypatch, capped):
    cfg = ReproduceConfig.preset_for("synthetic-zebrafish", "paper")
    assert (cfg.test_images, cfg.n_avg, cfg.test_patch_size, cfg.sampler) == (2, 2, 256, "ddpm")
