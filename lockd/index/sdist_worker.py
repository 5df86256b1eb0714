"""A big tar sdist's metadata read in a process of its own, so it shares no GIL with the resolution.

pyspark 4.3.0 is a 456 MB sdist whose egg-info sits at its end: reading it means receiving,
hashing and inflating all of it, tens of thousands of C calls that each let go of the GIL and
must win it back. Inside a resolution whose fetch threads parse pages, every one of those waits
its turn: measured on a 300-pin stack, pyspark's 2.7 s alone became 5.8 s, and it was the
resolution's critical path (`python -m bench.sdist_metadata pyspark 4.3.0` times it alone).
Here a child process (`main`, started as `python -c` with the same interpreter) runs the same reader, with the same
limits and checks (`MetadataReader`, read-ahead, hash verified), and answers the metadata or the
error it raised; the caller's threads go on meanwhile, on the other core.

The job goes in on stdin as JSON, credentials included (never in argv or the environment); the
answer comes back on stdout as JSON. The child honours the caller's deadline and is killed when
it is passed. What the child fetched is added to the caller's counters. Only archives listed as
at least `ClientOptions.sdist_worker_from` bytes go this way: below that a process costs more
than it saves (it starts in about 0.1 s).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, fields, replace
from typing import Any

from lockd.deadline import check_deadline, deadline_scope, seconds_left
from lockd.errors import LockdError
from lockd.index.child_code import child_code
from lockd.index.credentials import BasicCredential, IndexCredential, IndexCredentials
from lockd.index.fetcher import Fetcher, budget_spent_reading
from lockd.index.options import ClientOptions
from lockd.index.stats import FetchCounters, FetchStats
from lockd.simple import DistFile

__all__ = ["main", "metadata_in_worker"]

# The job is a few KiB; the answer is metadata within `max_metadata_bytes`, base64 and JSON.
_MAX_JOB_BYTES = 1024 * 1024
_STDERR_SHOWN = 2000
# Children at once, per process: a hostile index listing many big sdists gets no more.
_RUNNING = threading.BoundedSemaphore(max(1, min(4, os.cpu_count() or 1)))
_CHILD = child_code("lockd.index.sdist_worker")  # what the child runs: `python -c`, this interpreter


def metadata_in_worker(file: DistFile, options: ClientOptions, counters: FetchCounters) -> bytes | None:
    """The raw core metadata of tar sdist `file`, as `MetadataReader.read` gives it, read by a child process.

    None when no process could be started (a container's process limit, no memory to fork):
    the caller then reads the archive itself, as it would a small one."""
    check_deadline(f"reading {file.filename}")
    left = seconds_left()
    if not _RUNNING.acquire(timeout=-1 if left is None else max(0.0, left)):
        raise budget_spent_reading(file.url)
    try:
        return _run_child(file, options, counters)
    finally:
        _RUNNING.release()


def _run_child(file: DistFile, options: ClientOptions, counters: FetchCounters) -> bytes | None:
    left = seconds_left()
    job = json.dumps({"file": _file_json(file), "options": _options_json(options), "seconds_left": left})
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError:
        return None
    with child:
        try:
            # Past the deadline the child ends itself; the slack covers its start and its answer.
            out, err = child.communicate(job.encode(), timeout=None if left is None else left + 2.0)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise budget_spent_reading(file.url) from None
        except BaseException:
            child.kill()
            raise
    answer = _answer(out)
    if answer is None:
        shown = err.decode("utf-8", "replace")[-_STDERR_SHOWN:]
        raise LockdError(
            f"the process reading {file.filename} ended without an answer (exit status {child.returncode})",
            context={"filename": file.filename, "stderr": shown},
        )
    for name, value in answer.get("counters", {}).items():
        if name in _COUNTER_NAMES and isinstance(value, int) and value > 0:
            counters.add(name, value)
    if "error" in answer:
        raise LockdError.from_json(answer["error"])
    return base64.b64decode(answer["metadata"])


def _answer(out: bytes) -> dict[str, Any] | None:
    """The child's answer: metadata or an error, and its counters; None for anything else."""
    try:
        answer = json.loads(out)
    except ValueError:
        return None
    if not isinstance(answer, dict) or not isinstance(answer.get("counters", {}), dict):
        return None
    if isinstance(answer.get("error"), dict) or isinstance(answer.get("metadata"), str):
        return answer
    return None


def main() -> int:
    """The child: one job from stdin, one answer to stdout."""
    from lockd.index.metadata_reader import MetadataReader  # noqa: PLC0415  (it imports this module)

    job = json.loads(sys.stdin.buffer.read(_MAX_JOB_BYTES))
    options = replace(_options_from(job["options"]), sdist_worker_from=None)  # never a grandchild
    file = _file_from(job["file"])
    left = job.get("seconds_left")
    counters = FetchCounters()
    fetcher = Fetcher(options, counters)
    answer: dict[str, Any]
    try:
        with deadline_scope(time.monotonic() + float(left)) if left is not None else nullcontext():
            metadata = MetadataReader(fetcher, options, counters).read(file)
        answer = {"metadata": base64.b64encode(metadata).decode("ascii")}
    except LockdError as exc:
        answer = {"error": exc.to_json()}
    finally:
        fetcher.close()
    answer["counters"] = asdict(counters.snapshot())
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
    return 0


_COUNTER_NAMES = frozenset(item.name for item in fields(FetchStats))


def _file_json(file: DistFile) -> dict[str, Any]:
    return {
        "name": file.name,
        "version": str(file.version),
        "filename": file.filename,
        "url": file.url,
        "sha256": file.sha256,
        "size": file.size,
        "index_url": file.index_url,
    }


def _file_from(data: dict[str, Any]) -> DistFile:
    from packaging.utils import canonicalize_name  # noqa: PLC0415
    from packaging.version import Version  # noqa: PLC0415

    return DistFile.of(
        name=canonicalize_name(data["name"]),
        version=Version(data["version"]),
        filename=data["filename"],
        url=data["url"],
        kind="sdist",
        tags=frozenset(),
        sha256=data["sha256"],
        size=data["size"],
        requires_python=None,
        yanked=None,
        upload_time=None,
        metadata_url=None,
        metadata_sha256=None,
        index_url=data["index_url"],
    )


def _options_json(options: ClientOptions) -> dict[str, Any]:
    values = {
        item.name: getattr(options, item.name) for item in fields(ClientOptions) if item.name != "credentials"
    }
    values["credentials"] = [
        {
            "index_url": entry.index_url,
            "host": entry.host,
            "secure": entry.secure,
            "username": entry.credential.username,
            "password": entry.credential.password,
        }
        for entry in options.credentials.indexes
    ]
    return values


def _options_from(data: dict[str, Any]) -> ClientOptions:
    credentials = IndexCredentials(
        indexes=tuple(
            IndexCredential(
                index_url=entry["index_url"],
                host=entry["host"],
                secure=entry["secure"],
                credential=BasicCredential(username=entry["username"], password=entry["password"]),
            )
            for entry in data.pop("credentials")
        )
    )
    return ClientOptions(**data, credentials=credentials)


if __name__ == "__main__":
    sys.exit(main())
