"""Private indexes: strict routing both ways, selection by name only, credentials, recorded in the lock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.build import Catalog
from fixtures.index import FixtureIndex
from fixtures.private_index import PRIVATE_PASSWORD, PRIVATE_USER, shadow_on_public, start_private_index
from lockd.config import Settings
from lockd.errors import InvalidRequest, UnknownProject
from lockd.private_indexes import PrivateIndexError, parse_private_indexes
from lockd.render.pylock import render_pylock_toml
from lockd.render.requirements_txt import render_requirements_txt
from lockd.routing import IndexPlan
from tests.support import request_for, resolve_offline

_TARGET = {"platform": "linux_x86_64", "python": "3.11"}


@pytest.fixture
def private_index(_fixture_catalog: Catalog) -> Iterator[FixtureIndex]:
    index = start_private_index(_fixture_catalog)
    try:
        yield index
    finally:
        index.stop()


def _settings(public: FixtureIndex, private: FixtureIndex, tmp_path: Path) -> Settings:
    host = private.pypi_url.split("://", 1)[1]
    config = tmp_path / "indexes.toml"
    config.write_text(
        f'[[index]]\nname = "acme"\nurl = "http://{PRIVATE_USER}:{PRIVATE_PASSWORD}@{host}"\n'
        'projects = ["lockd-fx-acme-*"]\n'
    )
    return Settings(index_url=public.pypi_url, pytorch_index_url=public.pytorch_base, private_indexes=config)


def test_an_internal_name_comes_only_from_its_index(
    mutable_index: FixtureIndex, private_index: FixtureIndex, tmp_path: Path
) -> None:
    shadow_on_public(mutable_index)
    settings = _settings(mutable_index, private_index, tmp_path)
    request = request_for(settings, requirements="lockd-fx-acme-tool", target=_TARGET, indexes=["acme"])
    lock, _stats = resolve_offline(settings, request)
    pins = {name: str(version) for name, version in lock.pins.items()}
    # 1.0 from the private index, not 99.0 from the public one; lockd-fx-plain from the public
    # index (1.1), not the private copy (2.0) that the private index does not list.
    assert pins == {"lockd-fx-acme-tool": "1.0", "lockd-fx-acme-core": "0.5", "lockd-fx-plain": "1.1"}
    private_url = private_index.pypi_url
    assert {p.name: p.index for p in lock.packages} == {
        "lockd-fx-acme-tool": private_url,
        "lockd-fx-acme-core": private_url,
        "lockd-fx-plain": mutable_index.pypi_url,
    }
    assert PRIVATE_PASSWORD not in lock.canonical_bytes().decode()
    assert f"--extra-index-url {private_url}\n" in render_requirements_txt(lock)
    assert f'index = "{private_url}"' in render_pylock_toml(lock)
    assert IndexPlan.from_json(lock.plan.to_json()) == lock.plan


def test_an_unselected_private_index_still_reserves_its_names(
    mutable_index: FixtureIndex, private_index: FixtureIndex, tmp_path: Path
) -> None:
    shadow_on_public(mutable_index)
    settings = _settings(mutable_index, private_index, tmp_path)
    request = request_for(settings, requirements="lockd-fx-acme-tool", target=_TARGET)
    with pytest.raises(UnknownProject) as raised:
        resolve_offline(settings, request)
    assert raised.value.message == (
        "lockd-fx-acme-tool is served only by the private index acme, which this request does not select "
        "(requirements.in line 1 asks for lockd-fx-acme-tool)"
    )


def test_indexes_are_selected_by_configured_name_only(
    mutable_index: FixtureIndex, private_index: FixtureIndex, tmp_path: Path
) -> None:
    settings = _settings(mutable_index, private_index, tmp_path)
    for wrong in ("other", private_index.pypi_url):
        with pytest.raises(InvalidRequest) as raised:
            request_for(settings, requirements="lockd-fx-plain", target=_TARGET, indexes=[wrong])
        assert (
            raised.value.hint
            == "select private indexes by name: acme; index URLs are configuration, never input"
        )


def test_a_plan_without_private_indexes_keeps_its_json(fixture_index: FixtureIndex) -> None:
    settings = Settings(index_url=fixture_index.pypi_url)
    request = request_for(settings, requirements="lockd-fx-plain", target=_TARGET)
    assert set(request.plan.to_json()) == {"default", "accelerator", "family"}


@pytest.mark.parametrize(
    "text",
    [
        '[[index]]\nname = "acme"\nurl = "ftp://x"\nprojects = ["a"]\n',
        '[[index]]\nname = "acme"\nurl = "https://x/"\nprojects = []\n',
        '[[index]]\nname = "ac me"\nurl = "https://x/"\nprojects = ["a"]\n',
    ],
)
def test_bad_configuration_is_refused(text: str) -> None:
    with pytest.raises(PrivateIndexError):
        parse_private_indexes(text)
