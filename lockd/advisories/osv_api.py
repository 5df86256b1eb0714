"""An OSV-compatible HTTP API as an advisory source (`LOCKD_OSV_URL`, e.g. https://api.osv.dev).

Two calls of the OSV API (https://google.github.io/osv.dev/api/): `POST /v1/querybatch` with one
query per pin (ecosystem PyPI, the pin's public version: see `ranges` for why) answers which
advisory ids affect each, and `GET /v1/vulns/{id}` gives each advisory in full. The server's
verdict on "affected" is taken as it is; the full record supplies aliases, severity and fixed
versions. A batch holds at most 1,000 queries (the API's limit) and follows `next_page_token`
for at most `max_pages` rounds.

Bounded: each response is read up to `max_response_bytes`, each request waits at most
`timeout`, and one `affecting` call gives up after `deadline` seconds. Any failure — transport,
timeout, HTTP error, oversize, not JSON, not OSV — is `AdvisoriesUnavailable`, never an empty
answer. Answers per (project, version) and records per (id, modified) are kept in bounded caches,
so a drift run over many locks sharing pins asks once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from packaging.utils import NormalizedName
from packaging.version import Version

from lockd.advisories.model import Advisory, InvalidAdvisory, parse_osv
from lockd.advisories.ranges import public_version
from lockd.advisories.source import AdvisoriesUnavailable
from lockd.memory_cache import BoundedCache

__all__ = ["MAX_BATCH", "OsvApi"]

MAX_BATCH = 1000  # queries per POST /v1/querybatch, the OSV API's limit
_Key = tuple[NormalizedName, str]  # (project, public version)
_Ids = tuple[tuple[str, str], ...]  # (advisory id, modified)


class OsvApi:
    """`AdvisorySource` over an OSV-compatible API. Thread-safe; `close()` when done."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        deadline: float = 60.0,
        max_response_bytes: int = 16 * 1024 * 1024,
        max_pages: int = 10,
        answer_ttl: float = 3600.0,
        cache_entries: int = 50_000,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.deadline = deadline
        self.max_response_bytes = max_response_bytes
        self.max_pages = max_pages
        self._http = httpx.Client(
            timeout=timeout, transport=transport, follow_redirects=False, headers={"User-Agent": "lockd"}
        )
        self._answers: BoundedCache[_Key, _Ids] = BoundedCache(cache_entries, ttl=answer_ttl)
        self._records: BoundedCache[str, Advisory] = BoundedCache(cache_entries)

    def __enter__(self) -> OsvApi:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def description(self) -> str:
        return f"OSV API {self.base_url}"

    def affecting(self, pins: Mapping[NormalizedName, Version]) -> dict[NormalizedName, tuple[Advisory, ...]]:
        give_up = time.monotonic() + self.deadline
        keys = {name: (name, str(public_version(version))) for name, version in pins.items()}
        answers = {key: self._answers.get(key) for key in keys.values()}
        missing = [key for key, ids in answers.items() if ids is None]
        for start in range(0, len(missing), MAX_BATCH):
            fetched = self._query_batch(missing[start : start + MAX_BATCH], give_up)
            for key, ids in fetched.items():
                self._answers.put(key, ids)
                answers[key] = ids
        found: dict[NormalizedName, tuple[Advisory, ...]] = {}
        for name, key in keys.items():
            advisories = [
                self._record(advisory_id, modified, give_up) for advisory_id, modified in answers[key] or ()
            ]
            kept = tuple(a for a in advisories if a.withdrawn is None)
            if kept:
                found[name] = kept
        return found

    # -- the two calls -----------------------------------------------------------------------

    def _query_batch(self, keys: list[_Key], give_up: float) -> dict[_Key, _Ids]:
        ids: dict[_Key, dict[str, str]] = {key: {} for key in keys}
        pending: list[tuple[_Key, str | None]] = [(key, None) for key in keys]
        for _ in range(self.max_pages):
            queries = [_query(key, token) for key, token in pending]
            results = self._post_json("/v1/querybatch", {"queries": queries}, give_up).get("results")
            if not isinstance(results, list) or len(results) != len(pending):
                raise self._unavailable(
                    "querybatch answered a `results` list that does not match the queries"
                )
            following: list[tuple[_Key, str | None]] = []
            for (key, _token), result in zip(pending, results, strict=True):
                vulns = _vulns(result)
                if vulns is None:
                    raise self._unavailable(
                        f"querybatch answered a result that is not OSV: {str(result)[:200]}"
                    )
                ids[key].update(vulns)
                token = result.get("next_page_token")
                if token:
                    following.append((key, str(token)))
            if not following:
                return {key: tuple(sorted(found.items())) for key, found in ids.items()}
            pending = following
        raise self._unavailable(f"querybatch was still paging after {self.max_pages} rounds")

    def _record(self, advisory_id: str, modified: str, give_up: float) -> Advisory:
        cached = self._records.get(advisory_id)
        if cached is not None and (cached.modified == modified or not modified):
            return cached
        data = self._get_json(f"/v1/vulns/{quote(advisory_id, safe='')}", give_up)
        try:
            advisory = parse_osv(data)
        except InvalidAdvisory as exc:
            raise self._unavailable(f"{advisory_id} is not an OSV record: {exc.message}") from None
        if advisory.id != advisory_id:
            raise self._unavailable(f"asked for {advisory_id}, the API answered {advisory.id}")
        self._records.put(advisory_id, advisory)
        return advisory

    # -- plumbing ----------------------------------------------------------------------------

    def _post_json(self, path: str, body: dict[str, Any], give_up: float) -> dict[str, Any]:
        with self._request("POST", path, give_up, json=body) as response:
            return self._json(response, path)

    def _get_json(self, path: str, give_up: float) -> dict[str, Any]:
        with self._request("GET", path, give_up) as response:
            return self._json(response, path)

    @contextmanager
    def _request(self, method: str, path: str, give_up: float, **kwargs: Any) -> Iterator[httpx.Response]:
        remaining = give_up - time.monotonic()
        if remaining <= 0:
            raise self._unavailable(f"no answer within {self.deadline:g} s")
        url = self.base_url + path
        try:
            with self._http.stream(method, url, timeout=min(self.timeout, remaining), **kwargs) as response:
                yield response
        except httpx.TimeoutException:
            raise self._unavailable(f"{method} {path} did not answer in time") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._unavailable(f"{method} {path} failed: {exc or type(exc).__name__}") from None

    def _json(self, response: httpx.Response, path: str) -> dict[str, Any]:
        if response.status_code != 200:
            raise self._unavailable(f"{path} answered HTTP {response.status_code}")
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > self.max_response_bytes:
                raise self._unavailable(f"{path} answered more than {self.max_response_bytes} bytes")
        try:
            data = json.loads(bytes(body))
        except ValueError:
            raise self._unavailable(f"{path} did not answer JSON") from None
        if not isinstance(data, dict):
            raise self._unavailable(f"{path} answered JSON that is not an object")
        return data

    def _unavailable(self, why: str) -> AdvisoriesUnavailable:
        return AdvisoriesUnavailable(
            f"{self.description}: {why}",
            hint="the advisory check is skipped until the API answers; LOCKD_OSV_URL sets it",
            context={"source": self.description, "reason": why},
        )


def _query(key: _Key, page_token: str | None) -> dict[str, Any]:
    name, version = key
    query: dict[str, Any] = {"package": {"name": name, "ecosystem": "PyPI"}, "version": version}
    if page_token is not None:
        query["page_token"] = page_token
    return query


def _vulns(result: object) -> list[tuple[str, str]] | None:
    """(id, modified) of each advisory in one querybatch result (`{}` means none); None if malformed."""
    if not isinstance(result, Mapping):
        return None
    vulns = result.get("vulns") or []
    if not isinstance(vulns, list):
        return None
    found = []
    for vuln in vulns:
        if not isinstance(vuln, Mapping) or not isinstance(vuln.get("id"), str):
            return None
        found.append((vuln["id"], str(vuln.get("modified") or "")))
    return found
