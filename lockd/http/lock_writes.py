"""Locking: `POST /lock` (raw requirements.in) and `POST /v1/locks` (JSON).

The first request for an input digest resolves (201); later identical requests return the
stored current revision without resolving (200), byte-identical. Both carry the lock's
advisories as they are known now (`Lockd-Advisories`, see `advisory_routes`). Several targets
in one request (`targets` in JSON; target parameters given several times on `POST /lock`,
answered in the `bundle` format) lock each target, the first one's pins preferred by the others
(`lockd.bundles`). Every answer says which accelerator builds the lock holds
(`Lock-Accelerator`, and `accelerator` in JSON). With `name=`, the lock is made under a name
(`lockd.names`: minimal churn, `upgrade=`) and the answer says which (`Lock-Name`).

A repeated `POST /lock` of a stored input (what CI does all day) is answered on the event loop
when this process has the request's intake, the input's current revision and the file in
memory (`Service.known_request`, `cached_lock_and_file`): no thread, no query. Anything missing
goes the long way, one hop on the small read pool, and only an input never locked is admitted
to resolve.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from lockd.errors import InvalidRequest, InvalidRequirement
from lockd.http.admission import resolve_admitted
from lockd.http.advisory_routes import advisory_headers
from lockd.http.deps import (
    NamesDep,
    ServiceDep,
    actor,
    allow_name,
    in_read_thread,
    requires,
)
from lockd.http.files import file_response, format_from_accept
from lockd.http.lock_targets import (
    BUNDLE,
    accelerator_header,
    accelerator_info,
    bundle_response,
    target_specs,
)
from lockd.http.locks import lock_info
from lockd.http.models import LockBody, LockInfo, TargetBody
from lockd.http.problems import ERROR_RESPONSES as _ERRORS
from lockd.inputs import LockOptions, LockRequest, decode_body
from lockd.lock import LockWarning, accelerator_runtime_of
from lockd.names import Names, UpgradeNotInLock, parse_upgrade
from lockd.render import DEFAULT_FORMAT, FORMATS
from lockd.service import LockResult, Service
from lockd.stored import LockFile, StoredInput

__all__ = ["hit_headers", "router"]

router = APIRouter(tags=["locks"])

_TEXT_TYPES = ("text/", "application/octet-stream", "application/x-www-form-urlencoded")
_FORMAT_CHOICES = ", ".join(FORMATS) + " or bundle (JSON naming each target's lock; for several targets)"


async def _run_lock(
    request: Request,
    service: Service,
    build: Callable[[], LockRequest],
    names: Names,
    named: tuple[str | None, str | None],
) -> LockResult:
    name, upgrade = named
    allow_name(request, name)
    who = actor(request)
    if name is None:
        if upgrade is not None:
            raise UpgradeNotInLock(
                "upgrade= needs a name=: only a named lock has pins to keep or upgrade",
                context={"field": "upgrade"},
            )

        def lookup() -> tuple[LockRequest, LockResult | None]:
            lock_request = build()
            stored = service.stored_lock_and_file(lock_request, DEFAULT_FORMAT)
            return lock_request, None if stored is None else stored[0]

        # As for `POST /lock`: a stored input is one read; only a new one is admitted to resolve.
        lock_request, result = await in_read_thread(request, lookup)
        if result is None:
            result = await resolve_admitted(request, lock_request.digest, lambda: service.lock(lock_request))
    else:
        named_request = await in_read_thread(request, build)
        result = await resolve_admitted(
            request,
            named_request.digest,
            lambda: names.lock(named_request, name=name, upgrade=parse_upgrade(upgrade), actor=who).result,
        )
    request.app.state.metrics.observe_lock(result)
    return result


def hit_headers(
    result: LockResult, lock_request: LockRequest, canonical: bytes, advisories: dict[str, str]
) -> dict[str, str]:
    """The headers of a `POST /lock` answer (the route's, and `lockd.http.hot_hits`'s)."""
    return {
        "Input-Digest": result.input_digest,
        "Lock-Digest": result.lock_digest,
        "Lock-Revision": str(result.revision.n),
        "Location": f"/v1/locks/{result.input_digest}",
        "Cache-Control": "no-cache",
        **advisories,
        "Lock-Accelerator": accelerator_header(
            accelerator_info(lock_request, accelerator_runtime_of(canonical))
        ),
    }


class UnsupportedMediaType(InvalidRequest):
    code = "unsupported-media-type"
    status = 415
    title = "Unsupported media type"


def _require_content_type(
    request: Request, allowed: tuple[str, ...], hint: str, *, required: bool = False
) -> None:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not content_type and required:
        raise UnsupportedMediaType("the request has no content type", hint=hint)
    if content_type and not content_type.startswith(allowed):
        raise UnsupportedMediaType(f"content type {content_type!r} is not accepted here", hint=hint)


async def _json_only(request: Request) -> None:
    # A dependency, so it runs before FastAPI validates the body as JSON. FastAPI parses a body
    # without a content type as bytes, not JSON, so that is refused here rather than as a
    # confusing "body: Input should be a valid dictionary".
    _require_content_type(
        request,
        ("application/json",),
        "send a JSON object with requirements and target, as Content-Type: application/json",
        required=True,
    )


@router.post(
    "/lock",
    status_code=201,
    dependencies=[Depends(requires("lock"))],
    summary="Lock a raw requirements.in (for `curl --data-binary`)",
    responses={
        200: {"description": "Already locked: the stored current revision"},
        201: {"description": "Resolved and stored as revision 1"},
        **_ERRORS,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/plain": {"schema": {"type": "string"}, "example": "torch==2.5.1\nnumpy\n"}},
        }
    },
)
async def post_lock(
    *,
    request: Request,
    service: ServiceDep,
    python: Annotated[list[str] | None, Query(description="3.11, 3.11.7 or 3.14t (free-threaded)")] = None,
    platform: Annotated[
        list[str] | None,
        Query(
            description="linux_x86_64, linux_aarch64, macos_arm64, macos_x86_64, windows_amd64, windows_arm64"
            " (or uv's and conda's names)"
        ),
    ] = None,
    cuda: Annotated[list[str] | None, Query(description="cpu, cu118 … cu132, rocm6.x/7.x, xpu, auto")] = None,
    glibc: Annotated[list[str] | None, Query(description="Linux glibc minimum, 2.17 … 2.41 (2.28)")] = None,
    musl: Annotated[list[str] | None, Query(description="Linux on musl: 1.1 or 1.2")] = None,
    macos: Annotated[list[str] | None, Query(description="macOS minimum (13.0)")] = None,
    driver: Annotated[list[str] | None, Query(description="with cuda=auto: 580.65.06 or rocm6.4")] = None,
    format: Annotated[str | None, Query(description=_FORMAT_CHOICES)] = None,
    pre: Annotated[bool, Query(description="allow pre-releases")] = False,
    index: Annotated[
        list[str] | None, Query(description="private indexes to use, by configured name")
    ] = None,
    only_binary: Annotated[
        bool, Query(description="wheels only: rule out versions without one (pip's --only-binary :all:)")
    ] = False,
    name: Annotated[
        str | None, Query(max_length=200, description="lock under this name, e.g. vision/trainer")
    ] = None,
    upgrade: Annotated[str | None, Query(max_length=10_000, description="with name: `all`, or a,b")] = None,
    names: NamesDep,
) -> Response:
    _require_content_type(
        request, _TEXT_TYPES, "send the requirements.in as the raw body (text/plain); JSON goes to /v1/locks"
    )
    given = {"platform": platform, "python": python, "cuda": cuda, "glibc": glibc, "musl": musl}
    specs = target_specs({**given, "macos": macos, "driver": driver})
    body = await request.body()

    def asked(spec: dict[str, object]) -> dict[str, Any]:
        return {
            "requirements": decode_body(body),
            "target": spec,
            "options": LockOptions(prereleases=pre, only_binary=only_binary),
            "indexes": index or (),
        }

    def build_one(spec: dict[str, object]) -> LockRequest:
        return service.build_request(**asked(spec))

    if len(specs) > 1 or format == BUNDLE:
        if format not in (None, BUNDLE):
            raise InvalidRequest(
                f"several targets are answered in the bundle format, not {format!r}",
                hint="leave format out (or format=bundle), then fetch each lock's files from its links",
                context={"field": "format", "value": format},
            )
        return await bundle_response(request, service, lambda: [build_one(spec) for spec in specs])
    fmt = format_from_accept(format, request.headers.get("accept"))

    def lookup() -> tuple[LockRequest, tuple[LockResult, LockFile] | None]:
        lock_request = build_one(specs[0])
        return lock_request, service.stored_lock_and_file(lock_request, fmt)

    # A stored input (the common case) is one hop on the small read pool: intake, the current
    # revision and the file. Only an input never locked moves to the pool that may resolve.
    def resolve() -> tuple[LockResult, LockFile]:
        # `lock` looks for a stored revision again: another request may have stored it meanwhile.
        locked = service.lock(lock_request)
        return locked, service.lock_file(locked.lock_digest, fmt)

    known: LockRequest | None = None
    if name is not None or upgrade is not None:
        built: list[LockRequest] = []

        def build() -> LockRequest:
            built.append(build_one(specs[0]))
            return built[0]

        result = await _run_lock(request, service, build, names, (name, upgrade))
        lock_request = built[0]
        record = await in_read_thread(request, lambda: service.lock_file(result.lock_digest, fmt))
    else:
        allow_name(request, None)
        known = service.known_request(**asked(specs[0]))
        stored = None if known is None else service.cached_lock_and_file(known, fmt)
        if known is None or stored is None:
            lock_request, stored = await in_read_thread(request, lookup)
        else:
            lock_request = known
        result, record = (
            stored if stored is not None else await resolve_admitted(request, lock_request.digest, resolve)
        )
        request.app.state.metrics.observe_lock(result)
    kept = service.cached_file(result.lock_digest, "json")
    canonical = (
        kept.content
        if kept is not None
        else await in_read_thread(request, lambda: service.lock_file(result.lock_digest, "json").content)
    )
    advisories = await advisory_headers(request, service, result.lock_digest)
    headers = hit_headers(result, lock_request, canonical, advisories)
    if name is None and known is not None and result.stats is None:
        # The next byte-identical request is answered before routing (`lockd.http.hot_hits`).
        request.app.state.hot_hits.remember(request, body, known, fmt)
    if name is not None:
        headers.update({"Lock-Name": name, "Location": f"/v1/names/{name}"})
    return file_response(request, record, status=201 if result.created else 200, headers=headers)


@router.post(
    "/v1/locks",
    status_code=201,
    response_model=LockInfo,
    dependencies=[Depends(requires("lock")), Depends(_json_only)],
    summary="Lock requirements given as JSON; answers metadata and links",
    responses={200: {"description": "Already locked", "model": LockInfo}, **_ERRORS},
)
async def post_locks(request: Request, service: ServiceDep, names: NamesDep, body: LockBody) -> Response:

    def text(value: str | list[str], source: str) -> str:
        if isinstance(value, str):
            return value
        lines = [item.strip() for item in value]
        for number, line in enumerate(lines, start=1):
            # One item is one line: a line break inside would shift every later line number.
            if len(line.splitlines()) > 1:
                raise InvalidRequirement(
                    f"{source} line {number}: a list item holds more than one line",
                    hint="send one requirement per list item, or the whole file as one string",
                    context={"line": number, "source": source},
                )
        return "\n".join(lines)

    def build_one(target: TargetBody) -> LockRequest:
        return service.build_request(
            requirements=text(body.requirements, "requirements.in"),
            constraints=text(body.constraints, "constraints.txt"),
            target=target.model_dump(exclude_none=True),
            options=LockOptions(
                prereleases=body.options.prereleases,
                as_of=body.options.as_of,
                only_binary=body.options.only_binary,
            ),
            indexes=body.indexes,
        )

    if body.targets is not None:
        targets = body.targets
        return await bundle_response(request, service, lambda: [build_one(t) for t in targets])
    assert body.target is not None  # the model asks for exactly one of target and targets
    single = body.target
    built: list[LockRequest] = []

    def build() -> LockRequest:
        built.append(build_one(single))
        return built[0]

    result = await _run_lock(request, service, build, names, (body.name, body.upgrade))

    def read() -> tuple[StoredInput, bytes, tuple[LockWarning, ...]]:
        content = service.lock_file(result.lock_digest, "json").content
        return service.stored_input(result.input_digest), content, service.lock_warnings(result.lock_digest)

    stored, canonical, warnings = await in_read_thread(request, read)
    info = lock_info(stored, result.revision, result.created, warnings)
    info.accelerator = accelerator_info(built[0], accelerator_runtime_of(canonical))
    info.name = body.name
    return Response(
        info.model_dump_json(),
        status_code=201 if result.created else 200,
        media_type="application/json",
        headers={
            "Input-Digest": result.input_digest,
            "Lock-Digest": result.lock_digest,
            "Location": f"/v1/locks/{result.input_digest}",
            **await advisory_headers(request, service, result.lock_digest),
            "Lock-Accelerator": accelerator_header(info.accelerator),
        },
    )
