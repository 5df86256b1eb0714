"""Store many locks for a drift benchmark quickly: runs inside the interpreter of one lockd tree.

    PYTHONPATH=<lockd tree> python bench/drift_store_worker.py JOB.json

Started as a script by `bench.drift_fleet` so that ``lockd`` is whichever tree ``PYTHONPATH`` names
(the oldest build measured, so every later build's ``lockd migrate`` can bring the database up to
its schema); it imports nothing from ``bench`` for the same reason.

Storing 10,000 locks through ``POST /lock`` takes about ten minutes, nearly all of it resolving
inputs that differ from a fixture case only by a ``!=0.0.0.N`` that excludes no release
(`bench.cases.with_nonce`). So each case is resolved through `Service.lock` (which also fills the
metadata cache a warm drift run reads), and each of the other inputs gets the lock that resolution
would give: the case's packages and warnings under the input's own digest and requirements, built
with `Lock.build` as the resolver builds it (`lockd.resolver.build`). The first nonce input of each
case is resolved for real as well, and the worker fails unless its lock is byte-identical to the
derived one, so the shortcut cannot drift from what ``POST /lock`` would store. Every lock is
stored as ``Service.lock`` stores a new input: the input's canonical bytes, the lock with its
rendered files, and revision 1, ``STORE_BATCH`` locks to a transaction.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Started as a script, sys.path[0] is bench/, whose module names (profile, timing…) shadow the stdlib.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

if TYPE_CHECKING:
    from lockd.inputs import LockRequest
    from lockd.lock import Lock
    from lockd.service import Service

__all__ = ["derived_lock", "main"]

STORE_BATCH = 200  # locks per transaction: an fsync per lock would cost more than the rest


def derived_lock(template: Lock, request: LockRequest) -> Lock:
    """The lock `request` resolves to when it resolves like `template`'s input (same target, plan,
    constraints and options; requirements that admit the same releases)."""
    from lockd.lock import Lock  # noqa: PLC0415  (the tree PYTHONPATH names)

    # An equal target, but the template's object: its tags, computed once, are most of what
    # rendering a lock costs beyond the text itself.
    target = template.target if template.target == request.target else request.target
    return Lock.build(
        input_digest=request.digest,
        target=target,
        plan=request.plan,
        requirements=[r.canonical for r in request.requirements],
        constraints=[c.canonical for c in request.constraints],
        options=request.options,
        packages=template.packages,
        warnings=template.warnings,
    )


def _resolved(service: Service, request: LockRequest) -> Lock:
    from lockd.lock import Lock  # noqa: PLC0415
    from lockd.store import queries, transaction  # noqa: PLC0415

    result = service.lock(request)
    with transaction(service.engine, write=False) as conn:
        canonical = queries.get_lock_canonical(conn, result.revision.lock_digest)
    assert canonical is not None
    return Lock.from_json(canonical)


def _store(service: Service, pairs: list[tuple[LockRequest, Lock]]) -> int:
    """`Service.lock`'s writes for a new input, for many inputs in one transaction; returns how many were new."""
    from lockd.lock_files import render_files  # noqa: PLC0415
    from lockd.store import queries, transaction  # noqa: PLC0415

    rendered = [(request, lock, render_files(lock)) for request, lock in pairs]
    stored = 0
    with transaction(service.engine, write=True) as conn:
        now = datetime.now(UTC)
        for request, lock, files in rendered:
            if queries.current_revision(conn, request.digest) is not None:
                continue
            queries.put_input(conn, request.digest, request.canonical_bytes(), now)
            service.put_lock(conn, lock, files, now)
            queries.put_revision(
                conn, input_digest=request.digest, n=1, lock_digest=lock.digest, reason="created", now=now
            )
            stored += 1
    return stored


def store_locks(service: Service, job: dict[str, Any]) -> dict[str, Any]:
    """Resolve each case, check one derived lock per case against a real resolution, store the rest."""
    started = time.perf_counter()
    cases: list[dict[str, Any]] = job["cases"]
    requests = [
        service.build_request(requirements=case["requirements"], target=case["target"]) for case in cases
    ]
    templates = [_resolved(service, request) for request in requests]
    resolved_s = time.perf_counter() - started
    checked: set[int] = set()
    pending: list[tuple[LockRequest, Lock]] = []
    stored = len(cases)
    for n, text in job["inputs"]:
        request = service.build_request(requirements=text, target=cases[n]["target"])
        lock = derived_lock(templates[n], request)
        if n not in checked:
            checked.add(n)
            real = _resolved(service, request)
            if real.canonical_bytes() != lock.canonical_bytes():
                raise SystemExit(f"{cases[n]['name']}: a derived lock differs from its resolution ({text!r})")
            stored += 1
            continue
        pending.append((request, lock))
        if len(pending) >= STORE_BATCH:
            stored += _store(service, pending)
            pending = []
    if pending:
        stored += _store(service, pending)
    return {"stored": stored, "resolved_s": round(resolved_s, 2), "seconds": time.perf_counter() - started}


def main(argv: list[str]) -> int:
    job: dict[str, Any] = json.loads(Path(argv[0]).read_text())
    from lockd.config import load_settings  # noqa: PLC0415
    from lockd.service import Service  # noqa: PLC0415

    settings = load_settings(
        database_url=job["database_url"],
        index_url=job["index_url"],
        pytorch_index_url=job["pytorch_base"],
        log_level="WARNING",
    )
    service = Service.open(settings)
    try:
        service.migrate()
        result = store_locks(service, job)
    finally:
        service.close()
    Path(job["out"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
