"""A big sdist's metadata over real HTTP: read in one pass as it arrives, received on its own thread.

The read-ahead starts at 16 MiB; here its thresholds are lowered so the fixture index's small
archives take that path, through the same client, fetcher and HTTP server as any other.
"""

from __future__ import annotations

import io
import os
import tarfile
import threading
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from fixtures.index import FixtureIndex
from fixtures.legacy_sdists import legacy_sdist, publish_legacy_sdist
from lockd.errors import TamperedFile
from lockd.index import IndexClient, metadata_reader
from lockd.index.read_ahead import ReadAhead
from lockd.sdist_sources import metadata_source
from lockd.simple import DistFile

_STARTED: list[int] = []


class _Counted(ReadAhead):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _STARTED.append(kwargs["max_bytes"])
        super().__init__(*args, **kwargs)


@pytest.fixture(autouse=True)
def _read_ahead_for_every_sdist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata_reader, "_READ_AHEAD_FROM", 0)
    monkeypatch.setattr(metadata_reader, "_READ_AHEAD_BYTES", 16 * 1024)  # backpressure, many times over
    monkeypatch.setattr(metadata_reader, "ReadAhead", _Counted)  # the real one, counted
    _STARTED.clear()


def _sdist(client: IndexClient, index: FixtureIndex, project: str) -> DistFile:
    page = client.project_page(index.pypi_url, canonicalize_name(project))
    return next(f for f in page.files if f.kind == "sdist")


def _noisy_legacy_sdist(project: str, version: str, requires_txt: str, noise: int) -> bytes:
    """A legacy sdist whose egg-info comes after `noise` incompressible bytes, as pyspark's does."""
    stem = f"{project.replace('-', '_')}-{version}"
    members = [
        (f"{stem}/PKG-INFO", f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n".encode()),
        (f"{stem}/jars/big.jar", os.urandom(noise)),
        (f"{stem}/{project.replace('-', '_')}.egg-info/requires.txt", requires_txt.encode()),
    ]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _read_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "lockd-read-ahead" and t.is_alive()]


def test_egg_info_after_a_megabyte_of_jars_is_read_in_one_download(mutable_index: FixtureIndex) -> None:
    publish_legacy_sdist(mutable_index, "lockd-fx-bigspark", "4.3", requires_txt=None)
    filename = "lockd_fx_bigspark-4.3.tar.gz"
    mutable_index.replace_content(
        filename, _noisy_legacy_sdist("lockd-fx-bigspark", "4.3", "py4j==0.10\n", 1 << 20)
    )
    with IndexClient(timeout=10.0) as client:
        sdist = _sdist(client, mutable_index, "lockd-fx-bigspark")
        metadata = client.fetch_metadata(sdist)
        assert b"Requires-Dist: py4j==0.10\n" in metadata and metadata_source("sdist", metadata) == "egg-info"
        assert client.stats.whole_downloads == 1 and client.stats.bytes_fetched >= 1 << 20
    assert _STARTED == [16 * 1024]
    assert _read_ahead_threads() == []


def test_a_tampered_big_sdist_is_refused_after_the_read_ahead(mutable_index: FixtureIndex) -> None:
    publish_legacy_sdist(mutable_index, "lockd-fx-bigspark", "4.3", requires_txt="six\n")
    with IndexClient(timeout=10.0) as client:
        sdist = _sdist(client, mutable_index, "lockd-fx-bigspark")
        # Other bytes than the page lists, still a readable legacy sdist: only the hash tells.
        mutable_index.replace_content(
            sdist.filename, legacy_sdist("lockd-fx-bigspark", "4.3", requires_txt="evil-package\n")
        )
        with pytest.raises(TamperedFile) as raised:
            client.fetch_metadata(sdist)
        assert raised.value.context["expected"] == sdist.sha256
    assert _STARTED == [16 * 1024]
    assert _read_ahead_threads() == []
