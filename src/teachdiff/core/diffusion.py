"""The conditional diffusion process of the paper (§3.2): schedule, noising, loss, samplers.

Symbols follow the paper: y0 is the clean target, x the low-quality input that conditions the
model, y_t the noisy target at step t, alpha_t = 1 - beta_t and alpha_bar_t = prod_{i<=t} alpha_i.
Steps are numbered t = 1..T as in the paper; tensors are 0-based, so index t-1 holds step t.

The model is any callable ``model(x, y_t, noise_level) -> eps_hat`` conditioned on the noise
level ``alpha_bar`` itself (not on t), as in the authors' code. That is what makes the
continuous-noise-level training of :func:`training_loss` possible. The few-step DDIM sampler
does not depend on it: it visits a subset of the T training steps, which works with any
network trained on that grid (Song et al. 2021). Nor does DPM-Solver++ with its default
steps; with ``spacing="logsnr"`` it evaluates the network between the grid's levels, which
does rely on the continuous training.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from tqdm.auto import tqdm

from teachdiff.core import precision

__all__ = [
    "NoiseSchedule",
    "q_sample",
    "predict_y0",
    "posterior_mean_variance",
    "training_loss",
    "DataParallelDraws",
    "data_parallel_draws",
    "predict_noise",
    "ddpm_sample",
    "ddim_sample",
    "dpm_solver_levels",
    "dpm_solver_pp_sample",
]

Model = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
NoiseSource = Callable[[int], torch.Tensor]  # step -> standard normal tensor of the batch's shape


class NoiseSchedule:
    r"""The variance schedule {alpha_t}, t = 1..T.

    Cosine schedule (Nichol & Dhariwal 2021), the paper's choice with s = 8e-3, T = 200:

    .. math::
        f(t) = \cos^2\left(\frac{t/T + s}{1 + s} \cdot \frac{\pi}{2}\right),\qquad
        \beta_t = \min\left(1 - \frac{f(t)}{f(t-1)},\ \beta_{max}\right),\qquad
        \bar\alpha_t = \prod_{i=1}^{t} (1 - \beta_i)

    ``beta_max = 0.999`` only bites at t = T, where f(T) = 0 would make alpha_bar_T exactly 0.
    ``kind="linear"`` gives Ho et al.'s linear betas (1e-4 to 0.02 at T = 1000, rescaled by
    1000 / T so the total noise is comparable), for comparison in the course.

    Attributes (float64 tensors of length T; index t-1 holds step t): ``betas``, ``alphas``,
    ``alpha_bars`` and ``alpha_bars_prev`` (alpha_bar_{t-1}, with alpha_bar_0 = 1).
    """

    def __init__(self, T: int = 200, s: float = 8e-3, kind: str = "cosine", beta_max: float = 0.999):
        if int(T) != T or T < 1:
            raise ValueError(f"T must be a positive integer number of steps, got {T!r}.")
        if kind not in ("cosine", "linear"):
            raise ValueError(f"kind must be 'cosine' or 'linear', got {kind!r}.")
        if not (math.isfinite(s) and s >= 0):
            raise ValueError(f"the cosine schedule's offset s must be a finite number >= 0 (the paper: 8e-3), got "
                             f"{s!r}; s < 0 gives negative or NaN betas.")
        if not 0 < beta_max < 1:
            raise ValueError(f"beta_max must lie in (0, 1) (default 0.999), got {beta_max!r}; beta = 1 would make "
                             "alpha_bar_T exactly 0.")
        self.T, self.s, self.kind = int(T), float(s), kind
        t = torch.arange(self.T + 1, dtype=torch.float64)
        if kind == "cosine":
            f = torch.cos((t / self.T + self.s) / (1 + self.s) * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=beta_max)
        else:
            scale = 1000 / self.T
            betas = torch.linspace(1e-4 * scale, 0.02 * scale, self.T, dtype=torch.float64)
        self.betas = betas
        self.alphas = 1 - betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)
        self.alpha_bars_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bars[:-1]])

    def __len__(self) -> int:
        return self.T

    def __repr__(self) -> str:
        return f"NoiseSchedule(T={self.T}, s={self.s}, kind={self.kind!r})"

    def alpha_bar(self, t) -> torch.Tensor:
        """alpha_bar_t for integer steps t in 1..T (a tensor or an int)."""
        t = torch.as_tensor(t)
        if (t < 1).any() or (t > self.T).any():
            raise ValueError(f"steps must lie in 1..T={self.T}, got {t.tolist()}.")
        return self.alpha_bars[t - 1]

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t) of y_t, per step."""
        return self.alpha_bars / (1 - self.alpha_bars)


class DataParallelDraws:
    """The random numbers of one process of a data-parallel run, used where a generator is.

    Every process draws the random numbers of the whole global batch (``world_size`` times its
    own) from an identically seeded ``generator`` and keeps its own slice, ``rank``; so N
    processes reproduce one process with an N times larger batch exactly. The draws of
    :func:`training_loss` go through it unchanged: the sharding stays out of the formula.
    """

    def __init__(self, generator: torch.Generator | None, rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..world_size-1, got rank={rank}, world_size={world_size}.")
        self.generator, self.rank, self.world_size = generator, rank, world_size

    def draw(self, sample, shape) -> torch.Tensor:
        """``sample(global_shape, generator)`` for the global batch, sliced to this rank."""
        n = shape[0]
        full = sample((n * self.world_size, *shape[1:]), self.generator)
        return full[self.rank * n:(self.rank + 1) * n]


def data_parallel_draws(generator: torch.Generator | None, shard: tuple[int, int]):
    """``generator`` itself for a single process (``shard=(0, 1)``), else the
    :class:`DataParallelDraws` of process ``shard = (rank, world_size)``."""
    rank, world_size = shard
    return generator if world_size == 1 else DataParallelDraws(generator, rank, world_size)


Draws = torch.Generator | DataParallelDraws | None


def _sharded(sample, shape, generator: Draws) -> torch.Tensor:
    if isinstance(generator, DataParallelDraws):
        return generator.draw(sample, shape)
    return sample(shape, generator)


def _randn(shape, generator: Draws, device, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device, so a CPU seed gives the same
    numbers whatever device the model runs on."""
    def sample(shape, generator):
        if generator is None:
            return torch.randn(shape, device=device, dtype=dtype)
        return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
    return _sharded(sample, shape, generator)


def _generator_source(shape, generator: torch.Generator | None, like: torch.Tensor) -> NoiseSource:
    """Fresh standard normal draws from ``generator`` at every call, in call order."""
    return lambda step: _randn(shape, generator, like.device, like.dtype)


def _rand(shape, generator: Draws, device) -> torch.Tensor:
    def sample(shape, generator):
        if generator is None:
            return torch.rand(shape, device=device)
        return torch.rand(shape, generator=generator, device=generator.device).to(device)
    return _sharded(sample, shape, generator)


def _randint(high: int, n: int, generator: Draws) -> torch.Tensor:
    """n integers uniform in 1..high, on the CPU (drawn on the generator's device)."""
    def sample(shape, generator):
        device = generator.device if generator is not None else "cpu"
        return torch.randint(1, high + 1, shape, generator=generator, device=device).cpu()
    return _sharded(sample, (n,), generator)


def _per_sample(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a per-sample value (N,) or a scalar against an image batch (N, C, H, W)."""
    value = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return value.reshape(-1, *([1] * (like.ndim - 1))) if value.ndim else value


def q_sample(y0: torch.Tensor, alpha_bar, noise: torch.Tensor) -> torch.Tensor:
    r"""Forward noising, Eq. 1:  y_t = \sqrt{\bar\alpha_t}\, y_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon.

    ``alpha_bar`` is a float or a tensor of shape (N,) (one noise level per image).
    """
    alpha_bar = _per_sample(alpha_bar, y0)
    return alpha_bar.sqrt() * y0 + (1 - alpha_bar).sqrt() * noise


def predict_y0(y_t: torch.Tensor, eps_hat: torch.Tensor, alpha_bar) -> torch.Tensor:
    r"""The model's estimate of the clean target, Eq. 2:
    \hat y_0 = (y_t - \sqrt{1 - \bar\alpha_t}\, \epsilon_\theta) / \sqrt{\bar\alpha_t}."""
    alpha_bar = _per_sample(alpha_bar, y_t)
    return (y_t - (1 - alpha_bar).sqrt() * eps_hat) / alpha_bar.sqrt()


def posterior_mean_variance(y0_hat: torch.Tensor, y_t: torch.Tensor, t: int,
                            schedule: NoiseSchedule) -> tuple[torch.Tensor, float]:
    r"""Mean and variance of q(y_{t-1} | y_t, y_0 = \hat y_0) (Ho et al. 2020, Eq. 7):

    .. math::
        \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1 - \bar\alpha_t} \hat y_0
                    + \frac{\sqrt{\alpha_t}\,(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t} y_t,\qquad
        \tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\,\beta_t

    With the unclamped \hat y_0 of Eq. 2, \tilde\mu_t equals the paper's Eq. 6 exactly.
    """
    alpha_t, beta_t = schedule.alphas[t - 1].item(), schedule.betas[t - 1].item()
    alpha_bar_t, alpha_bar_prev = schedule.alpha_bars[t - 1].item(), schedule.alpha_bars_prev[t - 1].item()
    coef_y0 = math.sqrt(alpha_bar_prev) * beta_t / (1 - alpha_bar_t)
    coef_yt = math.sqrt(alpha_t) * (1 - alpha_bar_prev) / (1 - alpha_bar_t)
    beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return coef_y0 * y0_hat + coef_yt * y_t, beta_tilde


def training_loss(model: Model, x: torch.Tensor, y0: torch.Tensor, schedule: NoiseSchedule,
                  continuous: bool = True, generator: Draws = None) -> torch.Tensor:
    r"""The training objective, Eq. 3:  E || \epsilon_\theta(x, \sqrt{\bar\alpha} y_0 + \sqrt{1-\bar\alpha}\epsilon, \bar\alpha) - \epsilon ||^2.

    t is drawn uniformly from 1..T. With ``continuous=True`` (the authors' code) the noise
    level is then drawn uniformly between alpha_bar_t and alpha_bar_{t-1}, so the network sees
    every noise level in (alpha_bar_T, 1), not only T discrete ones; ``continuous=False`` uses
    alpha_bar_t itself (the textbook DDPM). ``generator`` may also be the
    :class:`DataParallelDraws` of one process of a data-parallel run.
    """
    n = y0.shape[0]
    t = _randint(schedule.T, n, generator)                          # t ~ U{1..T}
    alpha_bar = schedule.alpha_bars[t - 1]
    if continuous:                                                  # gamma ~ U(abar_t, abar_t-1)
        u = _rand((n,), generator, "cpu").double()
        alpha_bar = alpha_bar + (schedule.alpha_bars_prev[t - 1] - alpha_bar) * u
    alpha_bar = alpha_bar.to(device=y0.device, dtype=y0.dtype)
    noise = _randn(y0.shape, generator, y0.device, y0.dtype)        # epsilon ~ N(0, I)
    y_t = q_sample(y0, alpha_bar, noise)                            # Eq. 1
    eps_hat = model(x, y_t, alpha_bar)
    return torch.mean((eps_hat.float() - noise.float()) ** 2)       # Eq. 3


@torch.no_grad()
def predict_noise(model: Model, x: torch.Tensor, y_t: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    r"""One network call of a sampler: \epsilon_\theta(x, y_t, \bar\alpha) for the whole batch,
    without gradients (a sampler never needs them; a caller outside ``torch.no_grad`` would
    otherwise keep every activation of the network for a backward pass that never comes).

    The network runs under the autocast of :mod:`teachdiff.core.precision` (bf16 or fp16 on a GPU,
    float32 on the CPU unless :func:`teachdiff.core.precision.set_precision` says otherwise); its
    output is returned in y_t's dtype, so the sampler's own updates stay in float32.
    """
    level = torch.full((x.shape[0],), alpha_bar, device=x.device, dtype=x.dtype)
    with precision.autocast(x.device):
        eps_hat = model(x, y_t, level)
    return eps_hat.to(y_t.dtype)


def _repeat_for_samples(x: torch.Tensor, n_samples: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of shape (N, C, H, W), got {shape}; use img[None, None] "
                         "for a single 2-D image.")
    if int(n_samples) != n_samples or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
    return x.repeat_interleave(int(n_samples), dim=0)


def _target_channels(model) -> int:
    config = getattr(model, "config", None)
    return getattr(config, "target_channels", 1)


@torch.no_grad()
def ddpm_sample(model: Model, x: torch.Tensor, schedule: NoiseSchedule, n_samples: int = 1,
                clip: bool = True, generator: torch.Generator | None = None, variance: str = "beta",
                progress: bool = False, trajectory_every: int = 0, noise: NoiseSource | None = None):
    r"""Ancestral sampling, Eq. 7, from y_T ~ N(0, I) down to y_0, conditioned on x.

    Each step: predict the noise, form \hat y_0 (Eq. 2), optionally clamp it to [-1, 1]
    (``clip=True``, the authors' code), take the posterior mean (equal to Eq. 6 without the
    clamp) and add noise. ``variance="beta"`` adds \sqrt{1 - \alpha_t}\,\epsilon as written in
    Eq. 7; ``variance="posterior"`` uses the posterior variance \tilde\beta_t of the authors'
    code. No noise is added at the last step (t = 1), as in Ho et al.

    ``n_samples`` independent samples per input are drawn in one batched call. Returns a tensor
    of shape (N, n_samples, C, H, W); with ``trajectory_every=k > 0`` also a list of
    (t, y_t) pairs taken every k steps (for pictures of the reverse process).

    ``noise`` replaces the generator as the source of the Gaussian draws: ``noise(T)`` is y_T and
    ``noise(t - 1)`` the noise added when leaving step t (``teachdiff.inference.restore`` passes noise tied
    to pixel positions, so that overlapping tiles of a large image agree).
    """
    if variance not in ("beta", "posterior"):
        raise ValueError(f"variance must be 'beta' (Eq. 7) or 'posterior', got {variance!r}.")
    n = x.shape[0] if isinstance(x, torch.Tensor) else 0
    xs = _repeat_for_samples(x, n_samples)
    draw = noise or _generator_source((xs.shape[0], _target_channels(model), *xs.shape[2:]), generator, xs)
    y_t = draw(schedule.T)
    trajectory = []
    for t in tqdm(range(schedule.T, 0, -1), desc="DDPM sampling", disable=not progress, leave=False):
        alpha_bar_t = schedule.alpha_bars[t - 1].item()
        eps_hat = predict_noise(model, xs, y_t, alpha_bar_t)
        y0_hat = predict_y0(y_t, eps_hat, alpha_bar_t)
        if clip:
            y0_hat = y0_hat.clamp(-1, 1)
        mean, beta_tilde = posterior_mean_variance(y0_hat, y_t, t, schedule)
        if t > 1:
            var = schedule.betas[t - 1].item() if variance == "beta" else beta_tilde
            y_t = mean + math.sqrt(var) * draw(t - 1)
        else:
            y_t = mean
        if trajectory_every and (t - 1) % trajectory_every == 0:
            trajectory.append((t - 1, y_t.detach().cpu()))
    samples = y_t.reshape(n, int(n_samples), *y_t.shape[1:])
    return (samples, trajectory) if trajectory_every else samples


def ddim_timesteps(schedule: NoiseSchedule, steps: int) -> list[int]:
    """``steps`` distinct steps from T down to 1, evenly spaced."""
    if int(steps) != steps or not 1 <= steps <= schedule.T:
        raise ValueError(f"steps must be an integer in 1..T={schedule.T}, got {steps!r}.")
    ts = torch.linspace(schedule.T, 1, int(steps)).round().long().tolist()
    return sorted(set(ts), reverse=True)


@torch.no_grad()
def ddim_sample(model: Model, x: torch.Tensor, schedule: NoiseSchedule, steps: int = 20,
                n_samples: int = 1, eta: float = 0.0, clip: bool = True,
                generator: torch.Generator | None = None, progress: bool = False,
                noise: NoiseSource | None = None) -> torch.Tensor:
    r"""DDIM sampling (Song et al. 2021) with ``steps`` network calls instead of T.

    Not in the paper. It reuses the trained network as it is: the chosen steps
    (:func:`ddim_timesteps`) are a subset of the T training steps, and DDIM on a subset of the
    training steps works with any DDPM trained on that grid (Song et al. 2021). Training on
    continuous noise levels is not needed for this; it would be for noise levels off the grid.
    Between two chosen steps t > s:

    .. math::
        y_s = \sqrt{\bar\alpha_s}\,\hat y_0 + \sqrt{1 - \bar\alpha_s - \sigma^2}\,\hat\epsilon + \sigma z,\quad
        \sigma = \eta \sqrt{\frac{1 - \bar\alpha_s}{1 - \bar\alpha_t}\left(1 - \frac{\bar\alpha_t}{\bar\alpha_s}\right)}

    ``eta=0`` is deterministic given y_T; ``eta=1`` is ancestral-like. With ``clip`` the noise
    estimate is recomputed from the clamped \hat y_0 so both stay consistent. The last step
    returns \hat y_0. Returns (N, n_samples, C, H, W). ``noise`` as in :func:`ddpm_sample`
    (``noise(T)`` is y_T, ``noise(s)`` the draw when stepping down to s).
    """
    n = x.shape[0] if isinstance(x, torch.Tensor) else 0
    xs = _repeat_for_samples(x, n_samples)
    ts = ddim_timesteps(schedule, steps)
    draw = noise or _generator_source((xs.shape[0], _target_channels(model), *xs.shape[2:]), generator, xs)
    y_t = draw(schedule.T)
    for i, t in enumerate(tqdm(ts, desc="DDIM sampling", disable=not progress, leave=False)):
        alpha_bar_t = schedule.alpha_bars[t - 1].item()
        alpha_bar_s = schedule.alpha_bars[ts[i + 1] - 1].item() if i + 1 < len(ts) else 1.0
        eps_hat = predict_noise(model, xs, y_t, alpha_bar_t)
        y0_hat = predict_y0(y_t, eps_hat, alpha_bar_t)
        if clip:
            y0_hat = y0_hat.clamp(-1, 1)
            eps_hat = (y_t - math.sqrt(alpha_bar_t) * y0_hat) / math.sqrt(1 - alpha_bar_t)
        if alpha_bar_s >= 1.0:
            y_t = y0_hat
            break
        sigma = eta * math.sqrt((1 - alpha_bar_s) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_s))
        y_t = math.sqrt(alpha_bar_s) * y0_hat + math.sqrt(max(1 - alpha_bar_s - sigma**2, 0.0)) * eps_hat
        if sigma > 0:
            y_t = y_t + sigma * draw(ts[i + 1])
    return y_t.reshape(n, int(n_samples), *y_t.shape[1:])


def dpm_solver_levels(schedule: NoiseSchedule, steps: int, spacing: str = "time") -> list[float]:
    r"""The ``steps`` noise levels \bar\alpha at which :func:`dpm_solver_pp_sample` calls the network.

    ``spacing="time"``: \bar\alpha_t at the integer steps of :func:`ddim_timesteps` (the same
    levels as DDIM with that many steps). ``spacing="logsnr"``: levels evenly spaced in
    :math:`\lambda = \log\sqrt{\bar\alpha / (1 - \bar\alpha)}` from step T to step 1, the
    spacing of Lu et al.'s convergence analysis (the levels then fall between the schedule's).
    """
    if spacing == "time":
        return [schedule.alpha_bars[t - 1].item() for t in ddim_timesteps(schedule, steps)]
    if spacing != "logsnr":
        raise ValueError(f"spacing must be 'time' or 'logsnr', got {spacing!r}.")
    ddim_timesteps(schedule, steps)  # the same check of steps
    lambdas = 0.5 * torch.log(schedule.alpha_bars / (1 - schedule.alpha_bars))
    grid = torch.linspace(lambdas[-1].item(), lambdas[0].item(), int(steps), dtype=torch.float64)
    return torch.sigmoid(2 * grid).tolist()


@torch.no_grad()
def dpm_solver_pp_sample(model: Model, x: torch.Tensor, schedule: NoiseSchedule, steps: int = 10,
                         n_samples: int = 1, clip: bool = True, generator: torch.Generator | None = None,
                         progress: bool = False, noise: NoiseSource | None = None,
                         spacing: str = "time") -> torch.Tensor:
    r"""DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), data-prediction form, ``steps`` network calls.

    Not in the paper. Like DDIM it integrates the probability-flow ODE of the diffusion, but
    with a second-order multistep rule. In the paper's symbols, with
    :math:`\alpha_t = \sqrt{\bar\alpha_t}`, :math:`\sigma_t = \sqrt{1 - \bar\alpha_t}`, the
    half log-SNR :math:`\lambda_t = \log(\alpha_t / \sigma_t)` and the data prediction
    :math:`\hat y_0(y_t) = (y_t - \sigma_t \epsilon_\theta(x, y_t, \bar\alpha_t)) / \alpha_t`
    (Eq. 2), the levels t_0 > t_1 > ... > t_{M-1} of :func:`dpm_solver_levels` (t_0 = T) are
    visited with :math:`h_i = \lambda_{t_i} - \lambda_{t_{i-1}}` and :math:`r_i = h_{i-1} / h_i`:

    .. math::
        D_i = \left(1 + \frac{1}{2 r_i}\right) \hat y_0(y_{t_{i-1}})
              - \frac{1}{2 r_i} \hat y_0(y_{t_{i-2}}),\qquad
        y_{t_i} = \frac{\sigma_{t_i}}{\sigma_{t_{i-1}}}\, y_{t_{i-1}}
                  - \alpha_{t_i} \left(e^{-h_i} - 1\right) D_i

    The first step has no earlier prediction and uses :math:`D_1 = \hat y_0(y_{t_0})`: the
    first-order rule, which is exactly DDIM with ``eta=0`` (both give
    :math:`y_s = \alpha_s \hat y_0 + \frac{\sigma_s}{\sigma_t}(y_t - \alpha_t \hat y_0)`).
    The last step goes from t_{M-1} to :math:`\bar\alpha = 1` (:math:`\sigma = 0`,
    :math:`\lambda = \infty`), where :math:`r = 0` makes the second-order weights infinite; it
    is taken first-order too and returns :math:`\hat y_0(y_{t_{M-1}})`, as DDIM's last step
    does ("lower order final" in the reference code). So with ``spacing="time"`` and
    ``steps <= 2`` this is DDIM, step for step.

    The network is evaluated at the noise levels :math:`\bar\alpha_{t_i}` themselves: on the
    training grid with ``spacing="time"``, between its levels with ``spacing="logsnr"``, which
    the network accepts because it is conditioned on :math:`\bar\alpha` and trained on
    continuous levels. With ``clip`` each :math:`\hat y_0` is
    clamped to [-1, 1] before it enters :math:`D_i` (the thresholding that DPM-Solver++ was
    designed to allow). Deterministic given y_T. Returns (N, n_samples, C, H, W); ``noise`` as
    in :func:`ddpm_sample` (only ``noise(T)``, y_T, is drawn).
    """
    n = x.shape[0] if isinstance(x, torch.Tensor) else 0
    xs = _repeat_for_samples(x, n_samples)
    levels = dpm_solver_levels(schedule, steps, spacing)
    draw = noise or _generator_source((xs.shape[0], _target_channels(model), *xs.shape[2:]), generator, xs)
    y_t = draw(schedule.T)
    previous = None  # (lambda, y0_hat) of the level before
    for i, alpha_bar_t in enumerate(tqdm(levels, desc="DPM-Solver++ sampling", disable=not progress, leave=False)):
        alpha_t, sigma_t = math.sqrt(alpha_bar_t), math.sqrt(1 - alpha_bar_t)
        y0_hat = predict_y0(y_t, predict_noise(model, xs, y_t, alpha_bar_t), alpha_bar_t)
        if clip:
            y0_hat = y0_hat.clamp(-1, 1)
        if i + 1 == len(levels):
            y_t = y0_hat
            break
        alpha_s, sigma_s = math.sqrt(levels[i + 1]), math.sqrt(1 - levels[i + 1])
        lambda_t, lambda_s = math.log(alpha_t / sigma_t), math.log(alpha_s / sigma_s)
        h = lambda_s - lambda_t
        if previous is None:
            d = y0_hat
        else:
            r = (lambda_t - previous[0]) / h
            d = (1 + 1 / (2 * r)) * y0_hat - 1 / (2 * r) * previous[1]
        y_t = sigma_s / sigma_t * y_t - alpha_s * math.expm1(-h) * d
        previous = (lambda_t, y0_hat)
    return y_t.reshape(n, int(n_samples), *y_t.shape[1:])
