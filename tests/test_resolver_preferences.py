"""The resolver's preferences: a preferred version is tried first while it still satisfies and
installs (pip-compile's rule for an existing output), and is dropped otherwise."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from fixtures.index import FixtureIndex
from lockd.index import IndexClient
from lockd.inputs import LockRequest, parse_requirements
from lockd.resolver import resolve
from lockd.routing import plan_for
from lockd.target import Target

TARGET = Target.of("linux_x86_64", "3.11")


@pytest.fixture(scope="module")
def client() -> Iterator[IndexClient]:
    with IndexClient(timeout=20.0) as instance:
        yield instance


def _pins(index: FixtureIndex, client: IndexClient, text: str, **preferred: str) -> dict[str, str]:
    request = LockRequest(
        requirements=parse_requirements(text),
        constraints=(),
        target=TARGET,
        plan=plan_for(TARGET, default_url=index.pypi_url, pytorch_base=index.pytorch_base),
    )
    preferences = {canonicalize_name(name.replace("_", "-")): Version(v) for name, v in preferred.items()}
    lock = resolve(request, client, preferences=preferences)
    return {name: str(version) for name, version in lock.pins.items()}


def test_a_preference_that_fits_wins_over_newer(fixture_index: FixtureIndex, client: IndexClient) -> None:
    assert _pins(fixture_index, client, "lockd-fx-extras")["lockd-fx-plain"] == "1.1"
    assert _pins(fixture_index, client, "lockd-fx-extras", lockd_fx_plain="1.0")["lockd-fx-plain"] == "1.0"


def test_a_preference_that_no_longer_fits_is_dropped(
    fixture_index: FixtureIndex, client: IndexClient
) -> None:
    # Outside the specifier, yanked (offered for exact pins only), or not there at all: newest wins.
    assert _pins(fixture_index, client, "lockd-fx-plain>1.0", lockd_fx_plain="1.0")["lockd-fx-plain"] == "1.1"
    assert _pins(fixture_index, client, "lockd-fx-yanked", lockd_fx_yanked="1.1")["lockd-fx-yanked"] == "1.0"
    assert _pins(fixture_index, client, "lockd-fx-plain", lockd_fx_plain="0.9")["lockd-fx-plain"] == "1.1"
    # A preference for a project the input does not reach adds nothing.
    assert _pins(fixture_index, client, "lockd-fx-plain", lockd_fx_pyreq="1.0") == {"lockd-fx-plain": "1.1"}
