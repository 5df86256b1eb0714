"""Minimal churn against the oracles: a name moving to a new input keeps what pip-compile and
`uv pip compile` keep when they are given the previous output file, and `upgrade=` moves what
their `--upgrade-package` moves. The index changes between the two locks, so a resolution from
scratch would move more than the change requires."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lockd.config import Settings
from lockd.names import Names, parse_upgrade
from lockd.service import Service
from lockd.target import Target
from tests.peers import UvIndexes, parse_pins, pip_compile, uv_compile

HOST = Target.of("linux_x86_64", "3.11")  # the interpreter pip-compile runs on
TARGET = {"platform": "linux_x86_64", "python": "3.11"}


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    before: str
    after: str
    upgrade: tuple[str, ...] = ()


CASES = (
    Case("add-a-line", "lockd-fx-extras\n", "lockd-fx-extras\nlockd-fx-speedups\n"),
    Case("add-an-extra", "lockd-fx-extras\n", "lockd-fx-extras[fast]\n"),
    Case("tighten-a-pin", "lockd-fx-extras\nlockd-fx-pre\n", "lockd-fx-extras\nlockd-fx-pre<1.1\n"),
    Case(
        "upgrade-one",
        "lockd-fx-extras\nlockd-fx-pre\n",
        "lockd-fx-extras\nlockd-fx-pre\nlockd-fx-speedups\n",
        ("lockd-fx-plain",),
    ),
)


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


@pytest.mark.parametrize("backend", ["sqlite"])  # the oracle comparison does not depend on the database
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_move_keeps_what_pip_compile_and_uv_keep(
    service: Service, mutable_index: Any, case: Case, tmp_path: Path
) -> None:
    names = Names(service)
    first = names.lock(service.build_request(requirements=case.before, target=TARGET), name="churn")
    previous = service.lock_file(first.result.lock_digest, "requirements.txt").content.decode()
    # Newer releases of everything the first lock pinned: a fresh resolution would take them.
    mutable_index.publish("lockd-fx-plain", "1.2")
    mutable_index.publish("lockd-fx-pre", "1.2")
    mutable_index.publish("lockd-fx-extras", "1.1", requires_dist=("lockd-fx-plain>=1.0",))
    service.index.drop_pages()
    upgrade = parse_upgrade(",".join(case.upgrade)) if case.upgrade else None
    moved = names.lock(
        service.build_request(requirements=case.after, target=TARGET), name="churn", upgrade=upgrade
    )
    ours = parse_pins(service.lock_file(moved.result.lock_digest, "requirements.txt").content.decode())

    pip = pip_compile(
        case.after, mutable_index.pypi_url, tmp_path, previous=previous, upgrade_packages=case.upgrade
    )
    uv = uv_compile(
        case.after,
        HOST,
        UvIndexes(mutable_index.pypi_url),
        tmp_path,
        previous=previous,
        upgrade_packages=case.upgrade,
    )
    assert ours == pip == uv
    afresh, _ = service.resolve_in_budget(
        service.build_request(requirements=case.after, target=TARGET), service.index
    )
    scratch = {name: str(version) for name, version in afresh.pins.items()}
    assert scratch != ours, (
        "the index did not change enough for the case to tell keeping from resolving afresh"
    )
