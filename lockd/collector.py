"""The cycle collector's settings for a lockd process that resolves: fewer passes over a heap that only grows.

A cold resolution builds hundreds of thousands of long-lived objects (the files of every page it
reads, the versions and specifiers they share) and almost no garbage cycles. Under CPython's
default thresholds (700, 10, 10) the collector runs a young pass every 700 allocations and, as
the heap keeps growing, full passes over all of it again and again: measured on the 303 pages
of a cold pypi-300 resolution, parsed and kept, the collector was a third of the CPU.

`tune_collector` freezes what start-up made (modules, classes, the settings: never garbage)
into the permanent generation, and raises the thresholds so a young pass comes every
`_YOUNG` allocations and a full one rarely. Cycles are still collected, only less often.
"""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "tune_collector"]

_YOUNG = 20_000
_MIDDLE = 20
_OLD = 50
THRESHOLDS = (_YOUNG, _MIDDLE, _OLD)  # what `gc.get_threshold()` answers once tuned


def tune_collector() -> None:
    """Call once start-up imports are done, before the first resolution."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
