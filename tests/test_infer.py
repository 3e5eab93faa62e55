"""Sampling and inference (issue 5, part 3): DDPM-avg, uncertainty maps (§S5, §S5.1), tiling.

Two kinds of model keep these tests fast and their expected values known:

- ``GaussianOracle``: the exact noise predictor when every target pixel is y0 ~ N(x, sigma^2)
  independently. Then E[y0 | y_t] has a closed form, DDPM samples are draws from N(x, sigma^2)
  and their mean converges to x at the rate sigma^2 / N: an honest "model" whose sampling
  variance comes only from the sampler's noise. It is pixel-local.
- ``Hybrid``: that oracle plus a randomly initialised MP-U-Net term, which gives the noise
  prediction a real receptive field (about +-25 pixels) and zero padding at tile edges, the
  thing that makes tiled inference differ from whole-image inference.
"""

import math
import types

import numpy as np
import pytest
import scipy.ndimage
import torch

from teachdiff.core.diffusion import NoiseSchedule, _randn, ddim_sample, ddpm_sample
from teachdiff.core.noise import NoiseField
from teachdiff.core.tiling import blend_window, default_overlap, pad_reflect, plan_tiles, tiled_apply
from teachdiff.inference.restore import ddpm_avg, restore, restore_image, summarize_samples, uncertainty_maps
from teachdiff.inference.budget import default_batch_size, default_tile
from teachdiff.inference.sampling import sample, sample_tiled
from teachdiff.core.progress import CallProgress
from teachdiff.core.unet import MPUNet, UNetConfig

SIGMA = 0.2


pytestmark = pytest.mark.usefixtures("one_thread")


class GaussianOracle(torch.nn.Module):
    r"""eps_hat = (y_t - \sqrt{ab} E[y0|y_t]) / \sqrt{1 - ab}, E[y0|y_t] = x + sigma^2 \sqrt{ab} (y_t - \sqrt{ab} x) / (ab sigma^2 + 1 - ab)."""

    def __init__(self, sigma=SIGMA, multiple=1):
        super().__init__()
        self.sigma = sigma
        self.config = UNetConfig(image_size=32, channel_mult=(1,) * (int(math.log2(multiple)) + 1))

    def forward(self, x, y_t, alpha_bar):
        ab = alpha_bar.reshape(-1, 1, 1, 1)
        posterior_mean = x + self.sigma**2 * ab.sqrt() / (ab * self.sigma**2 + 1 - ab) * (y_t - ab.sqrt() * x)
        return (y_t - ab.sqrt() * posterior_mean) / (1 - ab).sqrt()


class Hybrid(GaussianOracle):
    def __init__(self, strength=0.3):
        super().__init__()
        torch.manual_seed(0)
        self.net = MPUNet(UNetConfig(image_size=32, channels=8, channel_mult=(1, 2), num_blocks=1,
                                     attn_resolutions=(), dropout=0.0, channels_per_head=8)).eval()
        with torch.no_grad():
            for p in self.net.parameters():
                if p.ndim == 0:  # the learned gains start at 0; open them so the net matters
                    p.fill_(1.0)
        self.config = self.net.config
        self.strength = strength

    def forward(self, x, y_t, alpha_bar):
        return super().forward(x, y_t, alpha_bar) + self.strength * self.net(x, y_t, alpha_bar)


def tiny_unet():
    torch.manual_seed(0)
    return MPUNet(UNetConfig.tiny())


# ----------------------------------------------------------------------------------------------
# Samplers
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_injected_noise_source_equals_generator_draws(sampler):
    """The samplers' ``noise=`` hook (used for position-keyed noise) changes only where the
    Gaussian draws come from: fed the generator's numbers in call order, the result is the same."""
    model, schedule = Hybrid(), NoiseSchedule(T=10)
    x = torch.rand(2, 1, 16, 16) - 0.5
    run = (lambda **kw: ddpm_sample(model, x, schedule, **kw)) if sampler == "ddpm" else \
        (lambda **kw: ddim_sample(model, x, schedule, steps=4, eta=0.5, **kw))
    expected = run(generator=torch.Generator().manual_seed(3))[:, 0]
    g = torch.Generator().manual_seed(3)
    steps_seen = []

    def source(step):
        steps_seen.append(step)
        return _randn(x.shape, g, "cpu")

    got = run(noise=source)[:, 0]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert len(set(steps_seen)) == len(steps_seen)  # every draw has its own step key


def test_noise_field_is_standard_normal_and_crop_consistent():
    field = NoiseField(7)
    z = field.crop(step=0, height=200, width=200)
    assert abs(z.mean().item()) < 0.02 and abs(z.std().item() - 1) < 0.02
    # Neighbouring pixels, other steps, samples and seeds are uncorrelated.
    for other in (z[:, :, 1:], field.crop(1, 200, 200)[:, :, :-1], field.crop(0, 200, 200, sample=1)[:, :, :-1],
                  NoiseField(8).crop(0, 200, 200)[:, :, :-1]):
        assert abs(torch.corrcoef(torch.stack([z[:, :, :-1].flatten(), other.flatten()]))[0, 1]) < 0.02
    # A crop is the same wherever it is asked for.
    torch.testing.assert_close(field.crop(0, 20, 30, top=5, left=-7), torch.cat(
        [field.crop(0, 20, 7, top=5, left=-7), field.crop(0, 20, 23, top=5, left=0)], dim=2))


def test_sample_shape_odd_size_and_independent_of_batch_size():
    model, schedule = GaussianOracle(multiple=4), NoiseSchedule(T=8)
    x = torch.rand(2, 1, 13, 18) - 0.5
    a = sample(model, x, schedule, n_samples=3, batch_size=6, seed=1, progress=False)
    b = sample(model, x, schedule, n_samples=3, batch_size=2, seed=1, progress=False)
    assert a.shape == (2, 3, 1, 13, 18)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, 0], a[:, 1])  # the samples differ
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    torch.testing.assert_close(sample(model, x, schedule, generator=g1, progress=False),
                               sample(model, x, schedule, generator=g2, progress=False))


def test_sample_puts_a_unet_in_eval_mode_and_restores_it():
    model, schedule = tiny_unet(), NoiseSchedule(T=3)
    model.train()
    a = sample(model, torch.zeros(1, 1, 16, 16), schedule, seed=0, progress=False)
    b = sample(model, torch.zeros(1, 1, 16, 16), schedule, seed=0, progress=False)
    assert model.training and torch.equal(a, b)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sampler="euler"), "sampler"), (dict(n_samples=0), "n_samples"), (dict(batch_size=0), "batch_size"),
    (dict(sampler="ddim", steps=99), "steps"), (dict(seed=1, generator=torch.Generator()), "either"),
])
def test_sample_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample(GaussianOracle(), torch.zeros(1, 1, 8, 8), NoiseSchedule(T=4), progress=False, **kwargs)
    with pytest.raises(ValueError, match="to_model_range"):
        sample(GaussianOracle(), torch.zeros(1, 1, 8, 8, dtype=torch.uint8), NoiseSchedule(T=4))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        sample(GaussianOracle(), torch.zeros(8, 8), NoiseSchedule(T=4))


# ----------------------------------------------------------------------------------------------
# DDPM-avg and uncertainty maps
# ----------------------------------------------------------------------------------------------


def test_ddpm_avg_of_identical_samples_is_the_sample_with_zero_std_and_entropy():
    one = torch.rand(2, 1, 1, 8, 8) * 2 - 1
    result = summarize_samples(one.expand(2, 15, 1, 8, 8))
    torch.testing.assert_close(result.mean, one[:, 0])
    torch.testing.assert_close(result.sample, one[:, 0])
    assert result.std.abs().max() == 0 and result.entropy.abs().max() == 0
    assert result.n_samples == 15 and result.samples is None


def test_std_map_is_eq15_on_the_0_255_scale():
    samples = torch.rand(1, 15, 1, 4, 4) * 2 - 1
    values = ((samples + 1) / 2 * 255).numpy()[0, :, 0]  # 0..255
    expected = np.sqrt(((values - values.mean(0)) ** 2).sum(0) / (255**2 * 15))
    std, _ = uncertainty_maps(samples)
    np.testing.assert_allclose(std[0, 0].numpy(), expected, rtol=1e-5)


def test_entropy_map_is_eq16_by_hand():
    to_model = lambda v: torch.tensor(v, dtype=torch.float32) / 255 * 2 - 1  # noqa: E731
    # pixel 0: K = 3 values, equally frequent -> ln 3; pixel 1: all equal -> 0;
    # pixel 2: {10: 2, 20: 1, 30: 1} -> -(1/2 ln 1/2 + 2 * 1/4 ln 1/4); pixel 3: values that round alike.
    columns = [[5, 9, 200, 5, 9, 200], [7] * 6, [10, 10, 20, 30, 10, 10], [100.2, 99.8, 100.4, 100, 99.6, 100]]
    samples = to_model(np.array(columns).T[None, :, None, None, :])  # (1, 6, 1, 1, 4)
    _, entropy = uncertainty_maps(samples)
    p = np.array([4, 1, 1]) / 6
    expected = [math.log(3), 0.0, -(p * np.log(p)).sum(), 0.0]
    np.testing.assert_allclose(entropy[0, 0, 0].numpy(), expected, atol=1e-6)
    # K equally frequent values out of N = 15 (K = 1, 3, 5, 15): ln K.
    for k in (1, 3, 5, 15):
        values = to_model(np.repeat(np.arange(k) * 10.0, 15 // k))[None, :, None, None, None]
        assert uncertainty_maps(values)[1].item() == pytest.approx(math.log(k), abs=1e-6)


def test_uncertainty_maps_bad_shape():
    with pytest.raises(ValueError, match="n_samples"):
        uncertainty_maps(torch.zeros(1, 1, 8, 8))


def test_mean_of_15_samples_is_closer_to_gt_than_one_sample():
    """With the exact Gaussian model, samples are GT + N(0, sigma^2): averaging 15 cuts the error."""
    gt = (torch.rand(2, 1, 32, 32) - 0.5)
    result = restore(GaussianOracle(), gt, NoiseSchedule(T=50), n_samples=15, seed=0, progress=False,
                     keep_samples=True)
    mse_one = (result.sample - gt).square().mean().item()
    mse_mean = (result.mean - gt).square().mean().item()
    print(f"MSE one sample {mse_one:.5f}, DDPM-avg of 15 {mse_mean:.5f}, sigma^2 = {SIGMA**2}")
    assert mse_mean < mse_one / 5  # ideal ratio 15
    assert mse_one == pytest.approx(SIGMA**2, rel=0.25)  # the sampler reproduces the data spread
    # Eq. 15 in [-1, 1] units: the std map is sigma * 127.5 / 255 = sigma / 2 on average.
    assert result.std.mean().item() == pytest.approx(SIGMA / 2, rel=0.2)
    assert ddpm_avg(GaussianOracle(), gt, NoiseSchedule(T=50), n_samples=15, seed=0,
                    progress=False).equal(result.mean)


# ----------------------------------------------------------------------------------------------
# Tiling
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size, overlap, halo", [(40, 8, 0), (57, 16, 4), (10, 4, 2), (57, 16, 8)])
def test_blend_windows_sum_to_one(size, overlap, halo):
    tile = 32 if size > 32 else 16
    w = blend_window(tile, overlap, halo=halo)
    assert w.min() == 0 if halo else w.min() > 0
    assert w.max() <= 1 and (w[:halo] == 0).all() and (w[tile - halo:] == 0).all()
    torch.testing.assert_close(w[tile - overlap:] + w[:overlap], torch.ones(overlap))
    # Identity through the tiler returns the image exactly, whatever its size.
    image = torch.rand(2, 1, size, size + 3)
    out = tiled_apply(lambda t: t, image, tile=tile, overlap=overlap, batch_size=3, progress=False, multiple=4,
                      halo=halo)
    torch.testing.assert_close(out, image)


def test_tiled_local_filter_equals_whole_image_filter_borders_included():
    """A 3x3 mean filter (zero padding, as a network's convolutions) through the tiler equals the
    same filter on the whole image, image borders included: tiles lie inside the image, and the
    pixel each tile drops at an inner edge (halo 1) is the one that saw its zero padding."""
    image = torch.rand(1, 1, 70, 90)
    box = torch.ones(1, 1, 3, 3) / 9
    conv = lambda t: torch.nn.functional.conv2d(t, box, padding=1)  # noqa: E731
    out = tiled_apply(conv, image, tile=32, overlap=16, batch_size=4, progress=False, halo=1)
    torch.testing.assert_close(out, conv(image), rtol=0, atol=1e-6)
    # Without the halo the pixels next to inner tile edges mix in the tile's zero padding.
    assert (tiled_apply(conv, image, tile=32, overlap=16, progress=False, halo=0) - conv(image)).abs().max() > 1e-4


@pytest.mark.parametrize("kind, tile", [("n2v", 96), ("care", 128)])
def test_tiled_regression_model_equals_whole_image_borders_included(kind, tile):
    """Issue 29: CARE and Noise2Void (deterministic, finite receptive field) give the same image
    tiled as whole, at the image border too (it used to be mirror-padded there and differed by up
    to 91 grey levels); the size is no multiple of the network's, so the padding is exercised."""
    from teachdiff.methods.care import CARE, CAREConfig
    from teachdiff.methods.n2v import N2VConfig, Noise2Void

    torch.manual_seed(0)
    method = (Noise2Void(N2VConfig()) if kind == "n2v" else CARE(CAREConfig())).eval()
    x = torch.rand(1, 1, 142, 206) * 2 - 1
    whole = method.restore(x)
    tiled = tiled_apply(method.restore, x, tile=tile, multiple=method.size_multiple, halo=method.halo,
                        progress=False)
    assert plan_tiles(x.shape, tile, multiple=method.size_multiple, halo=method.halo).n_tiles > 1
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)
    # The halo bounds the receptive field: a changed pixel moves outputs within halo of it only.
    nudged = x.clone()
    nudged[0, 0, 71, 103] += 1
    rows, cols = torch.nonzero((method.restore(nudged) - whole)[0, 0] != 0, as_tuple=True)
    reach = max((rows - 71).abs().max().item(), (cols - 103).abs().max().item())
    assert 0.8 * method.halo <= reach <= method.halo


def test_tiled_ddpm_equals_whole_image_for_a_finite_receptive_field():
    """The DDPM's tiling follows the same geometry: one deterministic DDIM step (the network once,
    position-keyed y_T) with a U-Net without attention gives the whole-image result everywhere,
    borders included, when each tile drops a halo as wide as the receptive field."""
    model, schedule = Hybrid(), NoiseSchedule(T=20)
    x = torch.rand(1, 1, 131, 150) - 0.5
    kwargs = dict(sampler="ddim", steps=1, seed=3, progress=False)
    whole = sample(model, x, schedule, **kwargs)
    tiled = sample_tiled(model, x, schedule, tile=96, overlap=60, halo=30, batch_size=3, **kwargs)
    # 1e-4, not 1e-6: the step divides the noise prediction's float rounding by sqrt(alpha_bar_T).
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-4)


def _tile_edges(size, tile, overlap):
    starts = plan_tiles((size, size), tile, overlap).starts_x
    return sorted({e for s in starts for e in (s, s + tile) if 2 <= e <= size - 2})


def _seam_ratio(image, edges):
    """Mean |horizontal difference| across tile-edge columns over the mean elsewhere (1 = no seam)."""
    grad = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(dim=tuple(range(image.ndim - 1)))
    at_edges = torch.tensor([c - 1 for c in edges])
    mask = torch.ones_like(grad, dtype=torch.bool)
    mask[at_edges] = False
    return (grad[at_edges].mean() / grad[mask].mean()).item()


def test_seam_statistic_detects_a_seam_and_blending_removes_it():
    image = torch.zeros(1, 1, 96, 96)
    per_tile_offset = lambda t: t + torch.rand(t.shape[0], 1, 1, 1)  # noqa: E731 - inconsistent tiles
    torch.manual_seed(0)
    hard = tiled_apply(per_tile_offset, image + 0.01 * torch.rand_like(image), tile=32, overlap=0, progress=False)
    torch.manual_seed(0)
    soft = tiled_apply(per_tile_offset, image + 0.01 * torch.rand_like(image), tile=32, overlap=16, progress=False)
    print("seam ratio hard", _seam_ratio(hard, _tile_edges(96, 32, 0)), "blended", _seam_ratio(soft, _tile_edges(96, 32, 16)))
    assert _seam_ratio(hard, _tile_edges(96, 32, 0)) > 5
    assert _seam_ratio(soft, _tile_edges(96, 32, 16)) < 1.5


def test_tiled_deterministic_sampler_equals_whole_image_away_from_borders():
    """DDIM (eta = 0) with a U-Net receptive field: a 3x-tile image, tiled vs in one piece."""
    model, schedule, tile, overlap = Hybrid(), NoiseSchedule(T=20), 32, 16
    x = torch.rand(1, 1, 3 * tile, 3 * tile) - 0.5
    kwargs = dict(sampler="ddim", steps=3, seed=5, progress=False)
    whole = sample(model, x, schedule, **kwargs)[:, 0]
    tiled = sample_tiled(model, x, schedule, tile=tile, overlap=overlap, batch_size=4, **kwargs)[:, 0]
    border = 8
    diff = (tiled - whole).abs()[..., border:-border, border:-border]
    print(f"tiled vs whole: mean {diff.mean():.4f}, 99th pct {diff.quantile(0.99):.4f}, max {diff.max():.4f}, "
          f"sample std {whole.std():.3f}")
    assert diff.mean() < 0.01 and diff.quantile(0.99) < 0.1
    edges = _tile_edges(3 * tile, tile, overlap)
    assert abs(_seam_ratio(tiled, edges) - _seam_ratio(whole, edges)) < 0.1


def test_tiled_ddpm_with_position_keyed_noise_has_no_seam_in_samples_or_std_map():
    """Stochastic DDPM: tiles share the noise field, so a pixel-local model gives exactly the
    whole-image samples. Independent noise per tile instead averages two different samples in
    every overlap: the std map drops there (the seam the noise field avoids)."""
    model, schedule, tile, overlap = GaussianOracle(), NoiseSchedule(T=10), 32, 16
    x = torch.rand(1, 1, 96, 96) - 0.5
    whole = sample(model, x, schedule, n_samples=8, seed=1, progress=False)
    tiled = sample_tiled(model, x, schedule, n_samples=8, seed=1, tile=tile, overlap=overlap, progress=False)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)

    calls = iter(range(1000))
    independent = tiled_apply(lambda t: sample(model, t, schedule, n_samples=8, seed=next(calls), progress=False),
                              x, tile=tile, overlap=overlap, batch_size=1, progress=False)
    std_shared, std_independent = uncertainty_maps(tiled)[0], uncertainty_maps(independent)[0]
    in_overlap = torch.zeros(96, dtype=torch.bool)
    plan = plan_tiles((96, 96), tile, overlap)
    for left, right in zip(plan.starts_x, plan.starts_x[1:]):  # where two tiles are blended
        in_overlap[right + plan.halo:left + tile - plan.halo] = True
    band = lambda s: (s[..., :, in_overlap].mean() / s[..., :, ~in_overlap].mean()).item()  # noqa: E731
    print("std map overlap/centre ratio: shared noise", band(std_shared), "independent", band(std_independent))
    assert band(std_shared) == pytest.approx(1, abs=0.05)
    assert band(std_independent) < 0.9


def test_restore_tiled_and_untiled_match_for_a_local_model():
    x = torch.rand(1, 1, 50, 70) - 0.5
    a = restore(GaussianOracle(multiple=4), x, NoiseSchedule(T=6), n_samples=4, seed=2, progress=False)
    b = restore(GaussianOracle(multiple=4), x, NoiseSchedule(T=6), n_samples=4, seed=2, tile=32, overlap=8,
                batch_size=5, progress=False)
    for field in ("mean", "sample", "std", "entropy"):
        torch.testing.assert_close(getattr(a, field), getattr(b, field), rtol=0, atol=1e-4)
        assert getattr(a, field).shape == (1, 1, 50, 70)


def test_pad_reflect_any_amount_matches_numpy():
    image = torch.arange(12.0).reshape(1, 1, 3, 4)
    padded = pad_reflect(image, 7, 2, 9, 1)
    np.testing.assert_array_equal(padded[0, 0].numpy(), np.pad(image[0, 0].numpy(), ((7, 2), (9, 1)), mode="reflect"))


def test_default_batch_size_shrinks_with_image_size():
    paper = types.SimpleNamespace(config=UNetConfig.paper())  # only the config is read
    assert default_batch_size(paper, 64, 64, "cpu") == 8
    assert default_batch_size(paper, 2560, 2560, "cpu") == 1
    assert 1 <= default_batch_size(paper, 256, 256, "cpu") < 8


def test_tiling_bad_arguments():
    image = torch.zeros(1, 1, 64, 64)
    with pytest.raises(ValueError, match="overlap"):
        tiled_apply(lambda t: t, image, tile=32, overlap=32)
    with pytest.raises(ValueError, match="divisible"):
        tiled_apply(lambda t: t, image, tile=30, overlap=4, multiple=4)
    with pytest.raises(ValueError, match="same batch size"):
        tiled_apply(lambda t: t[:, :, :-1], image, tile=32, overlap=4, progress=False)


# ----------------------------------------------------------------------------------------------
# Fast defaults: tile plan, tile size, batching, progress (issue 12 item 4, issue 16 item 1)
# ----------------------------------------------------------------------------------------------


def test_tile_plan_covers_the_image_from_inside_with_proportional_overlap():
    assert [default_overlap(t) for t in (64, 80, 128, 256)] == [8, 10, 16, 32]  # 1/8, an even number
    for shape, tile in (((512, 512), 64), ((300, 700), 72), ((37, 50), 32), ((150, 170), 64)):
        plan = plan_tiles(shape, tile, multiple=4)
        assert plan.overlap == default_overlap(tile) and plan.halo == plan.overlap // 4
        # padded as the whole-image pass pads: bottom and right, to the size multiple
        assert (plan.padded_h, plan.padded_w) == tuple(s + (-s) % 4 for s in shape)
        covered = torch.zeros(plan.padded_h, plan.padded_w, dtype=torch.int64)
        for y in plan.starts_y:
            for x in plan.starts_x:
                covered[y:y + plan.tile_h, x:x + plan.tile_w] += 1
        assert covered.min() >= 1  # every pixel is in a tile ...
        for starts, size, padded in ((plan.starts_y, plan.tile_h, plan.padded_h),
                                     (plan.starts_x, plan.tile_w, plan.padded_w)):
            assert starts[0] == 0 and starts[-1] + size == padded  # ... and every tile inside the image
            assert all(s % 4 == 0 for s in starts)  # on the pooling grid of the whole image
            assert all(0 < b - a <= size - plan.overlap for a, b in zip(starts, starts[1:]))  # overlap >= overlap
    # issue 12's 512² run: 64-pixel tiles overlapping by 32 needed 225 tiles; 1/8 overlap needs 81.
    old, new = plan_tiles((512, 512), 64, 32), plan_tiles((512, 512), 64)
    assert (old.n_tiles, new.n_tiles) == (225, 81)
    assert new.pixels < old.pixels / 2
    # A model's halo widens the default overlap to twice the halo, as far as the tile allows.
    assert plan_tiles((512, 512), 256, multiple=4, halo=26).overlap == 52
    assert plan_tiles((512, 512), 64, multiple=4, halo=46).overlap == 60


def test_default_tile_follows_the_checkpoint_patch_size():
    for patch in (32, 64):
        net = MPUNet(UNetConfig(image_size=patch, channels=16, channel_mult=(1, 2, 2), num_blocks=1,
                                attn_resolutions=(patch // 4,), channels_per_head=16))
        assert default_tile(net) == patch
        for shape in ((512, 512), (300, 700)):
            tile = default_tile(net, shape)
            assert patch <= tile <= 2 * patch and tile % net.config.size_multiple == 0
    # 300 x 700 with 64-pixel training patches: larger tiles cover it with fewer pixels.
    quick = MPUNet(UNetConfig.tiny())
    tile = default_tile(quick, (300, 700))
    assert tile > 64 and plan_tiles((300, 700), tile, multiple=4).pixels < plan_tiles((300, 700), 64).pixels
    # A network whose attention dominates keeps the training size even there.
    heavy = MPUNet(UNetConfig(image_size=64, channels=4, channel_mult=(1, 2, 2), num_blocks=1,
                              attn_resolutions=(64,), attn_placement="all", channels_per_head=4))
    assert default_tile(heavy, (512, 512)) == 64


def test_batching_tiles_and_samples_gives_the_same_result_as_one_at_a_time():
    """Tiles x samples packed into full calls of 7 images equal one image per call (same seed),
    for a stochastic sampler with a real receptive field; and the calls are as few as 7 allows."""
    model, schedule = Hybrid(), NoiseSchedule(T=10)
    x = torch.rand(1, 1, 80, 80) - 0.5
    kwargs = dict(sampler="ddim", steps=3, eta=1.0, seed=4, tile=32, overlap=8, n_samples=3)
    meters = [CallProgress(write=lambda _msg: None) for _ in range(2)]
    one = sample_tiled(model, x, schedule, batch_size=1, progress=meters[0], **kwargs)
    packed = sample_tiled(model, x, schedule, batch_size=7, progress=meters[1], **kwargs)
    torch.testing.assert_close(packed, one, rtol=0, atol=1e-5)
    tiles = plan_tiles(x.shape, 32, 8).n_tiles
    assert meters[0].done == meters[0].total == tiles * 3 * 3
    assert meters[1].done == meters[1].total == math.ceil(tiles * 3 / 7) * 3


class TimedOracle(GaussianOracle):
    """The oracle on a fake clock: its first call takes ``warmup`` seconds, every later one ``per_call``."""

    def __init__(self, warmup, per_call):
        super().__init__()
        self.now, self.warmup, self.per_call, self.calls = 0.0, warmup, per_call, 0

    def clock(self):
        return self.now

    def forward(self, *args):
        self.now += self.warmup if self.calls == 0 else self.per_call
        self.calls += 1
        return super().forward(*args)


@pytest.mark.parametrize("per_call, warned", [(5.0, True), (0.1, False)])
def test_slow_sampler_warning_fires_when_the_estimate_exceeds_the_threshold(per_call, warned):
    messages = []
    model = TimedOracle(per_call, per_call)
    meter = CallProgress(slow_after_s=60, hint="try DDIM", clock=model.clock, write=messages.append)
    restore_image(model, np.zeros((20, 20), dtype=np.uint8), NoiseSchedule(T=20), n_samples=2,
                  tile=None, progress=meter)
    meter.close()
    assert meter.total == 20 and meter.estimate_s == pytest.approx(20 * per_call)  # calls x time per call
    assert len(messages) == warned
    if warned:
        assert "about 1.7 min" in messages[0] and "try DDIM" in messages[0]


def test_time_estimate_leaves_the_warm_up_call_out():
    """A first call 1000x slower than the rest (allocation, kernel choice) counts once, not once per
    call: 20 calls of 0.1 s after a 100 s warm-up take 101.9 s, not the 2000 s the first call implies."""
    messages = []
    model = TimedOracle(warmup=100.0, per_call=0.1)
    meter = CallProgress(slow_after_s=300, hint="try DDIM", clock=model.clock, write=messages.append)
    restore_image(model, np.zeros((20, 20), dtype=np.uint8), NoiseSchedule(T=20), n_samples=2,
                  tile=None, progress=meter)
    meter.close()
    assert meter.total == model.calls == 20
    assert meter.estimate_s == pytest.approx(100.0 + 19 * 0.1) and model.now == pytest.approx(meter.estimate_s)
    assert messages == []
    slow = TimedOracle(warmup=100.0, per_call=30.0)  # a slow run still warns, at the later calls' rate
    meter = CallProgress(slow_after_s=300, clock=slow.clock, write=messages.append)
    restore_image(slow, np.zeros((20, 20), dtype=np.uint8), NoiseSchedule(T=20), n_samples=2, tile=None,
                  progress=meter)
    meter.close()
    assert meter.estimate_s == pytest.approx(100.0 + 19 * 30.0) and len(messages) == 1
    assert "about 11.2 min" in messages[0] and "warm-up" in messages[0]


def test_progress_counts_the_calls_of_every_slice_of_a_stack():
    meter = CallProgress(write=lambda _msg: None)
    restore_image(GaussianOracle(), np.zeros((3, 12, 12), dtype=np.uint8), NoiseSchedule(T=5), n_samples=2,
                  tile=8, overlap=2, batch_size=2, progress=meter)
    assert meter.total == meter.done == 3 * plan_tiles((12, 12), 8, 2).n_tiles * 5


# ----------------------------------------------------------------------------------------------
# Image scaling and NumPy images
# ----------------------------------------------------------------------------------------------


def test_restore_image_keeps_shape_and_scale_of_a_16bit_stack():
    rng = np.random.default_rng(0)
    stack = rng.integers(20000, 40000, size=(2, 21, 30), dtype=np.uint16)
    result = restore_image(GaussianOracle(multiple=2), stack, NoiseSchedule(T=6), n_samples=3, tile=16, overlap=4,
                           progress=False)
    for name in ("mean", "sample", "std", "entropy"):
        array = getattr(result, name)
        assert array.shape == stack.shape and array.dtype == np.float32
    # The oracle's samples scatter around the input by sigma in [-1, 1] units = sigma / 2 * 65535 counts.
    assert np.abs(result.mean - stack).mean() < SIGMA / 2 * 65535
    assert 10000 < result.mean.mean() < 50000
    assert not np.allclose(result.sample[0], result.sample[1] - (stack[1].astype(np.float32) - stack[0]))
    with pytest.raises(ValueError, match="grayscale"):
        restore_image(GaussianOracle(), np.zeros((1, 8, 8, 3)), NoiseSchedule(T=2), progress=False)
    with pytest.raises(ValueError, match="16-bit"):
        restore_image(GaussianOracle(), np.zeros((8, 8), dtype=np.float32), NoiseSchedule(T=2), progress=False)


def test_restore_image_8bit_values_round_trip_through_the_model_range():
    """A model whose every sample is its input gives back the 8-bit image exactly (scale and shape)."""
    class Identity(GaussianOracle):  # sigma -> 0: E[y0 | y_t] = x
        def __init__(self):
            super().__init__(sigma=0.0)
    image = np.arange(35 * 19, dtype=np.uint8).reshape(35, 19)
    result = restore_image(Identity(), image, NoiseSchedule(T=4), n_samples=2, tile=16, overlap=4, progress=False)
    np.testing.assert_allclose(result.mean, image, atol=1e-3)
    assert result.std.max() < 1e-5


def test_sample_with_dpm_solver_pp_uses_the_noise_field_for_y_T():
    from teachdiff.core.diffusion import dpm_solver_pp_sample

    model, schedule = Hybrid(), NoiseSchedule(T=20)
    x = torch.rand(1, 1, 16, 16) - 0.5
    got = sample(model, x, schedule, n_samples=2, sampler="dpm++", steps=4, seed=7, progress=False)
    field = NoiseField(7)
    y_T = torch.stack([field.crop(schedule.T, 16, 16, sample=i) for i in range(2)])
    expected = dpm_solver_pp_sample(model, x, schedule, steps=4, n_samples=2, noise=lambda step: y_T)
    # float32 rounding of the batched network is amplified by 1 / sqrt(alpha_bar_T) at the first step
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-2)
    other = sample(model, x, schedule, n_samples=2, sampler="dpm++", steps=4, seed=8, progress=False)
    assert (other - expected).abs().max() > 0.2


def test_pad_amount_reaches_the_next_multiple():
    from teachdiff.core.tiling import pad_amount

    assert [pad_amount(size, 16) for size in (1, 16, 37, 48)] == [15, 0, 11, 0]
