"""A canonical input is stored as the exact bytes its digest is taken over, and read back equal."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from fixtures.served_index import WatchedIndex
from lockd.config import Settings
from lockd.inputs import LockOptions, LockRequest
from lockd.service import Service
from lockd.store import queries, schema, transaction


@pytest.fixture
def service(database_url: str, fixture_index: WatchedIndex) -> Iterator[Service]:
    opened = Service.open(
        Settings(
            database_url=database_url,
            index_url=fixture_index.pypi_url,
            pytorch_index_url=fixture_index.pytorch_base,
        )
    )
    yield opened
    opened.close()


def test_the_stored_input_is_the_digested_bytes_and_reads_back_as_an_equal_request(service: Service) -> None:
    request = service.build_request(
        # the marker is false on the target, so only lockd-fx-plain resolves; its string is not ASCII
        requirements="lockd-fx-plain\nLockd_Fx_Plain  # twice\nnumpy; platform_release == 'café'\n",
        constraints="lockd-fx-plain<9\n",
        target={"platform": "linux_x86_64", "python": "3.11"},
        options=LockOptions(as_of=datetime(2100, 1, 1, tzinfo=UTC)),
    )
    result = service.lock(request)
    with transaction(service.engine, write=False) as conn:
        stored = conn.execute(
            select(schema.inputs.c.canonical).where(schema.inputs.c.digest == result.input_digest)
        ).scalar_one()
        record = queries.get_input(conn, result.input_digest)
    assert stored.encode("utf-8") == request.canonical_bytes()
    assert hashlib.sha256(stored.encode("utf-8")).hexdigest() == result.input_digest == request.digest
    assert "café" in stored  # stored as written, not as \u escapes
    assert record is not None and LockRequest.from_json(record.canonical) == request
    assert LockRequest.from_json(stored) == request
    refreshed = service.refresh(result.input_digest)  # re-resolves the request read back
    assert not refreshed.changed and refreshed.revision == result.revision
