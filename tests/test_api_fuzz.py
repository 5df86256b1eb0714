"""API fuzzing: schemathesis generates requests from the running app's OpenAPI document.

Every operation, with an admin token, against a live server on the fixture index: no 5xx, and
every response (status, content type, headers, body) conforms to the document. Bounded by
`max_examples` per operation so the whole file stays well under a minute.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, checks

from fixtures.served_index import WatchedIndex
from tests.support import ROOT, LockdServer, fresh_database, server_env

MAX_EXAMPLES = 12
# Not part of lockd's contract: whether requirements text or a target is valid is semantic (a
# schema-valid `platform=""` is rightly 422).
EXCLUDED = [checks.positive_data_acceptance]


@pytest.fixture(scope="module")
def fuzzed_server(
    request: pytest.FixtureRequest, fixture_index: WatchedIndex, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LockdServer]:
    tmp = tmp_path_factory.mktemp("lockd-fuzz")
    server = LockdServer(
        server_env(fresh_database("sqlite", request, tmp), fixture_index), tmp / "server.log"
    )
    server.create_tokens()
    server.start()
    with server.client("lock") as client:  # something to read, so reads are not all 404s
        locked = client.post(
            "/lock", params={"platform": "linux_x86_64", "python": "3.11"}, content="lockd-fx-plain\n"
        )
        assert locked.status_code == 201, locked.text
    yield server
    server.stop()


# The committed contract; the test below proves the running app serves the same document.
schema = schemathesis.openapi.from_path(Path(ROOT, "api", "openapi.json"))


def test_the_running_app_serves_the_committed_document(fuzzed_server: LockdServer) -> None:
    served = httpx.get(fuzzed_server.url + "/openapi.json").json()
    assert served == json.loads(Path(ROOT, "api", "openapi.json").read_text())


# One test per operation, named after it: schemathesis' own parametrisation gives every case the
# same node id, which pytest-xdist then reports as a single test.
OPERATIONS = sorted(
    (method.upper(), path)
    for path, item in json.loads(Path(ROOT, "api", "openapi.json").read_text())["paths"].items()
    for method in item
    if method in {"get", "post", "put", "patch", "delete"}
)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_5xx_and_every_response_matches_the_schema(
    method: str, path: str, fuzzed_server: LockdServer
) -> None:
    headers = {"Authorization": f"Bearer {fuzzed_server.tokens['admin']}"}

    @given(case=schema[path][method].as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: Case[Any]) -> None:  # the operation type is four type parameters deep
        response = case.call_and_validate(
            base_url=fuzzed_server.url, headers=headers, timeout=30, excluded_checks=EXCLUDED
        )
        assert response.status_code < 500, response.text[:1000]

    check()
