"""How a lock request names its targets, and how the answer says what each lock holds.

Target parameters of `POST /lock` given several times name several targets (`target_specs`);
their answer is the `bundle` format, JSON naming each target's lock and the packages whose
versions differ (`bundle_response`). Every answer says which accelerator builds a lock holds:
the variant, how it was chosen (`cuda=auto` and why), and for a lock without a variant the GPU
runtime it pulls from PyPI (`accelerator_info`, the `Lock-Accelerator` header).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from fastapi.responses import Response

from lockd.bundles import MAX_TARGETS, Bundle, lock_bundle
from lockd.errors import InvalidRequest
from lockd.http.deps import in_thread
from lockd.http.files import file_links
from lockd.http.models import AcceleratorInfo, BundleInfo, DifferenceInfo, LockInfo, LockLinks
from lockd.inputs import LockRequest
from lockd.service import Service

__all__ = [
    "BUNDLE",
    "accelerator_header",
    "accelerator_info",
    "bundle_response",
    "lock_links",
    "target_specs",
]

BUNDLE = "bundle"


def lock_links(input_digest: str, lock_digest: str) -> LockLinks:
    base = f"/v1/locks/{input_digest}"
    return LockLinks(
        self=base, revisions=f"{base}/revisions", refresh=f"{base}/refresh", files=file_links(lock_digest)
    )


def accelerator_info(request: LockRequest, runtime: str | None) -> AcceleratorInfo:
    target = request.target
    selection = request.selection
    return AcceleratorInfo(
        variant=target.variant_name,
        chosen_by=None if target.variant is None else ("auto" if target.driver is not None else "request"),
        driver=None if target.driver is None else str(target.driver),
        reason=None if selection is None else selection.reason,
        runtime=runtime,
    )


def accelerator_header(info: AcceleratorInfo) -> str:
    """`cu128`; `cu130; auto; driver="580.65.6"`; `none; runtime="CUDA 12 runtime from PyPI"`."""
    parts = [info.variant or "none"]
    if info.chosen_by == "auto":
        parts.append("auto")
    if info.driver is not None:
        parts.append(f'driver="{info.driver}"')
    if info.runtime is not None:
        parts.append(f'runtime="{info.runtime}"')
    return "; ".join(parts)


def target_specs(values: dict[str, list[str] | None]) -> list[dict[str, object]]:
    """Target query parameters → one spec per target.

    A parameter given once applies to every target; parameters given N times give N targets,
    the i-th value of each belonging to the i-th target.
    """
    counts = {name: len(given) for name, given in values.items() if given}
    repeated = {count for count in counts.values() if count > 1}
    if len(repeated) > 1:
        raise InvalidRequest(
            "target parameters given several times must all be given the same number of times",
            hint="e.g. ?python=3.11&platform=linux_x86_64&platform=linux_aarch64&cuda=cpu&cuda=cu128",
            context={"field": "targets", "counts": counts},
        )
    targets = max(repeated, default=1)
    if targets > MAX_TARGETS:
        raise InvalidRequest(
            f"at most {MAX_TARGETS} targets", context={"field": "targets", "limit": MAX_TARGETS}
        )
    specs: list[dict[str, object]] = []
    for number in range(targets):
        spec: dict[str, object] = {}
        for name, given in values.items():
            if given:
                spec[name] = given[number] if len(given) > 1 else given[0]
        specs.append(spec)
    return specs


def _bundle_info(bundle: Bundle) -> BundleInfo:
    locks = []
    for member in bundle.members:
        canonical = member.request.to_json()
        result = member.result
        info = LockInfo(
            input_digest=result.input_digest,
            lock_digest=result.lock_digest,
            revision=result.revision.n,
            created=result.created,
            created_at=result.revision.created_at,
            target=canonical["target"],
            requirements=canonical["requirements"],
            constraints=canonical["constraints"],
            links=lock_links(result.input_digest, result.lock_digest),
            accelerator=accelerator_info(member.request, member.lock.accelerator_runtime),
        )
        locks.append(info)
    differences = [
        DifferenceInfo(name=d.name, versions=dict(d.versions), reason=d.reason) for d in bundle.differences
    ]
    return BundleInfo(locks=locks, differences=differences)


async def bundle_response(
    request: Request, service: Service, build: Callable[[], list[LockRequest]]
) -> Response:
    def work() -> Bundle:
        return lock_bundle(service, build())

    bundle = await in_thread(request, work)
    for member in bundle.members:
        request.app.state.metrics.observe_lock(member.result)
    return Response(
        _bundle_info(bundle).model_dump_json(),
        status_code=201 if bundle.created else 200,
        media_type="application/json",
        headers={"Lock-Digests": ", ".join(m.result.lock_digest for m in bundle.members)},
    )
