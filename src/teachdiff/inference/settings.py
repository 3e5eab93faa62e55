"""The sampling settings of DDPM-avg that teachdiff names: the paper's and the fast default,
and the samplers there are.

Apart from :mod:`teachdiff.inference.sampling` (which re-exports them) because the command line's
help texts quote them, and ``teachdiff --help`` must not import torch.

One setting travels from the command line's flags to the sampler: ``teachdiff restore`` builds a
:class:`SamplingSetting` from ``--sampler --steps --samples --eta`` and passes it down
(:func:`teachdiff.inference.restore.restore_method_image`). Its default is :data:`FAST_SAMPLING`, for
the command line and for restoring with a trained method in Python. Two places choose otherwise,
on purpose: the functions that take a bare network and schedule (``inference.sampling.sample``,
``inference.restore.restore`` and ``restore_image``) default to the paper's sampler, DDPM over all
T steps, because they show the paper's method; and the trainer validates with one deterministic
DDIM sample of ``DiffusionConfig.val_steps`` steps (``DiffusionMethod.restore``).

The seed and the clipping are not part of a setting: the seed only picks which samples are drawn,
and ``clip`` (with Eq. 7's ``variance``) is how the model was trained, so it comes from the model
(``DiffusionMethod.sampler_options()``). Calibrations and the frontier record a setting by these
four fields.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SAMPLERS", "SamplingSetting", "PAPER_SAMPLING", "FAST_SAMPLING"]

SAMPLERS = ("ddpm", "ddim", "dpm++")


@dataclass(frozen=True)
class SamplingSetting:
    """A sampler, its network calls per sample (``steps``; T for DDPM), the samples averaged, and
    DDIM's ``eta`` (0: deterministic, 1: fresh noise at every step)."""

    sampler: str
    steps: int
    samples: int
    eta: float = 0.0

    @property
    def calls(self) -> int:
        """Network calls per patch: steps x samples."""
        return self.steps * self.samples

    def __str__(self) -> str:
        name = {"ddpm": "DDPM", "ddim": "DDIM", "dpm++": "DPM-Solver++(2M)"}[self.sampler]
        if self.sampler == "ddim" and self.eta:
            name += f" (eta = {self.eta:g})"
        return f"{name}, {self.steps} steps, mean of {self.samples} samples ({self.calls} network calls per patch)"


PAPER_SAMPLING = SamplingSetting("ddpm", 200, 15)
"""The paper's DDPM-avg (§S5): 15 ancestral samples of T = 200 steps."""

FAST_SAMPLING = SamplingSetting("ddim", 10, 8, eta=1.0)
"""The fast equivalent: the cheapest setting of at least 8 samples whose MAE was within 2 % of
DDPM-avg-15's on every synthetic dataset measured in ``benchmarks/results/frontier.md`` (the quick
zoo's DDPMs, 8 test patches each), and of those with as many calls the most accurate on its worst
dataset: 8 samples of 10 stochastic DDIM steps, 80 instead of 3000 network calls (deterministic
DDIM with as many calls also passed, but by less). The cheapest of all, 4 samples, was as good by MAE; 8 because the std map of fewer
samples is too noisy and biased low to read (``bench_frontier.MAP_SAMPLES``). Rerun
``benchmarks/bench_frontier.py --checkpoint ...`` for other models before relying on it."""
