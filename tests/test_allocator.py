"""`lockd.allocator`: glibc takes the settings that return freed page buffers to the OS."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from lockd.allocator import return_freed_memory

_GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not _GLIBC, reason="only glibc's allocator is tuned")
def test_glibc_takes_the_settings() -> None:
    assert return_freed_memory() is True


@pytest.mark.skipif(not _GLIBC, reason="only glibc's allocator is tuned")
def test_a_freed_large_buffer_leaves_the_process() -> None:
    # In a fresh process: freeing a 16 MiB buffer moves glibc's dynamic threshold up, so the
    # next megabyte buffers come from the heap; values kept between them (as a parsed page's
    # tuple of files is) pin the heap, and the freed buffers stay resident unless the threshold
    # is fixed. The kept values themselves are 3.2 MiB.
    script = """
import sys
from lockd.allocator import return_freed_memory

def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")

if sys.argv[1] == "tuned":
    assert return_freed_memory()
big = bytearray(16 << 20)
del big
before = rss_kib()
buffers, pins = [], []
for _ in range(32):
    buffers.append(b"x" * (1 << 20))
    pins.append(b"y" * (100 << 10))
del buffers
print(rss_kib() - before)
"""
    grown = {}
    for mode in ("default", "tuned"):
        out = subprocess.run(
            [sys.executable, "-c", script, mode], capture_output=True, text=True, check=True
        ).stdout
        grown[mode] = int(out)
    assert grown["tuned"] < 8 * 1024 < grown["default"]
