"""Lock requests already built, by what was asked: a repeated request's intake parses nothing.

Intake (`lockd.intake`) is a pure function of what was asked and the process's settings,
except where the target depends on what an index offers now (`cuda=auto`): such a request is
never kept. `RequestMemo.build` learns that by watching whether intake consulted the offers.
Bounded by entry count (`BoundedCache`); thread-safe. What is kept is a copy with a target of
its own: a `Target` caches its tag tables (~150 KB) once a resolution asks for them, and 4096
kept requests holding those grew each worker by 150 MB in two minutes of `tests/test_load.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from lockd.accelerator import Accelerator
from lockd.inputs import LockOptions, LockRequest
from lockd.intake import OffersFor
from lockd.memory_cache import BoundedCache
from lockd.target import Target, VariantOffers

__all__ = ["RequestKey", "RequestMemo", "request_key"]

_KEPT = 1024

RequestKey = tuple[object, ...]


def request_key(
    requirements: str,
    target: Mapping[str, object],
    constraints: str,
    options: LockOptions | None,
    indexes: Sequence[str],
) -> RequestKey:
    return (requirements, repr(sorted(target.items())), constraints, options, tuple(indexes))


class RequestMemo:
    def __init__(self) -> None:
        self._kept: BoundedCache[RequestKey, LockRequest] = BoundedCache(_KEPT)

    def get(self, key: RequestKey) -> LockRequest | None:
        return self._kept.get(key)

    def build(
        self, key: RequestKey, build: Callable[[OffersFor], LockRequest], offers_for: OffersFor
    ) -> LockRequest:
        """`build(offers)`, kept unless it asked the offers (the index's pages chose the target)."""
        consulted: list[bool] = []

        def offers(*args: Any) -> VariantOffers:
            answer = offers_for(*args)

            def asked(base: Target, variant: Accelerator) -> str | None:
                consulted.append(True)
                return answer(base, variant)

            return asked

        built = build(offers)
        if not consulted:
            self._kept.put(key, replace(built, target=replace(built.target)))
        return built
