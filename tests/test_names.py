"""Named locks over a real database and the fixture index: moves with minimal churn, proposals and
promotion, the operator's policy, retirement, archive, delete and gc, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lockd.config import Settings
from lockd.errors import NotFound, ResolutionImpossible
from lockd.names import NameArchived, Names, UpgradeNotInLock, parse_upgrade
from lockd.naming import InvalidName
from lockd.proposals import StaleProposal
from lockd.retirement import collect_garbage, retire_unused
from lockd.service import Service
from tests.support import row_counts

TARGET = {"platform": "linux_x86_64", "python": "3.11"}
# What a failed resolution may leave: its failed lease (for waiters) and metadata cached by hash.
BOOKKEEPING = ("resolution_leases", "dist_metadata", "file_hashes")


def _stored(database_url: str) -> dict[str, int]:
    return {table: n for table, n in row_counts(database_url).items() if table not in BOOKKEEPING}


@pytest.fixture
def service(database_url: str, mutable_index: Any) -> Iterator[Service]:
    opened = Service.open(
        Settings(
            database_url=database_url,
            index_url=mutable_index.pypi_url,
            pytorch_index_url=mutable_index.pytorch_base,
        )
    )
    yield opened
    opened.close()


def _request(service: Service, text: str) -> Any:
    return service.build_request(requirements=text, target=TARGET)


def _pins(service: Service, lock_digest: str) -> dict[str, str]:
    content = service.lock_file(lock_digest, "requirements.txt").content.decode()
    pins = {}
    for line in content.splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, _, version = line.split(" ")[0].partition("==")
            pins[name] = version
    return pins


def test_a_new_input_keeps_the_names_pins_and_only_the_new_line_moves(
    service: Service, mutable_index: Any
) -> None:
    names = Names(service)
    first = names.lock(_request(service, "lockd-fx-extras\n"), name="team/app", actor="alice")
    assert first.moved and first.result.created
    assert _pins(service, first.result.lock_digest) == {"lockd-fx-extras": "1.0", "lockd-fx-plain": "1.1"}

    mutable_index.publish("lockd-fx-plain", "1.2")
    service.index.drop_pages()
    second = names.lock(
        _request(service, "lockd-fx-extras\nlockd-fx-speedups\n"), name="team/app", actor="bob"
    )
    assert second.moved and second.previous_input == first.result.input_digest
    pins = _pins(service, second.result.lock_digest)
    assert pins == {"lockd-fx-extras": "1.0", "lockd-fx-plain": "1.1", "lockd-fx-speedups": "0.3"}
    # The same change resolved without a name takes the newest plain: the name's pin held it.
    scratch = service.lock(_request(service, "lockd-fx-extras\nlockd-fx-speedups>=0.1\n"))
    assert _pins(service, scratch.lock_digest)["lockd-fx-plain"] == "1.2"

    view = names.get("team/app")
    assert view.input_digest == second.result.input_digest and view.revision.n == 1
    provenance = names.provenance(second.result.lock_digest)
    assert provenance is not None and provenance.preferences["lockd-fx-plain"] == "1.1"
    assert provenance.preferred_lock_digest == first.result.lock_digest and provenance.upgrade == []
    events = names.history("team/app")
    assert [(e.action, e.actor, e.input_digest) for e in events] == [
        ("created", "alice", first.result.input_digest),
        ("moved", "bob", second.result.input_digest),
    ]
    # The input the name left is out of drift; the new one is live. Both stay served by digest.
    assert names.status(input_digest=first.result.input_digest).retired
    assert not names.status(name="team/app").retired
    assert service.lock_file(first.result.lock_digest, "requirements.txt").content

    upgraded = names.lock(
        _request(service, "lockd-fx-extras\nlockd-fx-speedups\nlockd-fx-pyreq\n"),
        name="team/app",
        upgrade=parse_upgrade("lockd-fx-plain"),
    )
    assert _pins(service, upgraded.result.lock_digest)["lockd-fx-plain"] == "1.2"
    # The same input again is no move and no new resolution.
    again = names.lock(
        _request(service, "lockd-fx-pyreq\nlockd-fx-speedups\nlockd-fx-extras\n"), name="team/app"
    )
    assert not again.moved and not again.result.created
    assert again.result.lock_digest == upgraded.result.lock_digest


def test_bad_names_and_upgrades_are_refused_before_anything_is_written(
    service: Service, database_url: str
) -> None:
    names = Names(service)
    before = _stored(database_url)
    with pytest.raises(InvalidName):
        names.lock(_request(service, "lockd-fx-plain\n"), name="Team/App")
    with pytest.raises(InvalidName):
        names.lock(_request(service, "lockd-fx-plain\n"), name="team/status")
    with pytest.raises(UpgradeNotInLock):  # a new name has no lock to upgrade in
        names.lock(_request(service, "lockd-fx-plain\n"), name="new", upgrade=parse_upgrade("lockd-fx-plain"))
    with pytest.raises(ResolutionImpossible):
        names.lock(_request(service, "lockd-fx-conflict-a\nlockd-fx-conflict-b>=2\n"), name="doomed")
    assert _stored(database_url) == before
    names.lock(_request(service, "lockd-fx-plain\n"), name="app")
    with pytest.raises(UpgradeNotInLock) as caught:
        names.lock(
            _request(service, "lockd-fx-plain\nlockd-fx-pyreq\n"), name="app", upgrade=parse_upgrade("numpy")
        )
    assert caught.value.status == 422 and caught.value.context["packages"] == ["numpy"]
    with pytest.raises(NotFound):
        names.get("nobody")


def test_a_refresh_proposes_and_only_a_promotion_changes_what_the_name_serves(
    service: Service, mutable_index: Any
) -> None:
    names = Names(service)
    first = names.lock(_request(service, "lockd-fx-plain\n"), name="p/app")
    digest = first.result.input_digest
    assert service.refresh(digest).proposal is None  # nothing changed: nothing to review
    mutable_index.publish("lockd-fx-plain", "1.1.1")
    refreshed = names.refresh("p/app", actor="ci")
    proposal = refreshed.proposal
    assert proposal is not None and proposal.status == "open" and not refreshed.changed
    assert [
        (c.name, c.change, str(c.old_version), str(c.new_version), c.reasons) for c in proposal.diff.changes
    ] == [("lockd-fx-plain", "upgrade", "1.1", "1.1.1", ("newer",))]
    assert service.current(digest).lock_digest == first.result.lock_digest
    assert names.status(name="p/app").proposal == proposal

    promoted = names.promote(proposal.id, actor="alice", name="p/app")
    assert promoted.status == "promoted" and promoted.decided_by == "alice" and promoted.revision == 2
    assert service.current(digest).lock_digest == proposal.lock_digest
    assert [e.action for e in names.history("p/app")] == ["created", "promoted"]
    with pytest.raises(StaleProposal) as stale:
        names.promote(proposal.id, actor="alice")
    assert stale.value.status == 409

    # The operator's policy, per name: a patch release promotes itself, a minor one waits.
    names.set_policy("p/app", "patch")
    mutable_index.publish("lockd-fx-plain", "1.1.2")
    auto = names.refresh("p/app")
    assert auto.changed and auto.revision.n == 3
    assert auto.proposal is not None and auto.proposal.decided_by == "policy:patch"
    mutable_index.publish("lockd-fx-plain", "1.2")
    waits = names.refresh("p/app")
    assert not waits.changed and waits.proposal is not None and waits.proposal.status == "open"

    # A name that moved since makes its old input's proposal stale through that name.
    names.lock(_request(service, "lockd-fx-plain\nlockd-fx-pyreq\n"), name="p/app")
    with pytest.raises(StaleProposal):
        names.promote(waits.proposal.id, actor="alice", name="p/app")
    assert names.promote(waits.proposal.id, actor="alice").revision == 4  # by digest it is still current


def test_concurrent_promotions_of_one_proposal_promote_it_once(service: Service, mutable_index: Any) -> None:
    names = Names(service)
    first = names.lock(_request(service, "lockd-fx-plain\n"), name="race")
    mutable_index.publish("lockd-fx-plain", "1.2")
    proposal = names.refresh("race").proposal
    assert proposal is not None
    outcomes: list[object] = []

    def attempt() -> None:
        try:
            outcomes.append(names.promote(proposal.id, actor="someone", name="race"))
        except StaleProposal as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(not isinstance(o, StaleProposal) for o in outcomes) == 1
    assert [r.n for r in service.revisions(first.result.input_digest)] == [1, 2]


def test_retirement_archive_delete_and_gc(service: Service, mutable_index: Any, database_url: str) -> None:
    names = Names(service)
    v1 = names.lock(_request(service, "lockd-fx-plain\n"), name="g/app").result
    v2 = names.lock(_request(service, "lockd-fx-plain\nlockd-fx-pyreq\n"), name="g/app").result
    unnamed = service.lock(_request(service, "lockd-fx-pyreq\n"))
    assert collect_garbage(service, older_than=3600).inputs == ()  # retired only just now

    report = collect_garbage(service, older_than=0)
    assert report.inputs == (v1.input_digest,) and report.locks == 1
    with pytest.raises(NotFound):
        service.current(v1.input_digest)
    assert service.current(v2.input_digest) == v2.revision and service.current(unnamed.input_digest)
    assert names.history("g/app")[0].input_digest == v1.input_digest  # history keeps it

    # A name unused for LOCKD_NAME_RETIRE_AFTER retires, with its input; using it again restores both.
    later = datetime.now(UTC) + timedelta(seconds=service.settings.name_retire_after + 60)
    retired = retire_unused(service, now=later)
    assert retired.names == ("g/app",) and retired.inputs == (v2.input_digest,)
    assert names.get("g/app").status == "retired" and names.status(name="g/app").retired
    names.lock(_request(service, "lockd-fx-pyreq\nlockd-fx-plain\n"), name="g/app")
    assert names.get("g/app").status == "active" and not names.status(name="g/app").retired

    names.archive("g/app", actor="admin")
    assert names.status(name="g/app").retired
    with pytest.raises(NameArchived):
        names.lock(_request(service, "lockd-fx-plain\n"), name="g/app")
    names.delete("g/app")
    with pytest.raises(NotFound):
        names.get("g/app")
    assert row_counts(database_url)["name_events"] == 0


def test_refresh_reads_the_index_as_it_is_now_while_new_locks_may_use_the_page_cache(
    service: Service, mutable_index: Any
) -> None:
    names = Names(service)
    names.lock(_request(service, "lockd-fx-plain\n"), name="fresh")  # the server caches plain's page
    mutable_index.publish("lockd-fx-plain", "1.2")
    # A new input within LOCKD_PAGE_TTL may reuse the cached page (the README says so)...
    cached = service.lock(_request(service, "lockd-fx-plain>=1.0\n"))
    assert _pins(service, cached.lock_digest)["lockd-fx-plain"] == "1.1"
    # ...a refresh never does: it sees 1.2 at once, without waiting for the cache to expire.
    proposal = names.refresh("fresh").proposal
    assert proposal is not None and [str(c.new_version) for c in proposal.diff.changes] == ["1.2"]
