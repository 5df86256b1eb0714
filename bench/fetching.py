"""Bytes fetched per cold resolution, against the total size of the files the lock pins.

The numbers come from lockd's own `FetchStats.bytes_fetched` during an in-process cold resolution
(a fresh `IndexClient`), and, where the fixture index served part of it, from the fixture's own
counters. The pinned files' size is the sum of `LockedFile.size` over the lock: what an installer
would download for every compatible file, the cost lockd avoids by reading metadata instead.
"""

from __future__ import annotations

from bench.timing import Measurement

__all__ = ["bytes_rows"]


def bytes_rows(resolution: list[Measurement]) -> list[Measurement]:
    """One "bytes" row per case from its first lockd-inproc cold sample (or why there is none)."""
    rows = []
    for r in resolution:
        if r.tool != "lockd-inproc" or r.mode != "cold":
            continue
        samples = r.samples[:1]
        rows.append(
            Measurement(
                "bytes", r.case, r.index, "lockd-inproc", "cold", samples, r.status, r.detail, r.extra
            )
        )
    return rows
