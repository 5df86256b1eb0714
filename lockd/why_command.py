"""`lockd why`'s two sources: a lock file on disk, or a server's `GET /v1/locks/{digest}/why/{package}`.

From a file, the answer is computed here (`lockd.why`), with requirements.in line numbers when
the file is given. From a server, the answer is the server's (positions in its canonical input),
asked with a bearer token; a problem+json answer becomes a `LockdError` with the server's detail
and hint, and a server that cannot be reached says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import httpx

from lockd.errors import LockdError
from lockd.inputs import decode_body, parse_requirements
from lockd.lock import Lock
from lockd.why import render_why_text, why

__all__ = ["fetch_why", "why_from_lock_file"]

_TIMEOUT = 30.0


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LockdError(f"cannot read {path}: {exc.strerror}") from None


def why_from_lock_file(lock_file: Path, package: str, *, requirements: Path | None, as_json: bool) -> str:
    """The answer for a lock.json file, as text or JSON. Raises `LockdError`."""
    lock = Lock.from_json(_read(lock_file))
    parsed = () if requirements is None else parse_requirements(decode_body(_read(requirements)))
    answer = why(lock, package, requirements=parsed)
    return json.dumps(answer.to_json(), indent=2) + "\n" if as_json else render_why_text(answer)


def fetch_why(server: str, input_digest: str, package: str, *, token: str | None, as_json: bool) -> str:
    """The server's answer as text (`as_json`: its JSON, as sent). Raises `LockdError`."""
    headers = {"Accept": "application/json" if as_json else "text/plain"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = f"{server.rstrip('/')}/v1/locks/{quote(input_digest, safe='')}/why/{quote(package, safe='')}"
    try:
        response = httpx.get(url, headers=headers, timeout=_TIMEOUT)
    except httpx.HTTPError as exc:
        raise LockdError(f"cannot reach {server}: {type(exc).__name__}", hint="check --server") from None
    if response.status_code != 200:
        try:
            problem = response.json()
            detail, hint = str(problem.get("detail", response.text[:300])), problem.get("hint")
        except ValueError:
            detail, hint = response.text[:300], None
        raise LockdError(f"{server} answered {response.status_code}: {detail}", hint=hint)
    return response.text
