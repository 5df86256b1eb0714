"""What `lockd` loads to start: module sets, never timings (`bench/cli.py` times the start-up).

`lockd --help` is the command table alone; `lockd lock --help` adds its arguments and the format
table; a `lockd lock` run asks the index for its first page without pydantic, PyYAML, drift,
the store or the web stack, and never loads them at all when the format needs none of them.
Each was once imported on that path and together they were most of its start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lockd.cli import _COMMANDS, _Command
from tests.support import ROOT

# Never imported by `lockd lock` writing requirements.txt: the settings are plain dataclasses,
# the database stack is the server's, a renderer loads when its format is rendered, and the
# index client speaks HTTP/1.1 itself (`lockd.index.http11`; httpcore and h11 cost ~25 ms, httpx
# and what it imports ~50 ms).
_NEVER_FOR_LOCK = (
    "alembic",
    "anyio",
    "h11",
    "httpcore",
    "httpx",
    "fastapi",
    "jinja2",
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
    "sqlalchemy",
    "starlette",
    "uvicorn",
    "yaml",
    "lockd.advisories",
    "lockd.drift",
    "lockd.http",
    "lockd.render.conda_lock",
    "lockd.render.cyclonedx",
    "lockd.render.pylock",
    "lockd.service",
    "lockd.store",
)
# Loaded after the first request, when something needs them: the TOML parser when an operator's
# file is read or the shipped accelerator table first asked for (`lockd lock` without --cuda asks
# the index first), the HTML page parser with the first HTML page (PyPI answers JSON).
_AFTER_FIRST_REQUEST = ("tomllib", "html.parser", "lockd.simple.html_page")
# Not needed to show help: the index client and what it reads with.
_NOT_FOR_HELP = (
    *_NEVER_FOR_LOCK,
    "lockd.index.http11",
    "packaging",
    "resolvelib",
    "lockd.config",
    "lockd.lock",
)


def _loaded(names: list[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in packages))


def _probe(code: str, cwd: Path | None = None) -> dict[str, list[str]]:
    """Runs `code` in a fresh interpreter; it prints a JSON object of module lists."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LOCKD_")}, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, list[str]] = json.loads(done.stdout.splitlines()[-1])
    return found


_HELP_PROBE = """
import contextlib, io, json, sys
import lockd.cli
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    lockd.cli.main({argv!r})
print(json.dumps({{"modules": list(sys.modules)}}))
"""


def test_help_loads_the_command_table_and_nothing_of_any_command() -> None:
    modules = _probe(_HELP_PROBE.format(argv=["--help"]))["modules"]
    assert _loaded(modules, ("lockd",)) == ["lockd", "lockd.cli", "lockd.cli.exits", "lockd.errors"]
    assert _loaded(modules, _NOT_FOR_HELP) == []


def test_lock_help_loads_its_arguments_and_the_format_names_only() -> None:
    modules = _probe(_HELP_PROBE.format(argv=["lock", "--help"]))["modules"]
    assert set(_loaded(modules, ("lockd",))) <= {
        "lockd",
        "lockd.cli",
        "lockd.cli.exits",
        "lockd.cli.lock",
        "lockd.errors",
        "lockd.render",
    }
    assert _loaded(modules, _NOT_FOR_HELP) == []


_LOCK_PROBE = """
import contextlib, io, json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import lockd.cli

at_first_request = []

class NoProjects(BaseHTTPRequestHandler):
    def do_GET(self):
        if not at_first_request:
            at_first_request.append(list(sys.modules.items()))  # one C call: no import interleaves
        self.send_error(404)

    def log_message(self, format, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), NoProjects)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
with contextlib.redirect_stderr(io.StringIO()):
    code = lockd.cli.main(["lock", "requirements.in", "--platform", "linux_x86_64", "--python", "3.11",
                           "--index-url", url, "--cache-dir", "cache"])
server.shutdown()
def loaded(items):  # a None entry is an import refused on purpose (lockd.cli's httpx._main stub)
    return [name for name, module in items if module is not None]

end = loaded(list(sys.modules.items()))
print(json.dumps({"code": [str(code)], "first": loaded(at_first_request[0]) if at_first_request else [],
                  "asked": [str(bool(at_first_request))], "end": end}))
"""


def test_a_lock_run_asks_the_index_without_pydantic_yaml_drift_or_the_store(tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_text("numpy\n")
    found = _probe(_LOCK_PROBE, cwd=tmp_path)
    assert found["asked"] == ["True"]
    assert found["code"] == ["1"]  # the index knows no numpy
    assert "sqlite3" in found["end"]  # the persistent cache was used: SQLite, not SQLAlchemy
    assert _loaded(found["first"], _NEVER_FOR_LOCK) == []
    assert _loaded(found["end"], _NEVER_FOR_LOCK) == []


def test_a_lock_run_asks_the_index_before_reading_toml_or_parsing_html(tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_text("numpy\n")
    found = _probe(_LOCK_PROBE, cwd=tmp_path)
    assert found["asked"] == ["True"]
    assert _loaded(found["first"], _AFTER_FIRST_REQUEST) == []


_SETTINGS_PROBE = """
import json, sys
from lockd.config import load_settings
load_settings()
print(json.dumps({"modules": list(sys.modules)}))
"""


def test_settings_load_without_the_index_client_or_the_page_parsers() -> None:
    # `lockd migrate` and `lockd token` build settings too: importing `lockd.index.credentials`
    # runs `lockd/index/__init__.py`, which must not bring the client in with it.
    modules = _probe(_SETTINGS_PROBE)["modules"]
    assert _loaded(modules, ("lockd.index",)) == [
        "lockd.index",
        "lockd.index.credentials",
        "lockd.index.options",
        "lockd.index.urls",  # plain values over urllib.parse: no HTTP stack
    ]
    assert _loaded(modules, ("httpcore", "httpx", "h11")) == []
    assert _loaded(modules, ("lockd.simple", "tomllib")) == []


@pytest.mark.parametrize("command", _COMMANDS, ids=[command.name for command in _COMMANDS])
def test_every_command_in_the_table_names_code_that_exists(command: _Command) -> None:
    add_arguments, run = command.load()
    assert callable(add_arguments)
    assert callable(run)


_CLIENT_PROBE = """
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from lockd.errors import UnknownProject
from lockd.index import ClientOptions, IndexClient

at_request = []

class NoProjects(BaseHTTPRequestHandler):
    def do_GET(self):
        at_request.append(list(sys.modules))
        self.send_error(404)

    def log_message(self, format, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), NoProjects)
threading.Thread(target=server.serve_forever, daemon=True).start()
with IndexClient.from_options(ClientOptions()) as client:
    client.workers.wait_started()  # its warm-up table is built on a pool thread meanwhile
    try:
        client.project_page(f"http://127.0.0.1:{server.server_address[1]}/simple/", "numpy")
    except UnknownProject:
        pass
server.shutdown()
print(json.dumps({"at_request": at_request[0], "end": list(sys.modules)}))
"""

# What a page request never waits for: the page parsers (msgspec, datetime) load with the first
# page parsed, the archive readers with the first metadata read. `lockd lock` sends its first
# request sooner by their import time (~40 ms), and loads them while the page travels.
_AFTER_PAGE_REQUEST = (
    "msgspec",
    "tarfile",
    "zipfile",
    "lockd.index.metadata_reader",
    "lockd.index.remote_zip",
    "lockd.index.sdist_worker",
    "lockd.sdist_metadata",
    "lockd.sdist_sources",
    "lockd.simple.files",
    "lockd.simple.json_page",
    "lockd.simple.page_form",
)


def test_an_index_client_asks_for_a_page_before_loading_the_parsers_or_archive_readers() -> None:
    found = _probe(_CLIENT_PROBE)
    assert _loaded(found["at_request"], _AFTER_PAGE_REQUEST) == []
    assert "lockd.index.http11" in found["at_request"]
    # Nothing parsed a page or read metadata: a 404 loads neither.
    assert _loaded(found["end"], ("lockd.index.metadata_reader", "lockd.simple.json_page")) == []
