"""OsvApi against a loopback OSV-compatible API serving the same records as the directory source."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from lockd.advisories import AdvisoriesUnavailable, OsvApi, vulnerabilities
from tests.osv_reference import (
    SEVEN_AFFECTED,
    SEVEN_OUTSIDE,
    OsvState,
    by_name,
    lock_of,
    osv_api,
    snapshot_index,
    snapshot_records,
)
from tests.support import free_port

# Beyond the seven: `last_affected` (py), an explicit list only (gratient), a withdrawn record
# with no ranges (loguru), a project no advisory names.
MORE_PINS = {"py": "1.11.0", "gratient": "0.5", "loguru": "0.5.3", "lockd-no-such-project": "1.0"}


@pytest.fixture
def state() -> OsvState:
    records = snapshot_records()
    return OsvState(records=records, indexed=by_name(records))


@pytest.fixture
def api_url(state: OsvState) -> Iterator[str]:
    with osv_api(state) as url:
        yield url


@pytest.mark.parametrize("pins", [SEVEN_AFFECTED | MORE_PINS, SEVEN_OUTSIDE], ids=["affected", "outside"])
def test_the_api_and_the_directory_agree(pins: dict[str, str], state: OsvState, api_url: str) -> None:
    lock = lock_of(pins)
    from_directory = vulnerabilities(lock, [snapshot_index()])
    with OsvApi(api_url) as api:
        from_api = vulnerabilities(lock, [api])
    assert from_api == from_directory
    assert [r for r in state.requests if r.startswith("POST")] == ["POST /v1/querybatch"]
    gets = [r for r in state.requests if r.startswith("GET")]
    assert sorted(gets) == sorted({f"GET /v1/vulns/{f.advisory_id}" for f in from_api})
    sent = {q["package"]["name"]: q["version"] for q in state.queries}
    assert sent == {name: version.split("+")[0] for name, version in pins.items()}, "public versions"
    assert all(q["package"]["ecosystem"] == "PyPI" for q in state.queries)


def test_pages_are_followed(state: OsvState, api_url: str) -> None:
    state.page_size = 2
    lock = lock_of(SEVEN_AFFECTED)
    with OsvApi(api_url) as api:
        assert vulnerabilities(lock, [api]) == vulnerabilities(lock, [snapshot_index()])
    assert state.requests.count("POST /v1/querybatch") > 1
    assert any("page_token" in q for q in state.queries)


def test_answers_and_records_are_cached(state: OsvState, api_url: str) -> None:
    lock = lock_of(SEVEN_AFFECTED)
    with OsvApi(api_url) as api:
        first = vulnerabilities(lock, [api])
        asked = len(state.requests)
        assert vulnerabilities(lock, [api]) == first
        assert len(state.requests) == asked
        bigger = lock_of(SEVEN_AFFECTED | {"py": "1.11.0"})
        assert len(vulnerabilities(bigger, [api])) == len(first) + 1
        assert state.queries[-1] == {"package": {"name": "py", "ecosystem": "PyPI"}, "version": "1.11.0"}


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("error", "answered HTTP 500"),
        ("oversize", "more than 50000 bytes"),
        ("garbage", "did not answer JSON"),
        ("wrong-id", "the API answered PYSEC-0000-0"),
    ],
)
def test_an_api_that_misbehaves_is_unavailable_never_empty(
    fault: str, said: str, state: OsvState, api_url: str
) -> None:
    lock = lock_of(SEVEN_AFFECTED)
    with OsvApi(api_url, max_response_bytes=50_000) as api:
        state.fault = fault
        with pytest.raises(AdvisoriesUnavailable) as caught:
            vulnerabilities(lock, [snapshot_index(), api])
        error = caught.value
        assert said in error.message
        assert error.context["source"] == f"OSV API {api_url}"
        assert (error.code, error.status) == ("advisories-unavailable", 503)
        state.fault = None  # recovered: nothing was cached from the failure
        assert vulnerabilities(lock, [api]) == vulnerabilities(lock, [snapshot_index()])


def test_an_api_that_does_not_answer_is_unavailable_within_its_deadline(
    state: OsvState, api_url: str
) -> None:
    state.fault = "hang"
    lock = lock_of(SEVEN_AFFECTED)
    for api in (OsvApi(api_url, timeout=0.3), OsvApi(api_url, timeout=30.0, deadline=0.3)):
        started = time.monotonic()
        with api, pytest.raises(AdvisoriesUnavailable) as caught:
            vulnerabilities(lock, [api])
        assert "did not answer in time" in caught.value.message
        assert time.monotonic() - started < 5.0


def test_an_api_that_is_down_is_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with OsvApi(url) as api, pytest.raises(AdvisoriesUnavailable) as caught:
        vulnerabilities(lock_of(SEVEN_AFFECTED), [snapshot_index(), api])
    assert caught.value.message.startswith(f"OSV API {url}: POST /v1/querybatch failed")
