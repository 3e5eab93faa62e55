"""Progress of long inference runs: one bar over network calls, with an ETA and an early warning.

A restoration is a known number of network calls (tiles x sample chunks x sampler steps), each
of about the same cost, so a bar counting *calls* gives an honest ETA from the first seconds on,
where a bar counting tiles or images would stand still for minutes. The first call is timed and,
when ``first call x total calls`` exceeds ``slow_after_s``, a warning says so before the long
wait and names a faster setting (``hint``). The warning is written with ``tqdm.write`` (never
into a running bar), and a disabled progress prints nothing at all.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

from tqdm.auto import tqdm

__all__ = ["CallProgress", "as_progress", "format_duration"]

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

    The estimate is ``(time from start to the end of the first call) x total calls``: the first
    call includes its warm-up, so it errs on the long side. ``clock`` and ``write`` are
    injectable (tests use a fake clock and collect the messages).
    """

    def __init__(self, slow_after_s: float = 300.0, hint: str = DEFAULT_HINT, jobs: int = 1,
                 clock: Callable[[], float] = time.perf_counter, write: Callable[[str], None] = _stderr_write,
                 device: str | None = None):
        self.slow_after_s, self.hint, self.jobs = float(slow_after_s), hint, int(jobs)
        self.clock, self.write, self.device = clock, write, device
        self.bar = None
        self.total = self.done = 0
        self.started_at = None
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
        if self.done == 1 and self.started_at is not None:
            first = self.clock() - self.started_at
            self.estimate_s = first * self.total
            if self.estimate_s > self.slow_after_s:
                where = f" on {self.device}" if self.device else ""
                self.write(f"warning: this restoration will take about {format_duration(self.estimate_s)}{where} "
                           f"({self.total} network calls, the first took {first:.2f} s); {self.hint}.")
        if self.bar is not None:
            self.bar.update()

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
