"""Keep freed memory for the next network call: the page faults of a CPU restore, and their fix.

One call of a U-Net on the CPU allocates and frees dozens of feature maps of a few MB each.
glibc's ``malloc`` (the allocator of Linux) serves blocks above its *mmap threshold* with
fresh pages from the kernel and hands them back when they are freed, and it returns the top
of its heap to the kernel once more than the *trim threshold* lies free there. Either way the
next call writes to new pages, each of which the kernel first faults in and zeroes. Its
automatic thresholds do not settle for the U-Net's mix of sizes: in issue 12's 512² restore
(1200 calls of the quick DDPM's U-Net on 8 tiles of 72², two threads, channels-last) every
call page-faulted 14 600 times, and the kernel took 41 s of the run's 170 s of CPU time
(``benchmarks/results/restore_cpu.md``). With the thresholds set: 35 faults a call, 0.4 s in
the kernel, and the restore took 58 s instead of 86 s.

:func:`keep_freed_memory` fixes both thresholds with ``mallopt``, so that freed blocks stay
in the process and the next call reuses them. This is what PyTorch's performance tuning
guide gets by swapping in jemalloc or TCMalloc (``LD_PRELOAD``); ``mallopt`` needs no other
library and can be set from a running process. The price: the process keeps the memory of
its largest call until it exits, instead of giving it back between calls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # the parameter numbers of glibc's <malloc.h>
MMAP_THRESHOLD = 4 * 2**20 * ctypes.sizeof(ctypes.c_long)
"""Blocks up to this size (32 MiB on 64-bit Linux, the largest glibc accepts) come from the heap."""
TRIM_THRESHOLD = 2**30
"""Free memory at the top of the heap is returned to the kernel only beyond 1 GiB."""


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to :data:`MMAP_THRESHOLD` and :data:`TRIM_THRESHOLD`,
    once per process. Returns True when they are set; False where the C library is not glibc
    (macOS, Windows, Alpine's musl), which have no such thresholds to set and are left alone.

    :func:`teachdiff.core.precision.prepare_network` calls this for every network prepared for the
    CPU (what loading a checkpoint and training do). Setting either threshold turns off glibc's
    automatic adjustment of both (``mallopt(3)``), which is why this sets both.
    """
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" and _mallopt()


def _mallopt() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):
        return False
