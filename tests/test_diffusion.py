"""The diffusion process against formulas computed by hand (paper §3.2, Eqs. 1-7)."""

import math

import numpy as np
import pytest
import torch

from teachdiff.core.diffusion import (
    DataParallelDraws,
    NoiseSchedule,
    data_parallel_draws,
    ddim_sample,
    ddim_timesteps,
    ddpm_sample,
    dpm_solver_levels,
    dpm_solver_pp_sample,
    posterior_mean_variance,
    predict_y0,
    q_sample,
    training_loss,
)


def test_cosine_schedule_matches_formula_by_hand():
    T, s = 200, 8e-3
    schedule = NoiseSchedule(T=T, s=s)
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    betas = [min(1 - f[t] / f[t - 1], 0.999) for t in range(1, T + 1)]
    alpha_bars = np.cumprod([1 - b for b in betas])
    np.testing.assert_allclose(schedule.betas.numpy(), betas, rtol=1e-12)
    np.testing.assert_allclose(schedule.alphas.numpy(), 1 - np.array(betas), rtol=1e-12)
    np.testing.assert_allclose(schedule.alpha_bars.numpy(), alpha_bars, rtol=1e-10)
    # Before the clamp at t = T, alpha_bar_t is exactly f(t) / f(0).
    np.testing.assert_allclose(schedule.alpha_bars[:-1].numpy(), np.array(f[1:T]) / f[0], rtol=1e-10)
    assert len(schedule.alphas) == len(schedule.alpha_bars) == T


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_alpha_bar_strictly_decreasing_in_open_unit_interval(kind):
    ab = NoiseSchedule(kind=kind).alpha_bars
    assert torch.all(ab > 0) and torch.all(ab < 1)
    assert torch.all(ab[1:] < ab[:-1])
    assert NoiseSchedule().alpha_bars_prev[0] == 1.0


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="positive integer"):
        NoiseSchedule(T=0)
    with pytest.raises(ValueError, match="cosine"):
        NoiseSchedule(kind="quadratic")
    with pytest.raises(ValueError, match="1..T"):
        NoiseSchedule().alpha_bar(0)


def test_q_sample_mean_and_variance():
    g = torch.Generator().manual_seed(0)
    y0 = torch.full((20000, 1, 1, 1), 0.7)
    alpha_bar = 0.3
    noise = torch.randn(y0.shape, generator=g)
    y_t = q_sample(y0, alpha_bar, noise)
    assert y_t.mean().item() == pytest.approx(math.sqrt(alpha_bar) * 0.7, abs=0.02)
    assert y_t.var().item() == pytest.approx(1 - alpha_bar, rel=0.03)


def test_q_sample_per_image_noise_levels():
    y0, noise = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    y_t = q_sample(y0, torch.tensor([1.0, 0.25]), noise)
    assert torch.allclose(y_t[0], torch.ones(1, 4, 4)) and torch.allclose(y_t[1], torch.full((1, 4, 4), 0.5))


def test_predict_y0_inverts_q_sample():
    g = torch.Generator().manual_seed(1)
    y0, noise = torch.rand(3, 1, 8, 8, generator=g), torch.randn(3, 1, 8, 8, generator=g)
    ab = torch.tensor([0.9, 0.5, 0.01])
    assert torch.allclose(predict_y0(q_sample(y0, ab, noise), noise, ab), y0, atol=1e-4)


def test_posterior_mean_is_eq6_for_one_step():
    """Without the clamp, the sampler's posterior mean is the paper's Eq. 6 exactly."""
    schedule = NoiseSchedule()
    g = torch.Generator().manual_seed(2)
    y_t, eps = torch.randn(2, 1, 8, 8, generator=g, dtype=torch.float64), torch.randn(2, 1, 8, 8, generator=g, dtype=torch.float64)
    for t in (200, 120, 37, 2):
        alpha_t = 1 - (1 - math.cos((t / 200 + 8e-3) / (1 + 8e-3) * math.pi / 2) ** 2
                       / math.cos(((t - 1) / 200 + 8e-3) / (1 + 8e-3) * math.pi / 2) ** 2)
        alpha_t = max(alpha_t, 1 - 0.999)
        alpha_bar_t = schedule.alpha_bars[t - 1].item()
        assert schedule.alphas[t - 1].item() == pytest.approx(alpha_t, rel=1e-12)
        eq6 = (y_t - (1 - alpha_t) / math.sqrt(1 - alpha_bar_t) * eps) / math.sqrt(alpha_t)
        mean, var = posterior_mean_variance(predict_y0(y_t, eps, alpha_bar_t), y_t, t, schedule)
        assert torch.allclose(mean, eq6, atol=1e-9)
        alpha_bar_prev = schedule.alpha_bars[t - 2].item()
        assert var == pytest.approx((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_t))


class OracleModel(torch.nn.Module):
    """Predicts the exact noise for a known target y0: the sampler must then return y0."""

    def __init__(self, y0):
        super().__init__()
        self.y0 = y0

    def forward(self, x, y_t, noise_level):
        ab = noise_level.reshape(-1, 1, 1, 1)
        return (y_t - ab.sqrt() * self.y0) / (1 - ab).sqrt()


def test_samplers_recover_target_with_oracle_model():
    y0 = torch.linspace(-0.9, 0.9, 64).reshape(1, 1, 8, 8)
    x = torch.zeros_like(y0)
    schedule = NoiseSchedule()
    g = torch.Generator().manual_seed(3)
    samples = ddpm_sample(OracleModel(y0), x, schedule, n_samples=3, generator=g)
    assert samples.shape == (1, 3, 1, 8, 8)
    assert torch.allclose(samples[0], y0.expand(3, -1, -1, -1), atol=1e-3)
    samples = ddim_sample(OracleModel(y0), x, schedule, steps=10, n_samples=2, generator=g)
    assert samples.shape == (1, 2, 1, 8, 8)
    assert torch.allclose(samples[0], y0.expand(2, -1, -1, -1), atol=1e-4)


def test_ddim_timesteps_are_distinct_and_span_the_schedule():
    ts = ddim_timesteps(NoiseSchedule(), 20)
    assert ts[0] == 200 and ts[-1] == 1 and len(ts) == 20 and ts == sorted(set(ts), reverse=True)
    with pytest.raises(ValueError, match="steps"):
        ddim_timesteps(NoiseSchedule(), 0)


def test_training_loss_discrete_and_continuous_levels_are_in_schedule_range():
    schedule = NoiseSchedule(T=10)
    seen = []

    def spy(x, y_t, noise_level):
        seen.append(noise_level.clone())
        return torch.zeros_like(y_t)

    y0 = torch.zeros(512, 1, 2, 2)
    g = torch.Generator().manual_seed(4)
    loss = training_loss(spy, y0, y0, schedule, continuous=False, generator=g)
    levels = seen[-1].double()
    assert all(torch.isclose(schedule.alpha_bars, lv, atol=1e-7).any() for lv in levels)
    assert loss.item() == pytest.approx(1.0, rel=0.05)  # zero prediction: E[eps^2] = 1
    training_loss(spy, y0, y0, schedule, continuous=True, generator=g)
    levels = seen[-1].double()
    assert levels.min() >= schedule.alpha_bars[-1] - 1e-6 and levels.max() <= 1.0
    on_grid = sum(torch.isclose(schedule.alpha_bars, lv, atol=1e-7).any().item() for lv in levels)
    assert on_grid < 5  # continuous levels almost never fall on the discrete grid


def test_data_parallel_draws_reproduce_one_process_with_the_global_batch():
    """Each process's loss uses its slice of the global batch's draws: the mean of the shard
    losses is the one-process loss, and every shard sees exactly its images' levels and noise."""
    schedule = NoiseSchedule(T=50)
    seen = {}

    def spy(key):
        def model(x, y_t, noise_level):
            seen[key] = (noise_level.clone(), y_t.clone())
            return 0.5 * y_t + noise_level.view(-1, 1, 1, 1) * x  # per-image, deterministic
        return model

    x, y0 = torch.randn(6, 1, 4, 4), torch.randn(6, 1, 4, 4)
    full = training_loss(spy("full"), x, y0, schedule, generator=torch.Generator().manual_seed(3))
    shard_losses = []
    for rank in range(3):
        mine = slice(2 * rank, 2 * rank + 2)
        draws = data_parallel_draws(torch.Generator().manual_seed(3), (rank, 3))
        assert isinstance(draws, DataParallelDraws)
        shard_losses.append(training_loss(spy(rank), x[mine], y0[mine], schedule, generator=draws))
        assert torch.equal(seen[rank][0], seen["full"][0][mine])
        assert torch.equal(seen[rank][1], seen["full"][1][mine])
    assert torch.stack(shard_losses).mean().item() == pytest.approx(full.item(), rel=1e-6)
    single = torch.Generator()
    assert data_parallel_draws(single, (0, 1)) is single
    with pytest.raises(ValueError, match="rank"):
        DataParallelDraws(single, 2, 2)


def test_sampler_rejects_bad_arguments():
    model = OracleModel(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ddpm_sample(model, torch.zeros(4, 4), NoiseSchedule())
    with pytest.raises(ValueError, match="n_samples"):
        ddpm_sample(model, torch.zeros(1, 1, 4, 4), NoiseSchedule(), n_samples=0)
    with pytest.raises(ValueError, match="variance"):
        ddpm_sample(model, torch.zeros(1, 1, 4, 4), NoiseSchedule(), variance="learned")


class GaussianOracle(torch.nn.Module):
    """The exact noise prediction when every pixel of y0 is drawn from N(mu, sd^2), x ignored:
    E[eps | y_t] = sigma (y_t - a mu) / (a^2 sd^2 + sigma^2), a = sqrt(alpha_bar), sigma^2 = 1 - alpha_bar."""

    def __init__(self, mu: float, sd: float):
        super().__init__()
        self.mu, self.sd = mu, sd

    def forward(self, x, y_t, noise_level):
        ab = noise_level.reshape(-1, 1, 1, 1).double()
        eps = (1 - ab).sqrt() * (y_t.double() - ab.sqrt() * self.mu) / (ab * self.sd**2 + 1 - ab)
        return eps.to(y_t.dtype)


def _gaussian_ode_answer(y_T, mu, sd, alpha_bar_T, alpha_bar_last):
    """Where the probability-flow ODE takes y_T for Gaussian data, read out as the samplers do.

    The ODE keeps z = (y_t - a_t mu) / sqrt(a_t^2 sd^2 + sigma_t^2) constant; the samplers end
    with the denoiser E[y0 | y_t] = mu + a sd^2 z / sqrt(a^2 sd^2 + sigma^2) at the last level."""
    z = (y_T - math.sqrt(alpha_bar_T) * mu) / math.sqrt(alpha_bar_T * sd**2 + 1 - alpha_bar_T)
    a = math.sqrt(alpha_bar_last)
    return mu + a * sd**2 * z / math.sqrt(alpha_bar_last * sd**2 + 1 - alpha_bar_last)


def test_dpm_solver_pp_is_second_order_on_a_gaussian_toy():
    mu, sd = 0.2, 0.3
    schedule = NoiseSchedule()
    y_T = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.zeros_like(y_T)
    exact = _gaussian_ode_answer(y_T, mu, sd, schedule.alpha_bars[-1].item(), schedule.alpha_bars[0].item())
    errors = {k: (dpm_solver_pp_sample(GaussianOracle(mu, sd), x, schedule, steps=k, clip=False,
                                       noise=lambda step: y_T, spacing="logsnr")[:, 0] - exact).abs().max().item()
              for k in (40, 80, 160)}
    # Second order: doubling the steps divides the error by about 4 (DDIM, first order: by 2).
    assert 3.5 < errors[40] / errors[80] < 4.5 and 3.5 < errors[80] / errors[160] < 4.5
    assert errors[160] < 1e-3
    ddim_160 = (ddim_sample(GaussianOracle(mu, sd), x, schedule, steps=160, clip=False,
                            noise=lambda step: y_T)[:, 0] - exact).abs().max().item()
    assert errors[160] < ddim_160 / 10


def test_dpm_solver_pp_first_order_steps_are_ddim():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(2, 1, 3, padding=1).double()
    model = lambda x, y_t, level: net(torch.cat([x, y_t], 1)) * level.reshape(-1, 1, 1, 1)  # noqa: E731
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    y_T = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    for steps in (1, 2):  # first step and final step are both first-order: exactly DDIM
        a = dpm_solver_pp_sample(model, x, NoiseSchedule(), steps=steps, noise=lambda step: y_T)
        b = ddim_sample(model, x, NoiseSchedule(), steps=steps, noise=lambda step: y_T)
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    a = dpm_solver_pp_sample(model, x, NoiseSchedule(), steps=3, noise=lambda step: y_T)
    b = ddim_sample(model, x, NoiseSchedule(), steps=3, noise=lambda step: y_T)
    assert (a - b).abs().max() > 1e-3  # the second-order step makes a difference


def test_dpm_solver_levels_and_bad_arguments():
    schedule = NoiseSchedule()
    time_levels = dpm_solver_levels(schedule, 10)
    assert time_levels == [schedule.alpha_bars[t - 1].item() for t in ddim_timesteps(schedule, 10)]
    lam = [0.5 * math.log(a / (1 - a)) for a in dpm_solver_levels(schedule, 10, "logsnr")]
    np.testing.assert_allclose(np.diff(lam), np.diff(lam)[0], rtol=1e-9)
    assert lam[0] == pytest.approx(0.5 * math.log(time_levels[0] / (1 - time_levels[0])))
    with pytest.raises(ValueError, match="spacing"):
        dpm_solver_levels(schedule, 10, "karras")
    with pytest.raises(ValueError, match="steps"):
        dpm_solver_pp_sample(GaussianOracle(0, 1), torch.zeros(1, 1, 4, 4), schedule, steps=0)
