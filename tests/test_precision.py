"""The precision policy, reduced-precision sampling and training, and the colab presets."""

import dataclasses

import pytest
import torch

from teachdiff.core import precision
from teachdiff.methods.pix2pix import Pix2Pix, Pix2PixConfig
from teachdiff.core.diffusion import NoiseSchedule, ddim_sample, predict_noise
from teachdiff.methods.ddpm import DiffusionConfig
from teachdiff.core.precision import Precision, TrainingPrecision
from teachdiff.training.config import PRESETS, TrainConfig, estimated_minutes
from teachdiff.training.presets import chapter_preset, train_preset
from teachdiff.store.checkpoint import load_checkpoint
from teachdiff.training.loop import train
from teachdiff.core.unet import MPUNet, UNetConfig

from test_train import SmallPairs, _config  # noqa: F401  (the training tests' data and config)

TINY = DiffusionConfig(unet=dataclasses.replace(UNetConfig.tiny(), image_size=32), T=50, val_steps=3)


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CUDA device of a given compute capability, without a GPU; the TF32 switches restored after."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32

    def set_card(major, minor, bf16):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, minor))
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "mock GPU")

    yield set_card
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("capability, bf16, mode, tf32", [
    ((7, 5), False, "fp16", False),  # T4
    ((7, 0), False, "fp16", False),  # V100
    ((8, 0), True, "bf16", True),  # A100
    ((8, 9), True, "bf16", True),  # L4
    ((9, 0), True, "bf16", True),  # H100
])
def test_policy_follows_compute_capability(fake_gpu, capability, bf16, mode, tf32):
    fake_gpu(*capability, bf16)
    chosen = precision.resolve("auto", "cuda")
    assert (chosen.mode, chosen.tf32) == (mode, tf32)
    assert chosen.needs_grad_scaler == (mode == "fp16")
    assert torch.backends.cuda.matmul.allow_tf32 == tf32 and torch.backends.cudnn.allow_tf32 == tf32


def test_explicit_mode_overrides_policy(fake_gpu):
    fake_gpu(9, 0, True)
    strict = precision.resolve("fp32", "cuda")
    assert (strict.mode, strict.tf32) == ("fp32", False) and not torch.backends.cuda.matmul.allow_tf32
    assert precision.resolve("fp16", "cuda").mode == "fp16"
    with precision.use_precision("fp32"):  # what --precision fp32 sets
        assert precision.resolve("auto", "cuda").mode == "fp32"
    assert precision.resolve("auto", "cuda").mode == "bf16"
    fake_gpu(7, 5, False)
    with pytest.raises(ValueError, match="no bfloat16 support"):
        precision.resolve("bf16", "cuda")


def test_cpu_defaults_to_fp32_and_bad_modes_are_refused():
    assert precision.resolve("auto", "cpu") == Precision("fp32", "cpu", False)
    assert precision.resolve("bf16", "cpu").dtype == torch.bfloat16
    with pytest.raises(ValueError, match="auto, fp32, bf16, fp16"):
        precision.resolve("half", "cpu")
    with pytest.raises(ValueError, match="auto, fp32, bf16, fp16"):
        precision.set_precision("tf32")
    assert precision.get_precision() == "auto"


def test_bf16_sample_matches_fp32_within_tolerance():
    """bfloat16 keeps 8 significant bits (relative rounding 2^-9 = 0.2 % per operation).

    One network call in bf16 autocast must be within 2 % (relative L2) of fp32. A 10-step DDIM
    sample (y0 clamped, the paper's setting) on the [-1, 1] scale must be within 0.01 on average
    and 0.05 at the 99th percentile: a random network drives most pixels into the clamp at +-1,
    and a pixel right at that boundary may flip, so the maximum is no useful bound. Both must
    also differ from fp32, or autocast was not on."""
    torch.manual_seed(0)
    net = MPUNet(dataclasses.replace(UNetConfig.tiny(), image_size=32)).eval()
    with torch.no_grad():
        net.out_conv.gain.fill_(1.0)  # it starts at 0, which would predict 0 in any precision
    schedule = NoiseSchedule(T=50)
    x, y_t = torch.rand(2, 1, 32, 32) * 2 - 1, torch.randn(2, 1, 32, 32)
    eps = predict_noise(net, x, y_t, 0.5)
    ref = ddim_sample(net, x, schedule, steps=10, generator=torch.Generator().manual_seed(1))
    with precision.use_precision("bf16"):
        eps_low = predict_noise(net, x, y_t, 0.5)
        low = ddim_sample(net, x, schedule, steps=10, generator=torch.Generator().manual_seed(1))
    assert eps_low.dtype == low.dtype == torch.float32
    assert 0 < ((eps_low - eps).norm() / eps.norm()).item() < 0.02
    diff = (low - ref).abs().flatten()
    assert 0 < diff.mean() < 0.01 and diff.quantile(0.99) < 0.05


def test_grad_scaler_unscales_before_clipping():
    """With S = 2^10 the scaled gradients are 1024 times too large; clipping must see the true
    norm, so a gradient of norm 3 clipped to 1 ends with norm 1 (not 1/1024 of it, nor 1024)."""
    amp = TrainingPrecision(Precision("fp16", "cpu"))
    amp.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    w = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([w], lr=1.0)
    loss = (w * torch.tensor([3.0, 0.0])).sum()  # gradient (3, 0)
    amp.backward(loss)
    assert w.grad[0].item() == 3.0 * 2**10
    amp.step([opt], [w], max_norm=1.0)
    amp.update()
    assert torch.allclose(w.detach(), torch.tensor([-1.0, 0.0]), atol=1e-5)


def test_fp16_training_with_grad_scaler_runs_and_resumes_exactly(tmp_path):
    data = {"train": SmallPairs(16, 0), "val": SmallPairs(4, 100)}
    cfg = _config(precision="fp16")
    full = train(cfg, TINY, tmp_path / "full", datasets=data, progress=False)
    state = load_checkpoint(full.last_checkpoint)
    assert state["grad_scaler"]["scale"] > 0 and state["step"] == 8
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    train(dataclasses.replace(cfg, max_steps=3), TINY, tmp_path / "split", datasets=data, progress=False)
    train(cfg, TINY, tmp_path / "split", resume=True, datasets=data, progress=False)
    a, b = state["model"], load_checkpoint(tmp_path / "split" / "last.pt")["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    fp32 = load_checkpoint(train(_config(), TINY, tmp_path / "fp32", datasets=data, progress=False).last_checkpoint)
    assert a["unet.out_conv.gain"] != 0  # it starts at 0: the scaler let steps through
    assert not torch.equal(fp32["model"]["unet.out_conv.gain"], a["unet.out_conv.gain"])  # fp16 was on


def test_pix2pix_custom_step_under_fp16_grad_scaler():
    """The scaler starts at S = 2^16; steps whose fp16 gradients overflow are skipped and S halved,
    until the steps go through and both networks change."""
    torch.manual_seed(0)
    method = Pix2Pix(Pix2PixConfig(n_down=5, ngf=8, ndf=8))
    opts = method.make_optimizers(2e-4, 0.0)
    amp = TrainingPrecision(Precision("fp16", "cpu"))
    g0 = [p.clone() for p in method.generator.parameters()]
    d0 = [p.clone() for p in method.discriminator.parameters()]
    x, y = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
    for _ in range(12):
        logs = method.training_step(x, y, opts, amp=amp)
        amp.update()
        assert torch.isfinite(torch.tensor([logs["loss"], logs["loss_d"]])).all()
        if any(not torch.equal(a, b) for a, b in zip(g0, method.generator.parameters())):
            break
    assert any(not torch.equal(a, b) for a, b in zip(g0, method.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, method.discriminator.parameters()))
    assert amp.scaler.get_scale() < 2.0**16


def test_compile_is_in_place_and_keeps_checkpoint_keys(monkeypatch):
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(type(self).__name__))
    method = Pix2Pix(Pix2PixConfig(n_down=5, ngf=8, ndf=8))
    keys = list(method.state_dict())
    assert precision.prepare_network(method, "cpu", compile=True) is method
    assert sorted(compiled) == ["PatchDiscriminator", "UNetGenerator"] and list(method.state_dict()) == keys


def test_layout_channels_last_where_it_pays():
    """Channels-last for CUDA and for CPU inference; CPU training and channels_last=False stay in
    the default layout, also for a network loaded channels-last (a fine-tuning start)."""

    def layout(net):
        weight = net.enc["32x32_conv"].weight
        return "channels_last" if weight.is_contiguous(memory_format=torch.channels_last) else "default"

    def prepared(device, **kwargs):  # only the layout changes: the network stays on the CPU
        return layout(precision.prepare_network(MPUNet(TINY.unet), device, **kwargs))

    assert prepared("cuda") == prepared("cuda", training=False) == "channels_last"
    assert prepared("cpu", training=False) == "channels_last"
    assert prepared("cpu") == prepared("cuda", channels_last=False) == "default"
    loaded = precision.prepare_network(MPUNet(TINY.unet), "cpu", training=False)
    assert layout(precision.prepare_network(loaded, "cpu")) == "default"


def test_channels_last_inference_matches_default_layout():
    torch.manual_seed(0)
    net = MPUNet(TINY.unet).eval()
    with torch.no_grad():  # the learned gains start at 0, which would make the output 0
        for gain in (p for p in net.parameters() if p.ndim == 0):
            gain.fill_(1.0)
    x, y_t, level = torch.rand(3, 1, 32, 32) * 2 - 1, torch.randn(3, 1, 32, 32), torch.rand(3)
    with torch.inference_mode():
        expected = net(x, y_t, level)
        got = precision.prepare_network(net, "cpu", training=False)(x, y_t, level)
    assert expected.abs().mean() > 0.1
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("model", ["ddpm", "care", "n2v", "pix2pix", "rcan"])
def test_colab_presets_keep_paper_sizes_and_fit_an_hour_on_a_t4(model):
    assert "colab" in PRESETS
    cfg, _ = train_preset("synthetic-microtubules", "colab", model)
    paper, _ = train_preset("synthetic-microtubules", "paper", model)
    assert cfg.preset == "colab" and cfg.patch_size == paper.patch_size == 256
    low = {"ddpm": 0.25}.get(model, 0.05)  # the pessimistic end of the assumed MFU
    assert estimated_minutes(cfg, 65 * low) <= 60


def test_estimated_minutes_is_steps_times_flops_over_throughput():
    cfg, _ = train_preset("zebrafish", "colab")
    # 4000 steps x 8 images x 1.26 TFLOP at 30 % of 65 TFLOP/s, computed by hand
    assert estimated_minutes(cfg, 19.5) == pytest.approx(4000 * 8 * 1.26 / 19.5 / 60)
    assert estimated_minutes(dataclasses.replace(cfg, patch_size=128), 19.5) == pytest.approx(
        4000 * 8 * 1.26 / 4 / 19.5 / 60)
    assert estimated_minutes(TrainConfig(steps_per_epoch=None), 19.5) is None


def test_chapter_preset_by_mode(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TEACHDIFF_RUNS", str(tmp_path))
    monkeypatch.setenv("TEACHDIFF_QUICK", "1")
    assert chapter_preset("synthetic-microtubules") == "quick" and capsys.readouterr().out == ""
    monkeypatch.setenv("TEACHDIFF_QUICK", "0")
    assert chapter_preset("synthetic-microtubules", "ddpm", "care") == "colab"
    out = capsys.readouterr().out
    assert "preset 'colab'" in out and "ddpm: 4000 steps of 8 x 256², training takes ≈ 30-41 min" in out and "care:" in out
    assert "min on a Colab T4" in out


def test_eta_measured_after_warmup_steps(monkeypatch):
    """The trainer's ETA: seconds per step over 20 steps after 3 warm-up steps, times the steps left."""
    from teachdiff.training import loop as train_module

    now = {"t": 0.0}
    monkeypatch.setattr(train_module.time, "monotonic", lambda: now["t"])
    eta = train_module._ETA(first_step=0, total_steps=1000, max_steps=None)
    messages = []
    for step in range(1, 40):
        now["t"] += 30.0 if step <= 3 else 1.5  # slow warm-up (compilation), then 1.5 s per step
        messages.append(eta.update(step))
    printed = [m for m in messages if m]
    assert len(printed) == 1 and messages.index(printed[0]) == 22  # at step 23
    assert "1.5 s/step" in printed[0] and f"≈ {1.5 * 1000 / 60:.1f} min" in printed[0]
    assert train_module._ETA(first_step=0, total_steps=10, max_steps=None).remaining == 10
