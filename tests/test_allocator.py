"""keep_freed_memory: a network call on the CPU reuses freed memory instead of faulting in pages."""

import platform
import subprocess
import sys

import pytest

from teachdiff.core import allocator

# One process per setting (the thresholds are process-wide and cannot be unset): five calls of
# the tiny U-Net on 8 tiles of 72², then the minor page faults of five more, per call. Both
# settings use the same (channels-last) layout, so only the allocator differs.
FAULTS_PER_CALL = """
import resource, sys, torch
from teachdiff.core import allocator
from teachdiff.core.unet import MPUNet, UNetConfig
torch.set_num_threads(1)
net = MPUNet(UNetConfig.tiny()).eval().to(memory_format=torch.channels_last)
if sys.argv[1] == "keep":
    assert allocator.keep_freed_memory()
x, level = torch.randn(8, 1, 72, 72), torch.rand(8)
with torch.inference_mode():
    for _ in range(5):
        net(x, x, level)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        net(x, x, level)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="the thresholds exist only in glibc's malloc")


def faults_per_call(setting: str) -> float:
    run = subprocess.run([sys.executable, "-c", FAULTS_PER_CALL, setting], capture_output=True, text=True,
                         timeout=300, check=True)
    return float(run.stdout.split()[-1])


@glibc
def test_network_calls_stop_page_faulting():
    """With the setting a call's feature maps come back from the heap (at most a few page faults a
    call); glibc's own thresholds do not settle for this mix of sizes (thousands a call)."""
    kept = faults_per_call("keep")
    assert kept < 500
    assert faults_per_call("default") > 4 * kept


def test_other_c_libraries_are_left_alone(monkeypatch):
    monkeypatch.setattr(platform, "libc_ver", lambda *a, **k: ("", ""))
    monkeypatch.setattr(allocator, "_mallopt", lambda: pytest.fail("mallopt called on a non-glibc system"))
    allocator.keep_freed_memory.cache_clear()
    try:
        assert allocator.keep_freed_memory() is False
    finally:
        allocator.keep_freed_memory.cache_clear()
