"""`lockd why` against a server: `GET /v1/locks/{input_digest}/why/{package}` with a bearer token.

The CLI's other half, for a lock on a server rather than in a file: it asks, and prints what
the server answers (plain text, or JSON with `--json`). A problem+json answer becomes a
`LockdError` with the server's detail and hint; a server that cannot be reached says so.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from lockd.errors import LockdError

__all__ = ["fetch_why"]

_TIMEOUT = 30.0


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
