"""The MP-U-Net: parameter count, magnitude preservation, weight normalisation, inputs, learning."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from teachdiff.core.diffusion import NoiseSchedule, ddim_sample, ddpm_sample, training_loss
from teachdiff.core.unet import (
    MPConv,
    MPFourier,
    MPUNet,
    UNetConfig,
    count_parameters,
    magnitude_probe,
    mp_cat,
    mp_silu,
    mp_sum,
    normalize,
)


def test_paper_unet_has_64m_parameters():
    model = MPUNet(UNetConfig.paper())
    n = count_parameters(model)
    assert abs(n - 64.1e6) / 64.1e6 < 0.03, n
    # The same count by hand from the architecture: conv3x3 = 9*cin*cout, linear = cin*cout, ...
    assert n == _parameters_by_hand(UNetConfig.paper())


def _parameters_by_hand(c: UNetConfig) -> int:
    widths = [c.channels * m for m in c.channel_mult]
    emb = max(widths)

    def block(cin, cout, flavor, attention):
        conv0_in = cout if flavor == "enc" else cin
        n = 9 * conv0_in * cout + emb * cout + 9 * cout * cout + 1  # + emb_gain
        n += cin * cout if cin != cout else 0
        n += 4 * cout * cout if attention else 0  # qkv (3 c^2) + proj (c^2)
        return n

    total = widths[0] * emb  # emb_noise linear
    total += 9 * (c.in_channels + 1) * widths[0]  # first conv, with the ones channel
    width, skips = widths[0], [widths[0]]
    for level, w in enumerate(widths):
        if level:
            total += block(width, width, "enc", False)
            skips.append(width)
        for _ in range(c.num_blocks):
            total += block(width, w, "enc", False)
            width = w
            skips.append(width)
    for level, w in reversed(list(enumerate(widths))):
        if level == len(widths) - 1:
            total += block(width, width, "dec", True) + block(width, width, "dec", False)
        else:
            total += block(width, width, "dec", False)
        for _ in range(c.num_blocks + 1):
            total += block(width + skips.pop(), w, "dec", False)
            width = w
    return total + 9 * width * c.target_channels + 1  # out conv + out gain


def test_attention_follows_resolution_not_level():
    cfg = UNetConfig.small()  # 64x64 patches, levels 64/32/16, attention at 16
    all_blocks = MPUNet(dataclasses.replace(cfg, attn_placement="all"))
    with_attn = [n for n, b in all_blocks.dec.items() if b.num_heads] + [n for n, b in all_blocks.enc.items()
                                                                       if getattr(b, "num_heads", 0)]
    assert with_attn and all(n.startswith("16x16") for n in with_attn)
    moved = MPUNet(dataclasses.replace(cfg, attn_resolutions=(32,), attn_placement="all"))
    assert all(n.startswith("32x32") for n, b in moved.enc.items() if getattr(b, "num_heads", 0))
    assert MPUNet(cfg).dec["16x16_in0"].num_heads == 128 // 32


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_magnitude_preserved_at_initialisation(name):
    rms = magnitude_probe(MPUNet(getattr(UNetConfig, name)()))
    assert len(rms) > 5
    for layer, value in rms.items():
        assert 0.5 <= value <= 2.0, (layer, value)


@pytest.mark.slow
def test_paper_unet_magnitude_preserved_at_256():
    torch.manual_seed(0)
    rms = magnitude_probe(MPUNet(UNetConfig.paper()), batch_size=1)
    assert any(k.startswith("dec.32x32") for k in rms)
    for layer, value in rms.items():
        assert 0.5 <= value <= 2.0, (layer, value)


def test_standard_conv_does_not_preserve_magnitude():
    """The contrast the book shows: a default-initialised conv + SiLU shrinks the signal."""
    torch.manual_seed(0)
    x = torch.randn(4, 64, 16, 16)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    h = x
    for _ in range(6):
        h = F.silu(conv(h))
    assert h.square().mean().sqrt() < 0.2
    mp = MPConv(64, 64, (3, 3))
    h = x
    for _ in range(6):
        h = mp_silu(mp(h))
    assert 0.5 < h.square().mean().sqrt() < 2


def test_primitives_match_their_formulas():
    torch.manual_seed(0)
    a, b = torch.randn(8, 3, 5, 5), torch.randn(8, 5, 5, 5)
    w = torch.randn(4, 3, 3, 3) * 7
    wn = normalize(w)
    assert torch.allclose(wn.flatten(1).square().mean(1), torch.ones(4), atol=1e-3)
    x = torch.randn(100000)
    assert mp_silu(x).square().mean().sqrt().item() == pytest.approx(1.0, abs=0.02)
    s = mp_sum(a, a.flip(0), t=0.3)
    assert torch.allclose(s, (0.7 * a + 0.3 * a.flip(0)) / math.sqrt(0.49 + 0.09), atol=1e-6)
    c = mp_cat(a, b, dim=1, t=0.5)
    scale = math.sqrt(8 / 0.5)
    assert torch.allclose(c[:, :3], a * scale * 0.5 / math.sqrt(3), atol=1e-6)
    assert torch.allclose(c[:, 3:], b * scale * 0.5 / math.sqrt(5), atol=1e-6)
    big = mp_cat(torch.randn(64, 16, 8, 8), torch.randn(64, 48, 8, 8), t=0.5)
    assert big.square().mean().sqrt().item() == pytest.approx(1.0, abs=0.05)
    fourier = MPFourier(4096)
    emb = fourier(torch.tensor([0.3, 0.9]))
    expected = math.sqrt(2) * torch.cos(torch.tensor([0.3, 0.9])[:, None] * fourier.freqs + fourier.phases)
    assert torch.allclose(emb, expected, atol=1e-5)
    assert emb.square().mean().sqrt().item() == pytest.approx(1.0, abs=0.05)


def test_forced_weight_normalisation():
    torch.manual_seed(0)
    conv = MPConv(8, 4, (3, 3))
    opt = torch.optim.SGD(conv.parameters(), lr=10.0)
    x = torch.randn(2, 8, 6, 6)
    conv(x).square().sum().backward()
    opt.step()
    unit_rms = conv.weight.detach().flatten(1).square().mean(1).sqrt()
    assert not torch.allclose(unit_rms, torch.ones(4), atol=1e-2)  # the step grew the weights
    conv.train()
    out = conv(x)
    unit_rms = conv.weight.detach().flatten(1).square().mean(1).sqrt()
    assert torch.allclose(unit_rms, torch.ones(4), atol=1e-3)  # re-normalised in place
    with torch.no_grad():
        conv.weight.mul_(123.0)
    conv.eval()
    assert torch.allclose(conv(x), out, atol=1e-3)  # output does not depend on the stored scale
    assert torch.allclose(conv.weight.flatten(1).square().mean(1).sqrt(), torch.full((4,), 123.0), rtol=1e-3)


def test_output_shape_any_valid_size_and_zero_initial_prediction():
    model = MPUNet(UNetConfig.tiny())
    for h, w in [(64, 64), (32, 48), (96, 64)]:
        x, y = torch.randn(2, 1, h, w), torch.randn(2, 1, h, w)
        out = model(x, y, torch.tensor([0.5, 0.1]))
        assert out.shape == y.shape
        assert torch.count_nonzero(out) == 0  # the output gain starts at 0 (EDM2)


@pytest.mark.parametrize(
    "x_shape, y_shape, dtype, nan, match",
    [
        ((1, 1, 32, 32), (1, 1, 32, 16), torch.float32, False, "same batch size"),
        ((1, 3, 32, 32), (1, 1, 32, 32), torch.float32, False, "channels"),
        ((1, 1, 34, 34), (1, 1, 34, 34), torch.float32, False, "not divisible by 4"),
        ((1, 1, 32, 32), (1, 1, 32, 32), torch.float32, True, "NaN"),
        ((1, 1, 32, 32), (1, 1, 32, 32), torch.uint8, False, "integer dtype"),
        ((1, 32, 32), (1, 32, 32), torch.float32, False, r"\(N, C, H, W\)"),
    ],
)
def test_bad_inputs_raise_clear_errors(x_shape, y_shape, dtype, nan, match):
    model = MPUNet(UNetConfig.tiny())
    x, y = torch.zeros(x_shape, dtype=dtype), torch.zeros(y_shape, dtype=dtype)
    if nan:
        x[..., 0, 0] = float("nan")
    with pytest.raises(ValueError, match=match):
        model(x, y, 0.5)


def test_config_round_trip_and_bad_config():
    c = UNetConfig.small()
    assert UNetConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="multiple of"):
        MPUNet(dataclasses.replace(c, image_size=66))


def _overfit_single_pair(steps=300):
    torch.manual_seed(0)
    model = MPUNet(dataclasses.replace(UNetConfig.tiny(), image_size=32))
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    y0 = (0.8 * torch.sin(3 * xx) * torch.cos(2 * yy))[None, None]
    x = (y0 + 0.5 * torch.randn_like(y0)).clamp(-1, 1)
    schedule = NoiseSchedule()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        loss = training_loss(model, x.expand(8, -1, -1, -1), y0.expand(8, -1, -1, -1), schedule, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model.eval(), x, y0, schedule, losses


@pytest.fixture(scope="module")
def overfit():
    return _overfit_single_pair()


def test_tiny_model_overfits_one_pair(overfit):
    _, x, y0, _, losses = overfit
    first, last = sum(losses[:10]) / 10, sum(losses[-20:]) / 20
    print(f"loss {first:.3f} -> {last:.3f}")
    assert last < first / 10


def test_samplers_reproduce_the_overfitted_target(overfit):
    model, x, y0, schedule, _ = overfit
    input_mae = (x - y0).abs().mean().item()
    ddpm = ddpm_sample(model, x, schedule, generator=torch.Generator().manual_seed(1))[:, 0]
    ddim = ddim_sample(model, x, schedule, steps=20, generator=torch.Generator().manual_seed(1))[:, 0]
    print(f"MAE input {input_mae:.3f}  DDPM {(ddpm - y0).abs().mean():.3f}  DDIM {(ddim - y0).abs().mean():.3f}")
    assert (ddpm - y0).abs().mean().item() < 0.1 < input_mae
    assert (ddim - y0).abs().mean().item() < 0.1


def test_same_seed_same_samples_different_seed_different(overfit):
    model, x, _, schedule, _ = overfit
    a = ddim_sample(model, x, NoiseSchedule(T=20), steps=5, n_samples=2, eta=1.0, generator=torch.Generator().manual_seed(7))
    b = ddim_sample(model, x, NoiseSchedule(T=20), steps=5, n_samples=2, eta=1.0, generator=torch.Generator().manual_seed(7))
    c = ddim_sample(model, x, NoiseSchedule(T=20), steps=5, n_samples=2, eta=1.0, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert not torch.allclose(a[:, 0], a[:, 1])  # the samples of one batched call differ
    d = ddpm_sample(model, x, NoiseSchedule(T=20), generator=torch.Generator().manual_seed(7))
    e = ddpm_sample(model, x, NoiseSchedule(T=20), generator=torch.Generator().manual_seed(7))
    assert torch.equal(d, e)
