"""The one error hierarchy of lockd.

Every failure a user can cause or observe is a `LockdError` with a stable kebab-case
`code`, a human `message`, an optional `hint`, and structured `context` (the offending
requirements line, the conflicting requirements, the URL). The HTTP edge renders it as
RFC 9457 problem+json; the CLI prints message and hint. Library exceptions (httpx,
resolvelib, SQLAlchemy) are translated where they are caught and never leak upward.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "CudaMismatch",
    "Forbidden",
    "IndexUnavailable",
    "InputTooLarge",
    "InvalidRequest",
    "InvalidRequirement",
    "InvalidTarget",
    "LockdError",
    "MetadataMismatch",
    "NoMatchingDistribution",
    "NotFound",
    "ResolutionImpossible",
    "ResolutionTimeout",
    "ResponseTooLarge",
    "SdistNeedsBuild",
    "StoreUnavailable",
    "TamperedFile",
    "Unauthorized",
    "UnknownProject",
    "UnsupportedRequirement",
    "UnusableMetadata",
    "jsonable",
]


class LockdError(Exception):
    """Base of every error lockd reports; `code` and `status` are part of the API."""

    code: ClassVar[str] = "lockd-error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, message: str, *, hint: str | None = None, context: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.context: dict[str, Any] = dict(context or {})

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\nhint: {self.hint}"

    def to_json(self) -> dict[str, Any]:
        """The error as JSON: what a waiter in another process re-raises (see `from_json`)."""
        return {"code": self.code, "message": self.message, "hint": self.hint, "context": jsonable(self.context)}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> LockdError:
        """The same class and fields again, by stable code; unknown codes become the base class."""
        cls = _error_classes().get(str(data.get("code")), LockdError)
        message = str(data.get("message"))
        hint, context = data.get("hint"), data.get("context") or {}
        try:
            return cls(message, hint=hint, context=context)
        except TypeError:  # a subclass with its own constructor: keep the code, lose the type
            return LockdError(message, hint=hint, context=context)


def _error_classes() -> dict[str, type[LockdError]]:
    found: dict[str, type[LockdError]] = {}
    pending: list[type[LockdError]] = [LockdError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


def jsonable(value: Any) -> Any:
    """Context values made JSON-safe: containers recurse, anything else becomes its `str`."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class InvalidRequirement(LockdError):
    """A requirements line is not valid PEP 508."""

    code = "invalid-requirement"
    status = 422
    title = "Invalid requirement"


class UnsupportedRequirement(LockdError):
    """`-r`, `-e`, URLs, paths, VCS and index options: lockd locks names and specifiers only."""

    code = "unsupported-requirement"
    status = 422
    title = "Unsupported requirement"


class InvalidTarget(LockdError):
    code = "invalid-target"
    status = 422
    title = "Invalid target"


class InvalidRequest(LockdError):
    """The request itself is malformed: bad JSON, wrong content type, bad parameter."""

    code = "invalid-request"
    status = 400
    title = "Invalid request"


class InputTooLarge(LockdError):
    code = "input-too-large"
    status = 413
    title = "Input too large"


class UnknownProject(LockdError):
    code = "unknown-project"
    status = 422
    title = "Unknown project"


class NoMatchingDistribution(LockdError):
    """A project exists, but no version/file satisfies the specifier for this target."""

    code = "no-matching-distribution"
    status = 422
    title = "No matching distribution"


class ResolutionImpossible(LockdError):
    code = "resolution-impossible"
    status = 422
    title = "Requirements cannot be satisfied together"


class SdistNeedsBuild(LockdError):
    code = "sdist-needs-build"
    status = 422
    title = "Source distribution needs a build"


class CudaMismatch(LockdError):
    code = "cuda-mismatch"
    status = 422
    title = "Lock mixes CUDA builds"


class IndexUnavailable(LockdError):
    code = "index-unavailable"
    status = 502
    title = "Package index unavailable"


class ResponseTooLarge(IndexUnavailable):
    """An index answer over one of lockd's limits (bytes, decompressed bytes, files on a page)."""

    code = "index-response-too-large"
    status = 502
    title = "Index response over lockd's limits"


class UnusableMetadata(LockdError):
    """One file's core metadata cannot be used (over a limit, unreadable): its version is ruled out.

    The resolver discards that version with this reason, as pip discards a version whose
    metadata it cannot use, and goes on with the others.
    """

    code = "unusable-metadata"
    status = 502
    title = "Unusable metadata"


class MetadataMismatch(UnusableMetadata):
    """A file's core metadata names another project or version than its filename (pip refuses it too)."""

    code = "metadata-mismatch"
    status = 502
    title = "Metadata does not match its file"


class TamperedFile(LockdError):
    """Bytes served for a file do not match the sha256 the index advertised."""

    code = "hash-mismatch"
    status = 502
    title = "File does not match its hash"


class ResolutionTimeout(LockdError):
    code = "resolution-timeout"
    status = 504
    title = "Resolution exceeded its time budget"


class StoreUnavailable(LockdError):
    code = "store-unavailable"
    status = 503
    title = "Database unavailable"


class NotFound(LockdError):
    code = "not-found"
    status = 404
    title = "Not found"


class Unauthorized(LockdError):
    code = "unauthorized"
    status = 401
    title = "Authentication required"


class Forbidden(LockdError):
    code = "forbidden"
    status = 403
    title = "Token lacks the required scope"
