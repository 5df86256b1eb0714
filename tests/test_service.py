"""The service wired over a real database and the fixture index (no HTTP)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest

from fixtures.served_index import ControlledIndex
from lockd.config import Settings
from lockd.errors import InputTooLarge, InvalidRequest, NotFound, ResolutionImpossible
from lockd.inputs import LockRequest
from lockd.lock import Lock
from lockd.lock_files import render_file
from lockd.render import FORMATS, render
from lockd.service import RefreshResult, Service
from lockd.store import queries, read, transaction


@pytest.fixture
def service(database_url: str, mutable_index: ControlledIndex) -> Iterator[Service]:
    opened = Service.open(
        Settings(
            database_url=database_url,
            index_url=mutable_index.pypi_url,
            pytorch_index_url=mutable_index.pytorch_base,
            auto_promote="always",  # the operator's policy: a changed refresh is served at once
        )
    )
    yield opened
    opened.close()


def _request(service: Service, text: str) -> LockRequest:
    return service.build_request(requirements=text, target={"platform": "linux_x86_64", "python": "3.11"})


def test_first_lock_resolves_later_ones_do_not(service: Service, mutable_index: ControlledIndex) -> None:
    first = service.lock(_request(service, "lockd-fx-plain\n"))
    assert first.created and first.stats is not None and first.revision.n == 1
    mutable_index.reset_counters()
    mutable_index.publish("lockd-fx-plain", "9.0")  # a newer release must not change a stored lock
    again = service.lock(_request(service, "# same input\nlockd-fx-plain\n"))
    assert not again.created and again.stats is None
    assert again.revision == first.revision
    assert sum(mutable_index.counters().requests.values()) == 0


def test_refresh_appends_a_revision_only_when_the_lock_changes(
    service: Service, mutable_index: ControlledIndex
) -> None:
    first = service.lock(_request(service, "lockd-fx-plain\n"))
    unchanged = service.refresh(first.input_digest)
    assert not unchanged.changed and unchanged.revision.n == 1
    mutable_index.publish("lockd-fx-plain", "9.0")
    service.index.drop_pages()
    changed = service.refresh(first.input_digest)
    assert changed.changed and changed.revision.n == 2 and changed.previous.n == 1
    assert changed.revision.lock_digest != first.lock_digest
    assert (
        b"lockd-fx-plain==9.0" in service.lock_file(changed.revision.lock_digest, "requirements.txt").content
    )
    assert b"lockd-fx-plain==1.1" in service.lock_file(first.lock_digest, "requirements.txt").content
    assert [r.n for r in service.revisions(first.input_digest)] == [1, 2]
    assert service.lock(_request(service, "lockd-fx-plain\n")).revision.n == 2
    with pytest.raises(NotFound):
        service.refresh("0" * 64)


def test_concurrent_refreshes_of_one_input_resolve_once(
    service: Service, mutable_index: ControlledIndex
) -> None:
    first = service.lock(_request(service, "lockd-fx-plain\n"))
    mutable_index.publish("lockd-fx-plain", "9.0")
    service.index.drop_pages()
    mutable_index.set_latency(200)  # the holder's resolution outlasts the others' arrival
    outcomes: list[RefreshResult] = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(service.refresh(first.input_digest)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 3
    assert [o.stats is not None for o in outcomes].count(True) == 1, (
        "one refresh resolved, the others shared it"
    )
    assert {o.revision.n for o in outcomes} == {2} and all(o.changed and o.previous.n == 1 for o in outcomes)
    assert [r.n for r in service.revisions(first.input_digest)] == [1, 2]


def test_failures_store_nothing_and_reach_every_waiter(
    service: Service, mutable_index: ControlledIndex
) -> None:
    mutable_index.set_latency(100)
    request = _request(service, "lockd-fx-conflict-a\nlockd-fx-conflict-b>=2\n")
    outcomes: list[object] = []

    def attempt() -> None:
        try:
            outcomes.append(service.lock(request))
        except ResolutionImpossible as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(o, ResolutionImpossible) for o in outcomes) and len(outcomes) == 5
    assert service.list_locks(limit=10) == []


def test_intake_limits(service: Service) -> None:
    with pytest.raises(InvalidRequest):
        _request(service, "# only a comment\n")
    with pytest.raises(InputTooLarge):
        _request(service, "".join(f"p{n}\n" for n in range(501)))


def test_tokens_are_scoped_and_hashed(service: Service) -> None:
    admin = service.tokens.create(name="ops", scope="admin")
    reader = service.tokens.create(name="dash", scope="read")
    assert service.tokens.authenticate(admin) == frozenset({"admin", "lock", "read"})
    assert service.tokens.authenticate(reader) == frozenset({"read"})
    assert service.tokens.authenticate("lockd_forged") is None
    with pytest.raises(InvalidRequest):
        service.tokens.create(name="x", scope="root")


def test_metadata_a_resolution_fetched_is_in_the_database_when_the_lock_is(
    service: Service, database_url: str, mutable_index: ControlledIndex
) -> None:
    """Another replica on the same database resolves the same projects without one metadata fetch."""
    service.lock(_request(service, "lockd-fx-extras[fast]\n"))
    replica = Service.open(service.settings)
    try:
        mutable_index.reset_counters()
        replica.lock(_request(replica, "lockd-fx-extras[fast]\nlockd-fx-plain!=0.0.1\n"))
    finally:
        replica.close()
    fetched = mutable_index.counters().requests
    assert fetched.get("page") and not {kind: n for kind, n in fetched.items() if kind != "page"}


def test_locks_and_refreshes_run_on_the_threads_the_service_started_and_close_ends_them(
    database_url: str, mutable_index: ControlledIndex
) -> None:
    def fetch_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("lockd-fetch")}

    before = fetch_threads()
    opened = Service.open(
        Settings(
            database_url=database_url,
            index_url=mutable_index.pypi_url,
            pytorch_index_url=mutable_index.pytorch_base,
        )
    )
    try:
        opened.index.workers.wait_started()  # they start on a thread of their own
        started = fetch_threads() - before
        assert started
        first = opened.lock(_request(opened, "lockd-fx-plain\n"))
        opened.lock(_request(opened, "lockd-fx-plain\nlockd-fx-plain>=1\n"))
        with opened.fresh_index() as fresh:  # what a refresh or a drift run resolves with
            assert fresh.workers is opened.index.workers
        opened.refresh(first.input_digest)
        assert fetch_threads() - before == started
    finally:
        opened.close()
    assert fetch_threads() == before


def test_the_service_builds_requests_as_its_settings_do(service: Service) -> None:
    # One builder (`Settings.build_request`) for the service, `lockd lock` and the tests: the same
    # input gives the same request, and a limit of the settings holds on the service's path too.
    target = {"platform": "linux_x86_64", "python": "3.11"}
    text = "lockd-fx-plain>=1\nlockd-fx-extras[fast]\n"
    assert service.build_request(requirements=text, target=target) == service.settings.build_request(
        requirements=text, target=target
    )
    limited = Service(replace(service.settings, max_requirements=1), service.engine, service.index)
    with pytest.raises(InputTooLarge):
        limited.build_request(requirements=text, target=target)


def test_costly_formats_are_rendered_when_first_read_then_stored_and_the_first_stored_wins(
    database_url: str, service: Service, mutable_index: ControlledIndex
) -> None:
    created = service.lock(_request(service, "lockd-fx-plain\n"))
    digest = created.revision.lock_digest
    lazy = [name for name, spec in FORMATS.items() if not spec.eager]
    assert lazy == ["pylock.toml", "conda-lock.yml", "cyclonedx.json"]

    def stored(fmt: str) -> bytes | None:
        found = read(service.engine, lambda conn: queries.get_lock_file(conn, digest, fmt))
        return None if found is None else found.content

    assert [stored(name) for name in lazy] == [None, None, None]  # locking rendered only the eager formats
    lock = Lock.from_json(service.lock_file(digest, "json").content)
    conda = service.lock_file(digest, "conda-lock.yml")
    assert conda.content == render(lock, "conda-lock.yml") == stored("conda-lock.yml")
    assert conda.sha256 == hashlib.sha256(conda.content).hexdigest()
    # Bytes stored first are served for ever, by every process: here another lockd's rendering
    # of the SBOM got there before this process's first read of it.
    earlier = render_file(lock, "cyclonedx.json")
    with transaction(service.engine, write=True) as conn:
        assert queries.put_lock_file(
            conn, replace(earlier, content=b"{}", sha256=hashlib.sha256(b"{}").hexdigest())
        )
    other = Service.open(Settings(database_url=database_url, index_url=mutable_index.pypi_url))
    try:
        _, sbom = other.current_file(created.input_digest, "cyclonedx.json")
        assert sbom.content == b"{}" == stored("cyclonedx.json")
    finally:
        other.close()
