"""How one distribution file's core metadata is read from its index (PEP 658/714, 427, 643).

A wheel's METADATA comes from its PEP 658/714 `.metadata` file when advertised (checked against
the advertised hash: `TamperedFile`), else from HTTP range requests into the wheel's zip
(`remote_zip`: tail → central directory → the METADATA member only), else, from a server that
ignores `Range`, from the wheel read front to back only as far as its METADATA. An sdist yields
static PKG-INFO (`lockd.sdist_metadata`, PEP 643): a tar is read as it arrives up to its
PKG-INFO (then the rest only to check a listed hash), a zip from a temporary file, both within
the member limits. Without it, a tar's egg-info is read in the same pass, as the rest arrives
(`lockd.sdist_sources`); a zip's egg-info and the operator's sandboxed builder read a copy of
the whole archive; nothing is executed here. A tar listed as big is read the same way by a
process of its own (`sdist_worker`), off this process's GIL. What is read is not yet trusted: the
client checks it against the file and decides what to remember.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from collections.abc import Callable, Iterator
from tempfile import SpooledTemporaryFile
from typing import IO, TYPE_CHECKING

from lockd.errors import IndexUnavailable, ResponseTooLarge, SdistNeedsBuild, TamperedFile
from lockd.index.body import HashedStream
from lockd.index.fetcher import Fetcher
from lockd.index.options import ClientOptions
from lockd.index.read_ahead import ReadAhead
from lockd.index.remote_zip import RemoteZip, metadata_from_zip_stream, tail_bytes
from lockd.index.sdist_worker import metadata_in_worker
from lockd.index.stats import FetchCounters
from lockd.sdist_metadata import static_pkg_info
from lockd.sdist_sources import MetadataBuilder, metadata_without_pkg_info, tar_sdist_metadata

if TYPE_CHECKING:
    from lockd.simple import DistFile

__all__ = ["MetadataReader"]

# A zip sdist is spooled to disk past this; only its PKG-INFO is ever read back.
_SPOOL_BYTES = 1024 * 1024
_READ_BYTES = 64 * 1024
_IDENTITY = {"Accept-Encoding": "identity"}
# An sdist this big is received on a thread of its own while it is read (`read_ahead`); a small
# one is not worth the thread.
_READ_AHEAD_FROM = 16 * 1024 * 1024
_READ_AHEAD_BYTES = 8 * 1024 * 1024


class MetadataReader:
    """Reads the raw core metadata of one file at a time, within the client's limits. Thread-safe."""

    def __init__(
        self,
        fetcher: Fetcher,
        options: ClientOptions,
        counters: FetchCounters,
        builder: MetadataBuilder | None = None,
    ) -> None:
        self._fetcher = fetcher
        self._options = options
        self._counters = counters
        self._builder = builder

    def read(self, file: DistFile) -> bytes:
        """METADATA of a wheel or static PKG-INFO of an sdist, as served: not yet checked against `file`."""
        return self._sdist_metadata(file) if file.kind == "sdist" else self._wheel_metadata(file)

    def _wheel_metadata(self, file: DistFile) -> bytes:
        if file.metadata_url is not None:
            metadata = self._pep658_metadata(file, file.metadata_url)
            if metadata is not None:
                return metadata
        return self._ranged_wheel_metadata(file)

    def _pep658_metadata(self, file: DistFile, url: str) -> bytes | None:
        with self._fetcher.request("GET", url) as response:
            if response.status_code == 404:
                return None  # advertised but missing happens; the wheel itself still has it
            body = self._fetcher.read_ok(response, url, self._fetcher.metadata_limit)
        actual = hashlib.sha256(body).hexdigest()
        if file.metadata_sha256 is not None and actual != file.metadata_sha256.lower():
            raise TamperedFile(
                f"{file.filename}.metadata does not match the sha256 the index advertised",
                context={"url": url, "expected": file.metadata_sha256, "actual": actual},
            )
        return body

    def _ranged_wheel_metadata(self, file: DistFile) -> bytes:
        limit = self._options.max_metadata_bytes
        members = self._options.max_archive_members
        tail_length = tail_bytes(file.size)
        headers = {"Range": f"bytes=-{tail_length}", **_IDENTITY}
        with self._fetcher.request("GET", file.url, headers=headers) as response:
            if response.status_code == 200:
                # The server ignored the range: read the wheel from its start, only up to its METADATA.
                self._counters.add("whole_downloads")
                chunks = self._fetcher.file_chunks(response, file, self._fetcher.download_limit)
                return metadata_from_zip_stream(
                    chunks, file.name, file.version, name=file.filename, url=file.url,
                    max_member_bytes=limit, max_members=members,
                )  # fmt: skip
            if response.status_code != 206:
                self._fetcher.raise_for_status(response, file.url)
                raise IndexUnavailable(
                    f"{file.url} answered {response.status_code} to a range request",
                    context={"url": file.url},
                )
            self._counters.add("range_requests")
            tail, total = self._fetcher.range_body(response, file, tail_length)

        def read_range(start: int, end: int) -> bytes:
            return self._fetcher.read_range(file, start, end)

        archive = RemoteZip(
            read_range, total, name=file.filename, url=file.url, max_member_bytes=limit,
            max_members=members, tail=tail,
        )  # fmt: skip
        return archive.dist_info_metadata(file.name, file.version)

    def _sdist_metadata(self, file: DistFile) -> bytes:
        worker_from = self._options.sdist_worker_from
        if (
            worker_from is not None
            and self._builder is None
            and file.size is not None
            and file.size >= worker_from
            and not file.filename.endswith(".zip")
        ):
            read_there = metadata_in_worker(file, self._options, self._counters)
            if read_there is not None:
                return read_there
        with self._fetcher.request("GET", file.url, headers=_IDENTITY) as response:
            self._counters.add("whole_downloads")
            self._fetcher.raise_for_status(response, file.url)
            chunks = self._fetcher.file_chunks(response, file, self._fetcher.sdist_limit)
            if self._builder is None and not file.filename.endswith(".zip"):
                if (file.size or 0) < _READ_AHEAD_FROM:
                    return self._tar_sdist_metadata(file, HashedStream(chunks))
                hasher = hashlib.sha256()
                with ReadAhead(chunks, max_bytes=_READ_AHEAD_BYTES, hasher=hasher) as received:
                    return self._tar_sdist_metadata(file, HashedStream(received, hashed_by=hasher))
            # Without static PKG-INFO the builder needs the whole archive again, so what passes
            # is kept; the common case still stops at PKG-INFO.
            with SpooledTemporaryFile(max_size=_SPOOL_BYTES) as copy:
                stream = HashedStream(_copied(chunks, copy))
                try:
                    return self._static_sdist_metadata(file, stream)
                except SdistNeedsBuild as refusal:
                    stream.drain()
                    return metadata_without_pkg_info(
                        file, copy, refusal, max_bytes=self._options.max_metadata_bytes, builder=self._builder
                    )

    def _tar_sdist_metadata(self, file: DistFile, stream: HashedStream) -> bytes:
        """Static PKG-INFO or egg-info, from the tar as it arrives (`tar_sdist_metadata`), then the rest checked."""
        options = self._options
        return self._read_then_verify(
            file, stream, lambda archive: tar_sdist_metadata(
                file, archive, max_bytes=options.max_metadata_bytes, max_members=options.max_archive_members,
                max_member_bytes=options.max_sdist_member_bytes,
            ),
        )  # fmt: skip

    def _static_sdist_metadata(self, file: DistFile, stream: HashedStream) -> bytes:
        if file.filename.endswith(".zip"):
            return self._zip_sdist_metadata(file, stream)
        # A tar is read as it arrives, only up to its PKG-INFO (or a limit).
        return self._read_then_verify(file, stream, lambda archive: self._pkg_info(file, archive))

    def _read_then_verify(
        self, file: DistFile, stream: HashedStream, read: Callable[[IO[bytes]], bytes]
    ) -> bytes:
        """`read` of the archive as it arrives, then the rest of the file checked against its listed hash."""
        try:
            found = read(io.BufferedReader(stream, _READ_BYTES))
        except (IndexUnavailable, SdistNeedsBuild) as exc:
            if not isinstance(exc, ResponseTooLarge):
                self._verify_rest(file, stream)  # tampering explains an unreadable archive best
            raise
        self._verify_rest(file, stream)
        return found

    def _zip_sdist_metadata(self, file: DistFile, stream: HashedStream) -> bytes:
        """A zip's directory is at its end: it is spooled to a temporary file, whole and verified, first."""
        with SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
            shutil.copyfileobj(stream, spool)
            self._verify_rest(file, stream)
            spool.seek(0)
            return self._pkg_info(file, spool)

    def _pkg_info(self, file: DistFile, archive: IO[bytes]) -> bytes:
        options = self._options
        return static_pkg_info(
            file, archive, max_bytes=options.max_metadata_bytes, max_members=options.max_archive_members,
            max_member_bytes=options.max_sdist_member_bytes,
        )  # fmt: skip

    def _verify_rest(self, file: DistFile, stream: HashedStream) -> None:
        """Reads the rest of a hashed file to check it; a file without a listed hash is left unread."""
        if file.sha256 is None:
            return
        digest = stream.drain()
        if digest is not None:
            self._fetcher.verify(file, digest)


def _copied(chunks: Iterator[bytes], copy: IO[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        copy.write(chunk)
        yield chunk
