"""The hostile index serves each attack as specified. These test the FIXTURE, cheaply: every huge body
is read only as far as a bound (the full-size scenarios), or whole at a small size (the same code
with other ``HostileLimits``). lockd's own hardening against these attacks is tested elsewhere."""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import re
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version

from fixtures.hostile import SCENARIOS, HostileIndex, HostileLimits
from fixtures.index import FixtureIndex

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
TIMEOUT = httpx.Timeout(20.0)


def _prefix(url: str, limit: int, headers: dict[str, str] | None = None) -> tuple[httpx.Response, bytes]:
    """The response and at most ``limit`` raw (undecoded) body bytes; the connection is dropped after."""
    read = b""
    with (
        httpx.Client(timeout=TIMEOUT) as client,
        client.stream("GET", url, headers=headers or {}) as response,
    ):
        for chunk in response.iter_raw():
            read += chunk
            if len(read) >= limit:
                break
    return response, read[:limit]


def _links(page: str) -> list[str]:
    return re.findall(r'<a href="([^"]+)"', page)


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.02)


def test_every_scenario_is_listed_with_what_a_client_must_do(hostile_index: HostileIndex) -> None:
    listed = httpx.get(hostile_index.url + "/", timeout=TIMEOUT).json()
    assert [item["name"] for item in listed] == list(SCENARIOS)
    assert all(len(item["client_must"]) > 80 and "correct client" in item["client_must"] for item in listed)
    for item in listed:
        root = httpx.get(item["index_url"], timeout=TIMEOUT)
        assert root.status_code == 200 and _links(root.text), item["name"]
    # Nothing is served at the top level until a scenario is activated, by method or by HTTP.
    assert httpx.get(hostile_index.url + "/simple/drip-feed/", timeout=TIMEOUT).status_code == 404
    answer = httpx.post(
        hostile_index.url + "/_control/scenario", json={"name": "metadata-mismatch"}, timeout=TIMEOUT
    )
    assert answer.json() == {"active": "metadata-mismatch"}
    assert (
        "lockd_fx_misnamed-0.9"
        in httpx.get(hostile_index.url + "/whl/cu124/lockd-fx-misnamed/", timeout=TIMEOUT).text
    )
    assert (
        httpx.post(
            hostile_index.url + "/_control/scenario", json={"name": "nope"}, timeout=TIMEOUT
        ).status_code
        == 400
    )


def test_metadata_poisoning_claims_the_hash_of_pypis_click(
    hostile_index: HostileIndex, fixture_index: FixtureIndex
) -> None:
    wheels = [a for a in fixture_index.files("click") if a.filename.endswith(".whl")]
    click = max(wheels, key=lambda a: Version(a.version))
    page = httpx.get(
        hostile_index.variant_url("metadata-poisoning", "cu124") + "xformers/", timeout=TIMEOUT
    ).text
    (href,) = _links(page)
    assert href.endswith(f"xformers-0.0.99-py3-none-any.whl#sha256={click.sha256}")
    file_url = hostile_index.url + href.split("#")[0]
    assert hashlib.sha256(httpx.get(file_url, timeout=TIMEOUT).content).hexdigest() == click.sha256
    metadata = httpx.get(file_url + ".metadata", timeout=TIMEOUT).text
    assert f"Name: click\nVersion: {click.version}\n" in metadata and "Requires-Dist: certifi" in metadata
    assert f'data-core-metadata="sha256={hashlib.sha256(metadata.encode()).hexdigest()}"' in page


def test_metadata_that_disagrees_with_its_file(hostile_index: HostileIndex) -> None:
    misnamed = hostile_index.file_url("metadata-mismatch", "lockd_fx_misnamed-1.0-py3-none-any.whl")
    with zipfile.ZipFile(io.BytesIO(httpx.get(misnamed, timeout=TIMEOUT).content)) as wheel:
        inside = wheel.read("lockd_fx_misnamed-1.0.dist-info/METADATA").decode()
    assert "Name: lockd-fx-plain\nVersion: 9.9\n" in inside
    assert httpx.get(misnamed + ".metadata", timeout=TIMEOUT).text == inside
    honest = httpx.get(
        hostile_index.file_url("metadata-mismatch", "lockd_fx_misnamed-0.9-py3-none-any.whl.metadata"),
        timeout=TIMEOUT,
    )
    assert "Name: lockd-fx-misnamed\nVersion: 0.9\n" in honest.text

    page = httpx.get(
        hostile_index.index_url("metadata-hash-mismatch") + "lockd-fx-badmeta/", timeout=TIMEOUT
    ).text
    advertised = re.search(r'data-dist-info-metadata="sha256=([0-9a-f]{64})"', page)
    assert advertised is not None
    badmeta = hostile_index.file_url("metadata-hash-mismatch", "lockd_fx_badmeta-1.0-py3-none-any.whl")
    served = httpx.get(badmeta + ".metadata", timeout=TIMEOUT).content
    assert b"Requires-Dist: certifi" in served and hashlib.sha256(served).hexdigest() != advertised[1]
    with zipfile.ZipFile(io.BytesIO(httpx.get(badmeta, timeout=TIMEOUT).content)) as wheel:
        true_metadata = wheel.read("lockd_fx_badmeta-1.0.dist-info/METADATA")
    assert (
        hashlib.sha256(true_metadata).hexdigest() == advertised[1] and b"Requires-Dist" not in true_metadata
    )


def _requires(index: HostileIndex, scenario: str, project: str) -> list[str]:
    url = index.file_url(scenario, f"{project.replace('-', '_')}-1.0-py3-none-any.whl.metadata")
    text = httpx.get(url, timeout=TIMEOUT).text
    page = httpx.get(index.index_url(scenario) + project + "/", timeout=TIMEOUT).text
    assert f"{project.replace('-', '_')}-0.9-py3-none-any.whl" in page, "an honest 0.9 to fall back to"
    return [
        line.removeprefix("Requires-Dist: ")
        for line in text.splitlines()
        if line.startswith("Requires-Dist: ")
    ]


def test_hostile_requirement_strings(hostile_index: HostileIndex) -> None:
    (huge,) = _requires(hostile_index, "huge-version", "huge-version")
    assert len(huge) == len("lockd-fx-plain>=1.") + 5_000
    with pytest.raises(ValueError, match="4300 digits"):
        list(Requirement(huge).specifier.filter(["1.0"]))
    (deep,) = _requires(hostile_index, "deep-marker", "deep-marker")
    assert deep.count("(") == 500
    with pytest.raises((RecursionError, InvalidRequirement)):
        Requirement(deep)
    many = _requires(hostile_index, "many-requires", "many-requires")
    assert len(many) == 100_000 and len(set(many)) == 100_000


def test_the_endless_page_never_ends(hostile_index: HostileIndex) -> None:
    response, body = _prefix(hostile_index.index_url("endless-page") + "endless/", 8 * MiB)
    assert "content-length" not in response.headers and response.headers["transfer-encoding"] == "chunked"
    assert len(body) == 8 * MiB and b"</html>" not in body
    assert len(_links(body.decode(errors="replace"))) > 30_000


def test_the_gzip_bomb_is_small_on_the_wire_and_huge_inflated(hostile_index: HostileIndex) -> None:
    response, raw = _prefix(hostile_index.index_url("gzip-bomb") + "gzip-bomb/", 64 * 1024)
    assert response.headers["content-encoding"] == "gzip"
    compressed = int(response.headers["content-length"])
    assert compressed < 12 * MiB and 10 * 1024**3 / compressed > 900  # 10 GiB at a ratio of ~1000
    inflated = zlib.decompressobj(wbits=31).decompress(raw, 8 * MiB)
    assert len(inflated) == 8 * MiB and inflated.startswith(b"<!DOCTYPE html>")
    assert set(inflated[inflated.index(b"<body>\n") + 7 :]) == {ord(" ")}


def test_a_small_gzip_bomb_is_one_valid_gzip_stream(
    make_hostile_index: Callable[[HostileLimits], HostileIndex],
) -> None:
    index = make_hostile_index(HostileLimits(gzip_bomb_bytes=3 * MiB + 12_345))
    with (
        httpx.Client(timeout=TIMEOUT) as client,
        client.stream("GET", index.index_url("gzip-bomb") + "gzip-bomb/") as response,
    ):
        raw = b"".join(response.iter_raw())
    assert len(raw) == int(response.headers["content-length"])
    assert len(gzip.decompress(raw)) == 3 * MiB + 12_345  # gzip checks the CRC-32 and size trailer


def test_range_requests_are_ignored_on_the_huge_wheel(hostile_index: HostileIndex) -> None:
    url = hostile_index.file_url("range-ignored", "range_ignored-1.0-py3-none-any.whl")
    head = httpx.head(url, timeout=TIMEOUT)
    assert head.headers["accept-ranges"] == "bytes" and int(head.headers["content-length"]) > 600 * MiB
    response, body = _prefix(url, MiB, headers={"Range": "bytes=-65536"})
    assert response.status_code == 200 and "content-range" not in response.headers
    assert int(response.headers["content-length"]) == int(head.headers["content-length"])
    assert body.startswith(b"PK\x03\x04")
    # The server saw the client leave early: nothing like 600 MB went out.
    _wait_for(lambda: any(r.method == "GET" for r in hostile_index.requests_log()))
    (record,) = [r for r in hostile_index.requests_log() if r.method == "GET"]
    assert not record.completed and record.bytes_sent < 100 * MiB


def test_a_small_range_ignoring_wheel_is_valid_and_listed_with_its_hash(
    make_hostile_index: Callable[[HostileLimits], HostileIndex],
) -> None:
    index = make_hostile_index(HostileLimits(huge_wheel_bytes=3 * MiB + 1))
    page = httpx.get(index.index_url("range-ignored") + "range-ignored/", timeout=TIMEOUT).text
    assert "data-dist-info-metadata" not in page  # METADATA only from inside the wheel
    (href,) = _links(page)
    body = httpx.get(index.url + href.split("#")[0], headers={"Range": "bytes=0-99"}, timeout=TIMEOUT).content
    assert href.endswith("#sha256=" + hashlib.sha256(body).hexdigest())
    with zipfile.ZipFile(io.BytesIO(body)) as wheel:
        assert wheel.testzip() is None
        assert wheel.getinfo("range_ignored/_payload.bin").file_size == 3 * MiB + 1
        assert (
            "Name: range-ignored\nVersion: 1.0" in wheel.read("range_ignored-1.0.dist-info/METADATA").decode()
        )


def test_the_drip_feed_sends_one_byte_a_second(hostile_index: HostileIndex) -> None:
    arrivals: list[float] = []
    url = hostile_index.index_url("drip-feed") + "drip-feed/"
    with httpx.Client(timeout=TIMEOUT) as client, client.stream("GET", url) as response:
        assert int(response.headers["content-length"]) > 300
        for chunk in response.iter_raw():
            arrivals += [time.monotonic()] * len(chunk)
            if len(arrivals) >= 3:
                break
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(gaps) >= 2 and all(gap > 0.7 for gap in gaps[:2]), gaps


def test_many_files_on_one_page(
    hostile_index: HostileIndex, make_hostile_index: Callable[[HostileLimits], HostileIndex]
) -> None:
    response, body = _prefix(hostile_index.index_url("many-files") + "many-files/", 256 * 1024)
    assert response.headers["transfer-encoding"] == "chunked"
    assert "many_files-0.0-py3-none-any.whl" in body.decode()
    small = make_hostile_index(HostileLimits(page_files=2_500))
    page = httpx.get(small.index_url("many-files") + "many-files/", timeout=TIMEOUT).text
    links = _links(page)
    assert len(links) == 2_500 and page.rstrip().endswith("</html>")
    last = small.url + links[-1].split("#")[0] + ".metadata"
    metadata = httpx.get(last, timeout=TIMEOUT).content
    assert b"Version: 0.2499\n" in metadata
    assert f'sha256={hashlib.sha256(metadata).hexdigest()}">many_files-0.2499' in page


def test_an_sdist_with_many_members(
    hostile_index: HostileIndex, make_hostile_index: Callable[[HostileLimits], HostileIndex]
) -> None:
    page = httpx.get(hostile_index.index_url("many-members") + "many-members/", timeout=TIMEOUT).text
    sdist, honest = sorted(_links(page), key=lambda link: ".tar.gz" not in link)
    assert sdist.endswith("/many_members-1.0.tar.gz") and "#sha256=" in honest
    _, raw = _prefix(hostile_index.url + sdist, 64 * 1024)
    start = zlib.decompressobj(wbits=31).decompress(raw, 4096)
    assert start[:19] == b"many_members-1.0/m/" and start[257:262] == b"ustar"
    small = make_hostile_index(HostileLimits(sdist_members=3_000))
    content = httpx.get(small.url + sdist, timeout=TIMEOUT).content
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as archive:
        members = archive.getmembers()
        assert len(members) == 3_002 and len({m.name for m in members}) == 3_002
        assert [m.name for m in members[-2:]] == [
            "many_members-1.0/PKG-INFO",
            "many_members-1.0/pyproject.toml",
        ]
        pkg_info = archive.extractfile(members[-2])
        assert pkg_info is not None and b"Name: many-members\nVersion: 1.0" in pkg_info.read()


def test_two_hundred_big_pages(hostile_index: HostileIndex) -> None:
    root = httpx.get(hostile_index.index_url("big-pages"), timeout=TIMEOUT).text
    assert len(_links(root)) == 200
    page = httpx.get(hostile_index.index_url("big-pages") + "big-page-199/", timeout=TIMEOUT)
    assert 1.2 * MiB < len(page.content) < 2 * MiB and len(_links(page.text)) == 4_000
    metadata = httpx.get(
        hostile_index.file_url("big-pages", "big_page_199-1.0.3999-py3-none-any.whl.metadata"),
        timeout=TIMEOUT,
    )
    assert f"sha256={hashlib.sha256(metadata.content).hexdigest()}" in page.text


def test_stopping_ends_every_stream(make_hostile_index: Callable[[HostileLimits], HostileIndex]) -> None:
    index = make_hostile_index(HostileLimits())
    got_some = threading.Event()
    ended: list[str] = []

    def read_forever() -> None:
        try:
            with (
                httpx.Client(timeout=TIMEOUT) as client,
                client.stream("GET", index.index_url("endless-page") + "endless/") as response,
            ):
                for _ in response.iter_raw():
                    got_some.set()
            ended.append("eof")
        except httpx.HTTPError as error:
            ended.append(type(error).__name__)

    reader = threading.Thread(target=read_forever, daemon=True)
    reader.start()
    assert got_some.wait(10)
    index.stop()
    reader.join(10)
    assert ended, "the endless stream outlived the server"


def test_runs_as_a_subprocess() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "fixtures.hostile", "--port", "0", "--activate", "drip-feed"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert [
            item["name"] for item in httpx.get(url + "/_control/scenarios", timeout=TIMEOUT).json()
        ] == list(SCENARIOS)
        assert httpx.head(url + "/simple/drip-feed/", timeout=TIMEOUT).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
