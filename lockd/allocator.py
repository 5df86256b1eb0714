"""The C allocator's settings for a long-running lockd process: memory freed after a page is parsed goes back.

A cold resolution fetches hundreds of project pages on the prefetch threads; each leaves behind
megabytes of freed buffers (the body, its decoded text, the decoded JSON). Under glibc's
defaults these stay in the process: the first freed multi-megabyte buffer raises the mmap
threshold, so later bodies come from the heap of whichever thread read them, and each thread
has an arena of its own. Measured on `bench/cases/pypi-300` (302 pins, real PyPI, one process,
cold, A/B interleaved): peak RSS 309-366 MB under the defaults, 233-263 MB with both settings
below (either alone: 247-268 MB), for the same CPU time.

Only glibc is tuned (`mallopt` through ctypes); elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes

__all__ = ["return_freed_memory"]

# From glibc's <malloc.h>.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

# Buffers this large or larger are mapped on their own and unmapped when freed (glibc's default
# before its dynamic threshold moves it up to 32 MiB).
_MMAP_THRESHOLD = 128 * 1024
# Threads share two heaps: the GIL serialises most allocation anyway.
_ARENA_MAX = 2


def return_freed_memory() -> bool:
    """Sets glibc's mmap threshold and arena cap; False where the C library has no `mallopt`.

    Call it once, early in the process (before the prefetch threads start allocating).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no C library to load, or not glibc (macOS)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt answers 1 on success, 0 on failure (musl's stub always fails).
    threshold_set = int(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) == 1
    arenas_set = int(mallopt(_M_ARENA_MAX, _ARENA_MAX)) == 1
    return threshold_set and arenas_set
