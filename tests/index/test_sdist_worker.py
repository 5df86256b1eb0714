"""A big tar sdist read by a child process: the same metadata, errors, credentials and deadline.

The child starts for sdists listed at `sdist_worker_from` bytes or more (16 MiB by default);
here that threshold is 0, so the fixture index's small archives take the path, over real HTTP
from a real child process.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from fixtures.index import FixtureIndex
from fixtures.legacy_sdists import legacy_sdist, publish_legacy_sdist
from lockd.deadline import deadline_scope
from lockd.errors import IndexUnavailable, ResolutionTimeout, TamperedFile, UnusableMetadata
from lockd.index import IndexClient, metadata_reader, sdist_worker, split_credentials
from lockd.index.options import ClientOptions
from lockd.index.stats import FetchCounters
from lockd.sdist_sources import metadata_source
from lockd.simple import DistFile
from tests.support import QuietHandler, child_pids, loopback_http

PROJECT = "lockd-fx-bigspark"


@pytest.fixture
def workers_ran(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The filenames the client handed to a child process, in order."""
    ran: list[str] = []
    real = sdist_worker.metadata_in_worker

    def counted(file: DistFile, options: ClientOptions, counters: FetchCounters) -> bytes | None:
        ran.append(file.filename)
        return real(file, options, counters)

    monkeypatch.setattr(metadata_reader, "metadata_in_worker", counted)
    yield ran


def _client(**options: object) -> IndexClient:
    return IndexClient(ClientOptions(timeout=10.0, sdist_worker_from=0, **options))  # type: ignore[arg-type]


def _sdist(client: IndexClient, index: FixtureIndex) -> DistFile:
    page = client.project_page(index.pypi_url, canonicalize_name(PROJECT))
    return next(f for f in page.files if f.kind == "sdist")


def test_a_child_reads_the_same_metadata_and_its_fetches_are_counted(
    mutable_index: FixtureIndex, workers_ran: list[str]
) -> None:
    publish_legacy_sdist(mutable_index, PROJECT, "4.3", requires_txt="py4j==0.10\n")
    with IndexClient(ClientOptions(timeout=10.0, sdist_worker_from=None)) as here:
        expected = here.fetch_metadata(_sdist(here, mutable_index))
    assert workers_ran == []
    children = child_pids()
    with _client() as client:
        sdist = _sdist(client, mutable_index)
        before = client.stats
        metadata = client.fetch_metadata(sdist)
        after = client.stats
    assert workers_ran == [sdist.filename]
    assert metadata == expected
    assert b"Requires-Dist: py4j==0.10\n" in metadata and metadata_source("sdist", metadata) == "egg-info"
    assert after.whole_downloads - before.whole_downloads == 1
    assert after.requests - before.requests == 1
    assert after.bytes_fetched - before.bytes_fetched == sdist.size
    assert child_pids() <= children  # the child has ended


def test_a_tampered_sdist_is_refused_across_the_process_boundary(
    mutable_index: FixtureIndex, workers_ran: list[str]
) -> None:
    publish_legacy_sdist(mutable_index, PROJECT, "4.3", requires_txt="six\n")
    with _client() as client:
        sdist = _sdist(client, mutable_index)
        mutable_index.replace_content(
            sdist.filename, legacy_sdist(PROJECT, "4.3", requires_txt="evil-package\n")
        )
        with pytest.raises(TamperedFile) as raised:
            client.fetch_metadata(sdist)
    assert raised.value.context["expected"] == sdist.sha256
    assert type(raised.value) is TamperedFile and raised.value.code == "hash-mismatch"
    assert workers_ran == [sdist.filename]


def test_the_childs_limits_are_the_clients(mutable_index: FixtureIndex, workers_ran: list[str]) -> None:
    publish_legacy_sdist(mutable_index, PROJECT, "4.3", requires_txt="six\n")
    with _client() as client:
        sdist = _sdist(client, mutable_index)
    assert sdist.size is not None
    with _client(max_sdist_bytes=sdist.size - 1) as client, pytest.raises(UnusableMetadata) as raised:
        client.fetch_metadata(sdist)  # the child's ResponseTooLarge, as the client reports it in-process
    assert raised.value.hint is not None and "LOCKD_MAX_SDIST_BYTES" in raised.value.hint
    assert workers_ran == [sdist.filename]


def test_the_child_carries_the_index_credential_and_only_that(
    mutable_index: FixtureIndex, workers_ran: list[str]
) -> None:
    publish_legacy_sdist(mutable_index, PROJECT, "4.3", requires_txt="six\n")
    mutable_index.require_auth("ci", "s3cret")
    host = mutable_index.url.removeprefix("http://")
    index_url, good = split_credentials(f"http://ci:s3cret@{host}/simple/")
    _, wrong = split_credentials(f"http://ci:guess@{host}/simple/")
    with _client(credentials=good) as client:
        page = client.project_page(index_url, canonicalize_name(PROJECT))
        sdist = next(f for f in page.files if f.kind == "sdist")
        assert b"Requires-Dist: six" in client.fetch_metadata(sdist)
    with (
        _client(credentials=wrong) as client,
        pytest.raises(IndexUnavailable, match="refused the credentials"),
    ):
        client.fetch_metadata(sdist)
    assert workers_ran == [sdist.filename] * 2
    assert {r.user for r in mutable_index.requests_log()} == {"ci"}


class _Drip(QuietHandler):
    """An sdist that arrives one byte a second."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        for _ in range(60):
            self.wfile.write(b"\x1f")
            self.wfile.flush()
            time.sleep(1.0)


def test_the_child_ends_at_the_callers_deadline(workers_ran: list[str]) -> None:
    children = child_pids()
    with loopback_http(_Drip) as host, _client() as client:
        sdist = DistFile.of(
            name=canonicalize_name("slow"), version=Version("1.0"), filename="slow-1.0.tar.gz",
            url=f"http://{host}/slow-1.0.tar.gz", kind="sdist", tags=frozenset(), sha256="0" * 64,
            size=1_000_000, requires_python=None, yanked=None, upload_time=None, metadata_url=None,
            metadata_sha256=None,
        )  # fmt: skip
        started = time.monotonic()
        with deadline_scope(started + 1.5), pytest.raises(ResolutionTimeout) as raised:
            client.fetch_metadata(sdist)
        elapsed = time.monotonic() - started
    assert raised.value.context["url"] == sdist.url
    assert 1.4 < elapsed < 4.5, f"{elapsed:.2f} s for a 1.5 s deadline"
    assert workers_ran == [sdist.filename]
    assert child_pids() <= children  # killed, not left behind


def test_without_a_process_to_start_the_client_reads_the_archive_itself(
    mutable_index: FixtureIndex, workers_ran: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a container at its process limit does to fork: EAGAIN.
    def no_process(*args: object, **kwargs: object) -> None:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    publish_legacy_sdist(mutable_index, PROJECT, "4.3", requires_txt="py4j==0.10\n")
    with _client() as client:
        sdist = _sdist(client, mutable_index)
        assert b"Requires-Dist: py4j==0.10\n" in client.fetch_metadata(sdist)
        assert client.stats.whole_downloads == 1
    assert workers_ran == [sdist.filename]


def test_options_cross_to_the_child_whole() -> None:
    _, credentials = split_credentials("https://u:p%40ss@mirror.internal/simple/")
    options = ClientOptions(timeout=7.0, max_sdist_bytes=12345, user_agent="ua/1", credentials=credentials)
    job = sdist_worker._options_json(options)
    assert sdist_worker._options_from(job) == options
