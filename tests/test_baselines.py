"""The benchmark models (paper §S3): architectures, Noise2Void's blindness to the GT, presets, checkpoints.

The training tests (marked slow) run each model through the shared trainer on synthetic data and
check, on held-out patches and independently of the trainer's own validation, that it beats the
raw input.
"""

import dataclasses

import numpy as np
import pytest
import torch
from scipy import ndimage

from teachdiff.methods import (
    CARE,
    CAREConfig,
    CSBDeepUNet,
    GaussianFilter,
    N2VConfig,
    NonLocalMeans,
    Noise2Void,
    PatchDiscriminator,
    Pix2Pix,
    Pix2PixConfig,
    UNetGenerator,
    UNetRCAN,
    gaussian_restore,
    nlm_restore,
    receptive_field,
)
from teachdiff.methods import n2v as n2v_module
from teachdiff.methods.classical import estimate_noise_sigma
from teachdiff.methods.common import count_parameters
from teachdiff.methods.n2v import blind_spot_coords, mask_blind_spots
from teachdiff.methods.rcan import unet_rcan_loss
from teachdiff.methods.base import build_method
from teachdiff.core.precision import prepare_network
from teachdiff.store.resolve import load_method
from teachdiff.store.checkpoint import save_checkpoint
from teachdiff.training.loop import train
from teachdiff.training.presets import train_preset

KINDS = ["care", "n2v", "pix2pix", "rcan"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _quick_method(kind):
    return build_method(kind, train_preset("synthetic-zebrafish", "quick", kind)[1])


# ----------------------------------------------------------------------------------------------
# CARE
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(4, 4), (12, 20), (64, 64), (36, 100)])
def test_care_unet_output_has_input_shape_for_sides_divisible_by_4(size):
    net = CSBDeepUNet(depth=2, base_filters=8, kernel_size=5)
    x = torch.randn(2, 1, *size)
    assert net(x).shape == x.shape


def test_care_unet_rejects_sides_not_divisible_by_4_and_restore_pads_them():
    care = CARE(CAREConfig(base_filters=8))
    with pytest.raises(ValueError, match="divisible by 4"):
        care.net(torch.zeros(1, 1, 30, 32))
    assert care.restore(torch.zeros(1, 1, 30, 33)).shape == (1, 1, 30, 33)


def test_care_parameter_count_matches_csbdeep_widths_by_hand():
    # CSBDeep unet_block, depth 2, 32 filters, 5x5, 2 convs/level, then a 1x1 output conv.
    convs = [(1, 32), (32, 32), (32, 64), (64, 64),  # encoder
             (64, 128), (128, 64),  # middle: 2**depth * 32, then 2**(depth-1) * 32
             (64 + 64, 64), (64, 32),  # decoder level 1 (after concatenating the skip)
             (32 + 32, 32), (32, 32)]  # decoder level 0
    expected = sum(25 * a * b + b for a, b in convs) + (32 + 1)
    assert count_parameters(CARE()) == expected == 922_977


def test_documented_parameter_counts():
    # Noise2Void: CARE's convolutions at 3x3 without bias, plus batch-norm scale and shift.
    convs = [(1, 32), (32, 32), (32, 64), (64, 64), (64, 128), (128, 64), (128, 64), (64, 32), (64, 32), (32, 32)]
    assert count_parameters(Noise2Void()) == sum(9 * a * b + 2 * b for a, b in convs) + 33 == 333_185
    # PatchGAN: C64 (bias) - C128 - C256 - C512 (no bias, instance-norm affine) - 1 logit (bias), 4x4.
    disc = [(2, 64, 64), (64, 128, 2 * 128), (128, 256, 2 * 256), (256, 512, 2 * 512), (512, 1, 1)]
    assert count_parameters(PatchDiscriminator()) == sum(16 * a * b + extra for a, b, extra in disc) == 2_764_609
    assert count_parameters(UNetRCAN()) == 16_684_270  # the number in rcan.py's docstring


def test_care_is_residual():
    care = CARE(CAREConfig(base_filters=8))
    torch.nn.init.zeros_(care.net.out.weight)
    x = torch.rand(1, 1, 16, 16) * 2 - 1
    assert torch.equal(care.net(x), x)


# ----------------------------------------------------------------------------------------------
# pix2pix
# ----------------------------------------------------------------------------------------------


def test_patchgan_receptive_field_is_70():
    assert receptive_field(PatchDiscriminator(2, 64, 3)) == 70
    assert receptive_field(Pix2Pix().discriminator) == 70
    assert receptive_field(_quick_method("pix2pix").discriminator) == 70  # narrower, same field


def test_patchgan_receptive_field_measured_by_gradient_is_70():
    """Independent check: the input pixels that influence one output logit span 70 x 70.

    Instance normalisation uses whole-image statistics, the one non-local operation; it is
    replaced by the identity so that the gradient shows the convolutional field alone.
    """
    torch.manual_seed(0)
    disc = PatchDiscriminator(2, 8, 3).double()
    for i, layer in enumerate(disc.net):
        if isinstance(layer, torch.nn.InstanceNorm2d):
            disc.net[i] = torch.nn.Identity()
    x = torch.randn(1, 1, 160, 160, dtype=torch.float64, requires_grad=True)
    y = torch.randn(1, 1, 160, 160, dtype=torch.float64)
    out = disc(x, y)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows, cols = np.nonzero(x.grad[0, 0].numpy())
    assert rows.max() - rows.min() + 1 == 70
    assert cols.max() - cols.min() + 1 == 70


def test_pix2pix_generator_matches_unet_256_and_any_size_restores():
    gen = UNetGenerator(n_down=8, ngf=64)
    # pix2pix's unet_256 has 54,413,955 parameters for RGB; 1-channel ends drop 2*64*16 + 3*... weights.
    rgb_minus_mono = (3 - 1) * 64 * 16 + (3 - 1) * 128 * 16 + (3 - 1)
    assert count_parameters(gen) == 54_413_955 - rgb_minus_mono
    quick = _quick_method("pix2pix").eval()
    out = quick.restore(torch.rand(2, 1, 50, 70) * 2 - 1)
    assert out.shape == (2, 1, 50, 70) and out.abs().max() <= 1


def test_pix2pix_step_updates_both_networks_and_uses_adam_beta_half():
    torch.manual_seed(0)
    method = Pix2Pix(Pix2PixConfig(n_down=5, ngf=8, ndf=8))
    opts = method.make_optimizers(2e-4, 0.0)
    assert [o.defaults["betas"] for o in opts] == [(0.5, 0.999)] * 2
    assert method.config.lambda_l1 == 100
    g0 = [p.clone() for p in method.generator.parameters()]
    d0 = [p.clone() for p in method.discriminator.parameters()]
    x, y = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
    logs = method.training_step(x, y, opts)
    assert set(logs) >= {"loss", "loss_d"} and np.isfinite(logs["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(g0, method.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, method.discriminator.parameters()))


# ----------------------------------------------------------------------------------------------
# Noise2Void
# ----------------------------------------------------------------------------------------------


def test_n2v_blind_spots_are_stratified_at_0198_percent():
    g = torch.Generator().manual_seed(0)
    b, r, c = blind_spot_coords(4, 64, 64, 0.198, g)
    box = round((100 / 0.198) ** 0.5)
    assert box == 22
    for i in range(4):  # at most one pixel per 22 x 22 box, every box that is fully inside has one
        boxes = set(zip((r[b == i] // box).tolist(), (c[b == i] // box).tolist()))
        assert len(boxes) == int((b == i).sum())
        assert {(0, 0), (0, 1), (1, 0), (1, 1)} <= boxes
    assert 0.1 < len(b) / (4 * 64 * 64) * 100 < 0.3  # about 0.198 % of the pixels


def test_n2v_replacement_is_a_neighbour_within_radius_never_the_centre():
    h = w = 64
    x = torch.arange(2 * h * w, dtype=torch.float64).view(2, 1, h, w)  # every value names its pixel
    for seed in range(20):
        x_tilde, (b, r, c) = mask_blind_spots(x, 0.198, radius=5, generator=torch.Generator().manual_seed(seed))
        changed = (x_tilde != x).nonzero()
        assert len(changed) == len(b)  # only blind spots change
        src = x_tilde[b, 0, r, c].long() - b * h * w
        sr, sc = src // w, src % w
        top, left = (r - 5).clamp(0, h - 11), (c - 5).clamp(0, w - 11)  # the 11 x 11 window, inside the image
        assert torch.all((sr >= top) & (sr < top + 11) & (sc >= left) & (sc < left + 11))
        assert torch.all((sr != r) | (sc != c))  # never the pixel itself


def test_n2v_loss_only_at_blind_spots():
    torch.manual_seed(0)
    method = Noise2Void(N2VConfig(base_filters=8))
    x = torch.randn(2, 1, 64, 64)
    seen = {}
    real_net = method.net

    class Spy(torch.nn.Module):
        def forward(self, t):
            seen["out"] = real_net(t)
            seen["out"].retain_grad()
            return seen["out"]

    method.net = Spy()
    method(x, None, generator=torch.Generator().manual_seed(1)).backward()
    _, (b, r, c) = mask_blind_spots(x, generator=torch.Generator().manual_seed(1))
    grad_pixels = seen["out"].grad.abs()[:, 0] > 0
    expected = torch.zeros_like(grad_pixels)
    expected[b, r, c] = True
    assert torch.equal(grad_pixels, expected)


def test_n2v_refuses_a_target():
    with pytest.raises(ValueError, match="never see the target"):
        Noise2Void(N2VConfig(base_filters=8))(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16))
    assert Noise2Void.supervised is False


class _PoisonedTargets(torch.utils.data.Dataset):
    """Real inputs, NaN targets: any GT that reaches a loss makes it NaN."""

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        item = dict(self.base[i])
        item["y"] = torch.full_like(item["y"], float("nan"))
        return item


@pytest.fixture(scope="module")
def zebrafish():
    from teachdiff.data import make_datasets

    return make_datasets("synthetic-zebrafish", quick=True, seed=0)


def _tiny_run(kind, **overrides):
    cfg, method_cfg = train_preset("synthetic-zebrafish", "quick", kind)
    fields = dict(epochs=1, steps_per_epoch=3, val_images=4)
    fields.update(overrides)
    return dataclasses.replace(cfg, **fields), method_cfg


def test_n2v_never_sees_the_ground_truth(tmp_path, zebrafish, monkeypatch):
    data = {"train": _PoisonedTargets(zebrafish["train"]), "val": zebrafish["val"]}
    targets = []
    real_loss = n2v_module.masked_mse

    def spy(pred, target, coords):
        targets.append(target)
        return real_loss(pred, target, coords)

    monkeypatch.setattr(n2v_module, "masked_mse", spy)
    cfg, method_cfg = _tiny_run("n2v")
    result = train(cfg, method_cfg, tmp_path / "n2v", datasets=data, progress=False)
    assert len(targets) == 3 and all(torch.isfinite(t).all() for t in targets)
    assert all(np.isfinite(row["train_loss"]) for row in result.history)
    # Control: the same poisoned data does reach a supervised model's loss.
    cfg, method_cfg = _tiny_run("care")
    with pytest.raises(FloatingPointError):
        train(cfg, method_cfg, tmp_path / "care", datasets=data, progress=False)


# ----------------------------------------------------------------------------------------------
# UNet-RCAN
# ----------------------------------------------------------------------------------------------


def test_unet_rcan_loss_matches_hand_computation():
    g = torch.Generator().manual_seed(0)
    p, y = torch.rand(2, 1, 16, 16, generator=g, dtype=torch.float64), torch.rand(2, 1, 16, 16, generator=g,
                                                                                    dtype=torch.float64)
    lap = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)
    total = 0.0
    for pi, yi in zip(p[:, 0].numpy(), y[:, 0].numpy()):
        lp = ndimage.correlate(pi, lap)[1:-1, 1:-1]
        ly = ndimage.correlate(yi, lap)[1:-1, 1:-1]
        total += np.sqrt(np.mean((pi - yi) ** 2) + 1e-6) + 0.05 * np.sqrt(np.mean((lp - ly) ** 2) + 1e-6)
    assert unet_rcan_loss(p, y).item() == pytest.approx(total / 2, rel=1e-10)


def test_unet_rcan_restores_any_size_and_trains_both_stages():
    method = _quick_method("rcan")
    assert method.restore(torch.zeros(1, 1, 30, 50)).shape == (1, 1, 30, 50)
    x, y = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
    method(x, y).backward()
    for stage in (method.net.unet, method.net.rcan):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in stage.parameters())


# ----------------------------------------------------------------------------------------------
# Presets and checkpoints
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, epochs, batch_size, lr", [
    ("care", 1000, 8, 4e-4), ("n2v", 100, 32, 2e-4), ("pix2pix", 5, 1, 2e-4), ("rcan", 200, 1, 1e-4)])
def test_paper_presets_are_the_papers_settings(kind, epochs, batch_size, lr):
    cfg, _ = train_preset("zebrafish", "paper", kind)
    assert (cfg.model, cfg.epochs, cfg.batch_size, cfg.lr, cfg.patch_size) == (kind, epochs, batch_size, lr, 256)
    quick, _ = train_preset("synthetic-zebrafish", "quick", kind)
    assert quick.patch_size == 64 and quick.epochs * quick.steps_per_epoch <= 300
    with pytest.raises(ValueError, match="'quick', 'colab' or 'paper'"):
        train_preset("zebrafish", "full", kind)


def test_n2v_presets_do_not_select_weights_with_the_ground_truth():
    for preset in ("paper", "quick"):
        cfg, _ = train_preset("zebrafish" if preset == "paper" else "synthetic-zebrafish", preset, "n2v")
        assert cfg.val_every >= cfg.epochs  # validated (with the GT) only once, after training


@pytest.mark.parametrize("saved, asked", [("care", "n2v"), ("n2v", "care"), ("pix2pix", "rcan"), ("rcan", "pix2pix"),
                                          ("care", "ddpm")])
def test_checkpoint_of_one_model_type_refuses_to_load_as_another(tmp_path, saved, asked):
    path = save_checkpoint(tmp_path / "m.pt", _quick_method(saved))
    with pytest.raises(ValueError, match=f"holds a '{saved}' model, not '{asked}'"):
        load_method(path, expect_kind=asked)


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_round_trip_restores_identically(tmp_path, kind):
    torch.manual_seed(0)
    method = _quick_method(kind).eval()
    path = save_checkpoint(tmp_path / "m.pt", method)
    loaded = load_method(path, expect_kind=kind)
    assert type(loaded) is type(method) and loaded.config == method.config
    prepare_network(method, "cpu", training=False)  # the memory layout load_method gives
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    assert torch.equal(method.restore(x), loaded.restore(x))


def test_weights_of_another_type_under_a_forged_kind_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", _quick_method("rcan"))
    payload = torch.load(path, weights_only=False)
    payload["kind"], payload["method_config"] = "care", dataclasses.asdict(CAREConfig())
    torch.save(payload, path)
    with pytest.raises(ValueError, match="does not fit"):
        load_method(path)


def test_restore_rejects_bad_input():
    method = _quick_method("care")
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        method.restore(torch.zeros(64, 64))
    with pytest.raises(ValueError, match="float"):
        method.restore(torch.zeros(1, 1, 64, 64, dtype=torch.uint8))


# ----------------------------------------------------------------------------------------------
# Classical references
# ----------------------------------------------------------------------------------------------


def test_gaussian_restore_matches_scipy():
    x = torch.rand(3, 1, 40, 50, dtype=torch.float64) * 2 - 1
    expected = np.stack([ndimage.gaussian_filter(img, 1.5, mode="reflect", truncate=4.0) for img in x[:, 0].numpy()])
    np.testing.assert_allclose(gaussian_restore(x, 1.5)[:, 0].numpy(), np.clip(expected, -1, 1), atol=1e-12)


def test_noise_sigma_estimate_recovers_known_white_noise():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:256, :256]
    smooth = 0.5 * np.sin(xx / 15) * np.cos(yy / 20)
    for sigma in (0.02, 0.1, 0.3):
        noisy = smooth + sigma * rng.standard_normal(smooth.shape)
        assert estimate_noise_sigma(noisy) == pytest.approx(sigma, rel=0.05)


def test_classical_filters_beat_raw_input_and_fit_picks_the_lowest_validation_mae(zebrafish):
    val, test = zebrafish["val"], zebrafish["test"]
    xv, yv = (torch.stack([val[i][k] for i in range(len(val))]) for k in ("x", "y"))
    xt, yt = (torch.stack([test[i][k] for i in range(len(test))]) for k in ("x", "y"))
    mae = lambda p, y: float(((p - y).abs() * 127.5).mean())
    sigmas = (0.5, 1.0, 2.0, 4.0)
    gauss = GaussianFilter.fit(xv, yv, sigmas)
    assert gauss.sigma == sigmas[int(np.argmin([mae(gaussian_restore(xv, s), yv) for s in sigmas]))]
    nlm = NonLocalMeans.fit(xv, yv, (0.6, 1.0))
    assert mae(gauss.restore(xt), yt) < mae(xt, yt)
    assert mae(nlm.restore(xt), yt) < mae(xt, yt)
    assert mae(nlm_restore(xt, 1.0), yt) < mae(xt, yt)
    with pytest.raises(ValueError, match="positive"):
        gaussian_restore(xt, 0)


# ----------------------------------------------------------------------------------------------
# Training through the shared trainer
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind, steps", [("care", 60), ("n2v", 120), ("pix2pix", 60), ("rcan", 60)])
def test_quick_training_beats_raw_input_on_held_out_patches(tmp_path, zebrafish, kind, steps):
    """A quarter to a half of the quick preset's steps (Noise2Void, with ~8 blind spots per patch,
    learns slowest); the quick presets themselves are measured in benchmarks/bench_baselines.py."""
    cfg, method_cfg = _tiny_run(kind, epochs=2, steps_per_epoch=steps // 2)
    result = train(cfg, method_cfg, tmp_path / kind, datasets=zebrafish, progress=False)
    method = load_method(result.best_checkpoint, expect_kind=kind)
    test = zebrafish["test"]
    x, y = (torch.stack([test[i][k] for i in range(len(test))]) for k in ("x", "y"))
    mae = lambda p: float(((p.clamp(-1, 1) - y).abs() * 127.5).mean())
    restored = method.restore(x)
    print(f"{kind}: test MAE input {mae(x):.2f} -> restored {mae(restored):.2f}")
    assert mae(restored) < 0.8 * mae(x)
