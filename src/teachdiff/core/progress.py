"""Progress of long inference runs: one bar over network calls, with an ETA and an early warning.

A restoration is a known number of network calls (tiles x sample chunks x sampler steps), each
of about the same cost, so a bar counting *calls* gives an honest ETA from the first seconds on,
where a bar counting tiles or images would stand still for minutes. The first call is a warm-up
(memory allocation, kernel selection, caches: on a CPU it took 10x the later calls), so the
estimate is made from the calls after it: the time so far plus the remaining calls at the rate
of the next ``WINDOW`` calls. When that exceeds ``slow_after_s``, a warning says so before the
long wait and names a faster setting (``hint``). The warning is written with ``tqdm.write``
(never into a running bar), and a disabled progress prints nothing at all.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

from tqdm.auto import tqdm

__all__ = ["CallProgress", "as_progress", "format_duration"]

WARMUP_CALLS = 1  # left out of the rate: the first call pays for allocation and kernel selection
WINDOW = 2  # calls after the warm-up whose rate makes the estimate

DEFAULT_HINT = ("for a faster result use the DDIM sampler with about 10 steps (sampler='ddim', steps=10) "
                "and/or fewer samples")


def format_duration(seconds: float) -> str:
    """``42 s``, ``3.5 min`` or ``2.1 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _stderr_write(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


class CallProgress:
    """A progress bar over network calls that warns early when the whole run will take long.

    Use: ``start(total_calls, desc)`` once the work is planned, ``step()`` after every network
    call, ``close()`` at the end. ``jobs`` (e.g. the slices of a z-stack, each planned and
    started separately) multiplies the first ``start``'s total, so the bar and the estimate
    cover the whole run; later ``start`` calls only update the description.

    The estimate, made after the warm-up call and ``WINDOW`` more (or after the last call of a
    shorter run), is ``elapsed + remaining calls x (time of the window's calls / WINDOW)``: the
    warm-up counts once, as it does in the run, not once per call. ``clock`` and ``write`` are
    injectable (tests use a fake clock and collect the messages).
    """

    def __init__(self, slow_after_s: float = 300.0, hint: str = DEFAULT_HINT, jobs: int = 1,
                 clock: Callable[[], float] = time.perf_counter, write: Callable[[str], None] = _stderr_write,
                 device: str | None = None):
        self.slow_after_s, self.hint, self.jobs = float(slow_after_s), hint, int(jobs)
        self.clock, self.write, self.device = clock, write, device
        self.bar = None
        self.total = self.done = 0
        self.started_at = self.warm_at = None
        self.estimate_s: float | None = None

    def start(self, total_calls: int, desc: str) -> None:
        if self.bar is not None:
            self.bar.set_description(desc)
            return
        self.total = int(total_calls) * self.jobs
        self.bar = tqdm(total=self.total, desc=desc, unit="call", leave=False, dynamic_ncols=True)
        self.started_at = self.clock()

    def step(self) -> None:
        self.done += 1
        if self.started_at is not None and self.estimate_s is None:
            self._estimate()
        if self.bar is not None:
            self.bar.update()

    def _estimate(self) -> None:
        if self.done == WARMUP_CALLS:
            self.warm_at = self.clock()
        if self.warm_at is None or self.done < min(WARMUP_CALLS + WINDOW, self.total) or self.done >= self.total:
            return
        now = self.clock()
        per_call = (now - self.warm_at) / (self.done - WARMUP_CALLS)
        self.estimate_s = (now - self.started_at) + per_call * (self.total - self.done)
        if self.estimate_s > self.slow_after_s:
            where = f" on {self.device}" if self.device else ""
            self.write(f"warning: this restoration will take about {format_duration(self.estimate_s)}{where} "
                       f"({self.total} network calls of {per_call:.2g} s each after a first, warm-up call of "
                       f"{self.warm_at - self.started_at:.2g} s); {self.hint}.")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def as_progress(progress: bool | CallProgress | None) -> tuple[CallProgress | None, bool]:
    """``(meter, owned)``: ``True`` makes a new :class:`CallProgress` (owned: the caller closes
    it), ``False``/``None`` none (silent: no bar, no warning), an instance is used as it is."""
    if isinstance(progress, CallProgress):
        return progress, False
    return (CallProgress(), True) if progress else (None, False)
