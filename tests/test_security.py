"""Abuse: dependency confusion, SSRF, token scopes on every route, tokens at rest and in logs,
private-index credentials in locks, digests, rows and logs,
HTML in user-controlled fields on the dashboard, and sdist build code that must never run.

The dashboard's own escaping tests (finding messages, file names) are in test_dashboard.py;
here the HTML comes from the one field a requester fully controls: a marker's string literal.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute
from starlette.routing import Route

from fixtures.served_index import ControlledIndex, WatchedIndex
from lockd.config import load_settings
from lockd.http.app import create_app
from lockd.http.deps import SCOPE_CHECK
from lockd.index import IndexClient
from lockd.intake import build_request
from lockd.render import render
from lockd.resolver import timed_resolve
from lockd.store import open_engine
from lockd.store.schema import metadata
from lockd.store.schema import tokens as tokens_table
from tests.support import (
    LockdServer,
    QuietHandler,
    StartLockd,
    assert_problem,
    fresh_database,
    loopback_http,
    row_counts,
    server_env,
    wait_until,
)

LINUX = {"platform": "linux_x86_64", "python": "3.11"}
SDIST_MARKER = Path("/tmp/lockd-sdist-build-ran")
# Routes anyone may call: liveness, readiness, Prometheus and the API description.
PUBLIC = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/docs.js", "/docs/docs.css"}
# The dashboard's sign-in and sign-out: they exchange a token for a session cookie, or drop it.
PUBLIC |= {"/dashboard/sign-in", "/dashboard/sign-out"}


# -- dependency confusion -----------------------------------------------------------------


def test_dependency_confusion_higher_versions_on_the_wrong_index_are_never_taken(
    start_lockd: StartLockd, database_url: str, mutable_index: ControlledIndex
) -> None:
    # The attack: a torch far above the real one on the default index, and a numpy far above
    # PyPI's on the PyTorch index (as torchtriton in Dec 2022). A resolver that merges indexes
    # or falls back would pick them.
    mutable_index.publish("torch", "9.9.9", wheel_tags=("py3-none-any",))
    mutable_index.publish("numpy", "99.0.0", index="cu124", wheel_tags=("py3-none-any",))
    mutable_index.publish("torchvision", "9.9.9", wheel_tags=("py3-none-any",))
    server = start_lockd(database_url, index=mutable_index)
    with server.client("lock") as client:
        response = client.post(
            "/lock",
            params={**LINUX, "cuda": "cu124", "format": "json"},
            content="torch\ntorchvision\nnumpy\n",
            headers={"content-type": "text/plain"},
        )
    assert response.status_code == 201, response.text
    lock = response.json()
    packages = {p["name"]: p for p in lock["packages"]}
    pytorch = mutable_index.variant_url("cu124")
    assert packages["torch"]["version"] == "2.5.1+cu124"
    assert packages["torchvision"]["version"].endswith("+cu124")
    assert packages["numpy"]["version"] != "99.0.0"
    for name, package in packages.items():
        family = name in {"torch", "torchvision", "torchaudio", "triton"}
        expected = pytorch if family else mutable_index.pypi_url
        assert package["index"] == expected, (name, package["index"])
        for file in package["files"]:
            assert file["url"].startswith(
                mutable_index.pytorch_base if family else mutable_index.url + "/files/pypi/"
            ), file
            assert "9.9.9" not in file["filename"] and "99.0.0" not in file["filename"]
    # The bait was never even downloaded.
    fetched = " ".join(r.path for r in mutable_index.requests_log())
    assert "torch-9.9.9" not in fetched and "numpy-99.0.0" not in fetched


def test_without_a_variant_torch_comes_from_the_default_index_only(
    start_lockd: StartLockd, database_url: str, mutable_index: ControlledIndex
) -> None:
    # No CUDA variant: there is no accelerator index, so nothing may come from /whl/ at all.
    server = start_lockd(database_url, index=mutable_index)
    with server.client("lock") as client:
        response = client.post(
            "/lock",
            params={**LINUX, "format": "json"},
            content="numpy\n",
            headers={"content-type": "text/plain"},
        )
    assert response.status_code == 201, response.text
    assert all(p["index"] == mutable_index.pypi_url for p in response.json()["packages"])
    assert not [r.path for r in mutable_index.requests_log() if r.path.startswith("/whl/")]


# -- SSRF -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Listener:
    """A loopback HTTP server that records the path of every request it receives."""

    url: str
    seen: list[str]


@pytest.fixture
def listener() -> Iterator[_Listener]:
    seen: list[str] = []

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        do_HEAD = do_GET  # noqa: N815 (http.server's naming)
        do_POST = do_GET  # noqa: N815

    with loopback_http(Handler) as host:
        yield _Listener(f"http://{host}", seen)


def test_no_url_from_a_request_is_ever_fetched(
    start_lockd: StartLockd, database_url: str, mutable_index: ControlledIndex, listener: _Listener
) -> None:
    server = start_lockd(database_url, index=mutable_index)
    bait = listener.url
    lines = [
        f"{bait}/x-1.0-py3-none-any.whl",
        f"x @ {bait}/x-1.0.tar.gz",
        f"x@{bait}/x.zip",
        f"git+{bait}/x.git#egg=x",
        f"--index-url {bait}/simple/",
        f"-i {bait}/simple/",
        f"--extra-index-url={bait}/simple/",
        f"-f {bait}/links/",
        f"-r {bait}/other.in",
        f"-c {bait}/constraints.txt",
        f"-e git+{bait}/x.git#egg=x",
        f"x @ file://{bait}/x",
    ]
    mutable_index.reset_counters()
    with server.client("lock") as client:
        for line in lines:
            response = client.post(
                "/lock", params=LINUX, content=f"numpy\n{line}\n", headers={"content-type": "text/plain"}
            )
            assert_problem(response, 422, "unsupported-requirement")
            response = client.post("/v1/locks", json={"requirements": ["numpy", line], "target": LINUX})
            assert_problem(response, 422, "unsupported-requirement")
            response = client.post(
                "/v1/locks", json={"requirements": "numpy", "constraints": line, "target": LINUX}
            )
            assert_problem(response, 422, "unsupported-requirement")
        # URLs in JSON fields and query parameters that are not requirements at all.
        for payload in (
            {"requirements": "numpy", "target": LINUX, "index_url": f"{bait}/simple/"},
            {"requirements": "numpy", "target": {**LINUX, "index": f"{bait}/simple/"}},
            {"requirements": "numpy", "target": {**LINUX, "platform": f"{bait}/"}},
            {"requirements": "numpy", "target": {**LINUX, "cuda": f"{bait}/whl"}},
            {"requirements": "numpy", "target": LINUX, "options": {"index_url": f"{bait}/"}},
        ):
            response = client.post("/v1/locks", json=payload)
            assert response.status_code == 422 and response.headers["content-type"].startswith(
                "application/problem+json"
            )
        for params in ({**LINUX, "index_url": f"{bait}/simple/"}, {**LINUX, "cuda": f"{bait}/whl/"}):
            response = client.post(
                "/lock", params=params, content="lockd-fx-plain\n", headers={"content-type": "text/plain"}
            )
            # An unknown query parameter is ignored; the lock still comes from the configured index.
            if response.status_code == 201:
                assert bait not in response.text and mutable_index.pypi_url in response.text
            else:
                assert response.headers["content-type"].startswith("application/problem+json")
        response = client.post(
            "/lock",
            params=LINUX,
            content="lockd-fx-plain\n",
            headers={
                "content-type": "text/plain",
                "Host": bait.removeprefix("http://"),
                "X-Forwarded-Host": "evil.invalid",
            },
        )
        assert response.status_code in (200, 201)
    time.sleep(0.3)
    assert listener.seen == [], f"lockd fetched a URL taken from a request: {listener.seen}"
    assert all(bait not in r.path for r in mutable_index.requests_log())
    assert row_counts(server.database_url)["inputs"] == 1  # only the one legitimate lock


# -- tokens ---------------------------------------------------------------------------------


def _routes() -> list[tuple[str, str, str | None]]:
    """(method, path, required scope) for every route of the app, found by walking its routers."""
    app = create_app(load_settings(database_url="sqlite://"))
    found: list[tuple[str, str, str | None]] = []

    def walk(routes: Iterable[object]) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                scopes = [
                    getattr(dependency.call, SCOPE_CHECK)  # the `scope` of `requires(scope)`
                    for dependency in route.dependant.dependencies
                    if getattr(dependency.call, SCOPE_CHECK, None) is not None
                ]
                for method in sorted(route.methods or ()):
                    found.append((method, route.path, scopes[0] if scopes else None))
            elif isinstance(route, Route):
                for method in sorted(route.methods or ()):
                    if method != "HEAD":
                        found.append((method, route.path, None))
            else:
                inner = getattr(route, "routes", None) or getattr(
                    getattr(route, "router", None), "routes", None
                )
                if inner is None:
                    inner = getattr(getattr(route, "original_router", None), "routes", None)
                walk(inner or ())

    try:
        walk(app.routes)
    finally:
        app.state.service.close()
    return found


ROUTES = _routes()
_RANK = {"read": 0, "lock": 1, "admin": 2}


def _concrete(path: str) -> str:
    values = {
        "input_digest": "0" * 64,
        "lock_digest": "0" * 64,
        "file": "requirements.txt",
        "n": "1",
        "run_id": "1",
        "package": "requests",
    }
    values["token_id"] = str(2**31 - 1)  # no such token: revoking a real one would lock later tests out
    values["name"] = "nobody/here"  # no such name: archiving or deleting a real one would change later tests
    path = re.sub(r"\{(\w+):\w+\}", r"{\1}", path)  # `{file:lockfile}` → `{file}`
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"a path parameter this test does not know: {path}"
    return path


def test_every_route_is_public_by_intent_or_guarded_by_a_scope() -> None:
    assert len(ROUTES) >= 15
    for method, path, scope in ROUTES:
        if path in PUBLIC:
            assert scope is None
        else:
            assert scope in _RANK, f"{method} {path} has no token scope"


@pytest.fixture(scope="module")
def closed_server(
    request: pytest.FixtureRequest, fixture_index: WatchedIndex, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LockdServer]:
    """A server that lets nobody read anonymously (SQLite; scopes do not depend on the backend)."""
    tmp = tmp_path_factory.mktemp("lockd-closed")
    url = fresh_database("sqlite", request, tmp)
    server = LockdServer(server_env(url, fixture_index, LOCKD_ANONYMOUS_READ="false"), tmp / "server.log")
    server.create_tokens()
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize(("method", "path", "scope"), [r for r in ROUTES if r[2] is not None], ids=str)
def test_scopes_are_enforced_on_every_route(
    closed_server: LockdServer, method: str, path: str, scope: str
) -> None:
    url = closed_server.url + _concrete(path)
    params = LINUX if path == "/lock" else None
    content = b"{}" if method == "POST" else None
    json_body: dict[str, str] = {"content-type": "application/json"} if method == "POST" else {}
    for header in (None, "Bearer lockd_" + "x" * 43, "Bearer", "Basic YTpi", "bearer lockd_", "Token abc"):
        headers = dict(json_body)
        if header is not None:
            headers["Authorization"] = header
        # With an unknown parameter too: who may not use the route learns nothing of its parameters.
        for query in (params, {**(params or {}), "cdua": "cu124"}):
            response = httpx.request(method, url, params=query, content=content, headers=headers)
            problem = assert_problem(response, 401, "unauthorized")
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert "x" * 43 not in json.dumps(problem)
            assert "accepted" not in problem.get("context", {})
    for granted, rank in _RANK.items():
        headers = {**json_body, "Authorization": f"Bearer {closed_server.tokens[granted]}"}
        response = httpx.request(method, url, params=params, content=content, headers=headers, timeout=30)
        misspelt = httpx.request(
            method,
            url,
            params={**(params or {}), "cdua": "cu124"},
            content=content,
            headers=headers,
            timeout=30,
        )
        if rank < _RANK[scope]:
            for answer in (response, misspelt):
                problem = assert_problem(answer, 403, "forbidden")
                assert problem["context"]["required"] == scope
                assert "accepted" not in problem["context"]
        else:
            assert response.status_code not in (401, 403), (granted, response.text)
            problem = assert_problem(misspelt, 422, "invalid-request")
            assert problem["context"]["field"] == "cdua"


def test_tokens_are_hashed_at_rest_and_never_logged(closed_server: LockdServer) -> None:
    engine = open_engine(closed_server.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(tokens_table)).mappings().all()
    finally:
        engine.dispose()
    assert len(rows) >= 3
    stored = json.dumps([dict(r) for r in rows], default=str)
    for token in closed_server.tokens.values():
        assert token not in stored
        assert token.removeprefix("lockd_") not in stored
        assert hashlib.sha256(token.encode()).hexdigest() in {r["token_hash"] for r in rows}
    wrong = "lockd_wrongwrongwrongwrongwrongwrongwrongwrong"

    def logged(route: str) -> int:
        return closed_server.log().count(f'"route": "{route}"')

    before = {route: logged(route) for route in ("/v1/locks", "/lock")}
    for token in [*closed_server.tokens.values(), wrong]:
        httpx.get(closed_server.url + "/v1/locks", headers={"Authorization": f"Bearer {token}"})
        httpx.post(
            closed_server.url + "/lock",
            params=LINUX,
            content=b"\xff",
            headers={"Authorization": f"Bearer {token}"},
        )
    sent = len(closed_server.tokens) + 1
    # A request is logged after its response has gone out.
    wait_until(
        lambda: all(logged(route) >= count + sent for route, count in before.items()),
        10,
        "requests never logged",
    )
    log = closed_server.log()
    assert '"route": "/v1/locks"' in log  # the log is there, and it is the access log we think
    for token in [*closed_server.tokens.values(), wrong]:
        assert token not in log
        assert token[6:20] not in log


def test_index_and_webhook_credentials_stay_out_of_locks_rows_problems_and_logs(
    start_lockd: StartLockd, database_url: str, mutable_index: ControlledIndex
) -> None:
    # A private mirror is configured with its credentials in the URL and answers 401 without them
    # (its PyTorch side wants other ones), and a Slack-style webhook carries its secret in the path.
    # The credentials are sent to the mirror, and nowhere else: not into the lock files (served
    # anonymously), the input digest, the stored rows, error messages, httpx's URL logs or the
    # webhook's failure log.
    host = mutable_index.url.removeprefix("http://")
    mutable_index.require_auth("mirror-user", "index-secret")
    mutable_index.require_auth("mirror-user", "torch-secret", path_prefix="/whl/")
    webhook = f"http://127.0.0.1:{_closed_port()}/services/T0/B0/webhook-secret"
    server = start_lockd(
        database_url,
        index=mutable_index,
        LOCKD_INDEX_URL=f"http://mirror-user:index-secret@{host}/simple/",
        LOCKD_PYTORCH_INDEX_URL=f"http://mirror-user:torch-secret@{host}/whl",
        LOCKD_WEBHOOK_URL=webhook,
    )
    secrets = ("index-secret", "torch-secret", "webhook-secret", "mirror-user", f"@{host}")

    def leaked(text: str) -> list[str]:
        return [s for s in secrets if s in text]

    with server.client("lock") as client:
        unknown = client.post(
            "/lock",
            params=LINUX,
            content="lockd-fx-no-such-project\n",
            headers={"content-type": "text/plain"},
        )
        problem = assert_problem(unknown, 422, "unknown-project")
        assert problem["context"]["index"] == f"http://{host}/simple/"
        torch = client.post(
            "/lock",
            params={**LINUX, "cuda": "cu124"},
            content="torch==99\n",
            headers={"content-type": "text/plain"},
        )
        assert_problem(torch, 422, "no-matching-distribution")
        locked = client.post(
            "/lock", params=LINUX, content="lockd-fx-plain==1.1\n", headers={"content-type": "text/plain"}
        )
        assert locked.status_code == 201, locked.text
        # triton from the PyTorch side (root-relative links), filelock from the default index.
        cuda = client.post(
            "/lock",
            params={**LINUX, "cuda": "cu124"},
            content="triton==3.1.0\n",
            headers={"content-type": "text/plain"},
        )
        assert cuda.status_code == 201, cuda.text
    for response in (unknown, torch):
        assert not leaked(response.text), response.text
    digest = cuda.headers["input-digest"]
    served = {name: httpx.get(f"{server.url}/v1/locks/{digest}/{name}").content for name in _FILES}
    for name, content in served.items():
        assert not leaked(content.decode()), (name, content.decode()[:2000])
    assert f"--index-url http://{host}/simple/\n" in served["requirements.txt"].decode()
    assert f"--extra-index-url http://{host}/whl/cu124/\n" in served["requirements.txt"].decode()
    assert f'url = "http://{host}/whl/cu124/triton-3.1.0-' in served["pylock.toml"].decode()
    # The mirror saw the credentials on every request lockd made: pages, metadata, files.
    users = {(r.kind, r.user) for r in mutable_index.requests_log() if r.kind != "control"}
    assert users == {(kind, "mirror-user") for kind, _ in users}, users
    # A password is not part of the input: the digest is the one without (or with other) credentials.
    for password in ("", "mirror-user:rotated@", "token@"):
        settings = load_settings(
            database_url="sqlite://",
            index_url=f"http://{password}{host}/simple/",
            pytorch_index_url=f"http://{password}{host}/whl",
        )
        request = build_request(
            requirements="triton==3.1.0\n", target={**LINUX, "cuda": "cu124"}, index_plan=settings.index_plan
        )
        assert request.digest == digest, password

    for artifact in mutable_index.files("lockd-fx-plain"):
        if "-1.1" in artifact.filename:
            mutable_index.delete(artifact.filename)
    with server.client("admin") as admin:
        run = admin.post("/v1/drift/runs", params={"wait": "true"}, timeout=60)
        assert run.status_code == 200, run.text
        assert run.json()["run"]["counts"]["missing"] == 1  # an alert: the webhook is called, and fails
        assert run.json()["run"]["counts"]["unresolvable"] == 0  # drift read the mirror with its credentials
    rows = _all_rows(server.database_url)
    assert digest in rows and "missing" in rows
    assert not leaked(rows), [line for line in rows.splitlines() if leaked(line)][:3]

    # The mirror rotates its passwords: the same input locks to the same bytes under the new ones...
    mutable_index.require_auth("mirror-user", "index-rotated")
    mutable_index.require_auth("mirror-user", "torch-rotated", path_prefix="/whl/")
    rotated = load_settings(
        database_url="sqlite://",
        index_url=f"http://mirror-user:index-rotated@{host}/simple/",
        pytorch_index_url=f"http://mirror-user:torch-rotated@{host}/whl",
    )
    request = build_request(
        requirements="triton==3.1.0\n", target={**LINUX, "cuda": "cu124"}, index_plan=rotated.index_plan
    )
    with IndexClient.from_options(rotated.client_options()) as index:  # as `lockd lock` does
        lock, _stats = timed_resolve(request, index, rotated.resolve_timeout)
    assert {name: render(lock, fmt) for name, fmt in _FILES.items()} == served
    # ...while the server, still on the old ones, gets a clear problem naming the index, not the secret.
    with server.client("lock") as client:
        refused = client.post("/lock", params=LINUX, content="idna\n", headers={"content-type": "text/plain"})
    problem = assert_problem(refused, 502, "index-unavailable")
    assert f"http://{host}/simple/idna/" in problem["detail"] and "401" in problem["detail"]
    assert "credentials" in problem["detail"] and not leaked(refused.text), refused.text

    wait_until(lambda: "drift webhook http://127.0.0.1:" in server.log(), 10, lambda: server.log()[-3000:])
    log = server.log()
    assert "drift webhook http://127.0.0.1:" in log  # the failure is logged, by its origin only
    assert '"logger": "lockd.http"' in log
    assert not leaked(log), [line for line in log.splitlines() if leaked(line)][:3]


_FILES = {
    "requirements.txt": "requirements.txt",
    "pylock.toml": "pylock.toml",
    "conda-lock.yml": "conda-lock.yml",
    "lock.json": "json",
}


def _all_rows(database_url: str) -> str:
    """Every row of every table, as one text to search."""
    engine = open_engine(database_url)
    try:
        with engine.connect() as conn:
            tables = {
                table.name: [dict(r) for r in conn.execute(sa.select(table)).mappings()]
                for table in metadata.sorted_tables
            }
    finally:
        engine.dispose()

    def text(value: object) -> str:
        return (
            bytes(value).decode("utf-8", "replace") if isinstance(value, bytes | memoryview) else str(value)
        )

    return json.dumps(tables, default=text)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- dashboard ------------------------------------------------------------------------------


def test_html_in_a_requirement_renders_as_text_on_the_dashboard(
    start_lockd: StartLockd, database_url: str
) -> None:
    server = start_lockd(database_url)
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    line = f'lockd-fx-plain; platform_release != "{evil}"'
    with server.client("lock") as client:
        created = client.post(
            "/lock", params=LINUX, content=line + "\n", headers={"content-type": "text/plain"}
        )
        assert created.status_code == 201, created.text
        digest = created.headers["input-digest"]
    with server.client("admin") as admin:
        run = admin.post("/v1/drift/runs", params={"wait": "true"})
        assert run.status_code == 200, run.text
        assert run.json()["run"]["status"] == "complete"
        pages = [admin.get("/dashboard"), admin.get(f"/dashboard/locks/{digest}")]
    for page in pages:
        assert page.status_code == 200, page.text[:500]
        assert page.headers["content-type"].startswith("text/html")
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[1].text


# -- sdist builds ---------------------------------------------------------------------------


def test_the_sdist_canary_writes_its_marker_when_built(fixture_index: WatchedIndex, tmp_path: Path) -> None:
    # The control for the test below: the served sdist's setup.py and its in-tree backend really
    # write SDIST_MARKER when a build frontend runs them (here redirected to a private path, so a
    # concurrent run of the test below is not disturbed). Without it, that test could pass with a
    # canary that never sings.
    (sdist,) = [a for a in fixture_index.files("lockd-fx-sdist-dynamic") if a.filename.endswith(".tar.gz")]
    with tarfile.open(fileobj=io.BytesIO(fixture_index.content(sdist.filename)), mode="r:gz") as archive:
        archive.extractall(tmp_path, filter="data")
    (root,) = tmp_path.iterdir()
    for script, command in (
        ("setup.py", ["setup.py", "--name"]),
        ("fx_backend.py", ["-c", "import fx_backend"]),
    ):
        source = (root / script).read_text()
        assert repr(str(SDIST_MARKER)) in source, script
        private = tmp_path / f"marker-{script}"
        (root / script).write_text(source.replace(repr(str(SDIST_MARKER)), repr(str(private))))
        subprocess.run([sys.executable, *command], cwd=root, capture_output=True, timeout=60, check=False)
        assert private.exists(), f"running {script} did not write the marker"


def test_no_sdist_build_code_ever_runs(lockd_server: LockdServer) -> None:
    SDIST_MARKER.unlink(missing_ok=True)
    before = row_counts(lockd_server.database_url)
    with lockd_server.client("lock") as client:
        for body, params in (
            ("lockd-fx-sdist-dynamic\n", LINUX),
            ("lockd-fx-sdist-dynamic==1.0\nlockd-fx-plain\n", LINUX),
            ("lockd-fx-sdist-dynamic\n", {"platform": "macos_arm64", "python": "3.12"}),
        ):
            response = client.post(
                "/lock", params=params, content=body, headers={"content-type": "text/plain"}
            )
            problem = assert_problem(response, 422, "sdist-needs-build")
            assert "lockd-fx-sdist-dynamic" in problem["detail"]
        response = client.post("/v1/locks", json={"requirements": "lockd-fx-sdist-dynamic", "target": LINUX})
        assert_problem(response, 422, "sdist-needs-build")
    time.sleep(0.5)
    assert not SDIST_MARKER.exists(), "lockd ran the sdist's build code"
    after = row_counts(lockd_server.database_url)
    assert after["inputs"] == before["inputs"] and after["locks"] == before["locks"]
