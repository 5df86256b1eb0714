"""`lockd lock` reads the -r and -c files a requirements.in names; the server keeps refusing them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lockd.errors import UnsupportedRequirement
from lockd.inputs import parse_requirements
from lockd.local_includes import inline_includes
from tests.support import ROOT


def _files(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "requirements.in"


def test_includes_are_read_relative_to_the_file_that_names_them(tmp_path: Path) -> None:
    top = _files(
        tmp_path,
        {
            "requirements.in": "lockd-fx-extras\n-r more/base.txt\n-c constraints.txt\nlockd-fx-pre\n",
            "more/base.txt": "lockd-fx-plain>=1.0\n--constraint=../pins.txt\n",
            "constraints.txt": "lockd-fx-plain==1.0\n-r nested.txt\n",
            "nested.txt": "lockd-fx-speedups<1\n",
            "pins.txt": "lockd-fx-pre<2\n",
        },
    )
    inlined = inline_includes(top)
    requirements = parse_requirements(inlined.text(constraints=False))
    constraints = parse_requirements(inlined.text(constraints=True), source="constraints.txt")
    # The top file keeps its line numbers: errors still point at the line the user wrote.
    assert [(r.canonical, r.line) for r in requirements][:2] == [("lockd-fx-extras", 1), ("lockd-fx-pre", 4)]
    assert {r.canonical for r in requirements} == {"lockd-fx-extras", "lockd-fx-pre", "lockd-fx-plain>=1.0"}
    assert {c.canonical for c in constraints} == {
        "lockd-fx-plain==1.0",
        "lockd-fx-speedups<1",
        "lockd-fx-pre<2",
    }


def test_a_cycle_and_a_url_are_refused(tmp_path: Path) -> None:
    top = _files(tmp_path, {"requirements.in": "-r a.txt\n", "a.txt": "-r requirements.in\n"})
    with pytest.raises(UnsupportedRequirement, match="includes itself"):
        inline_includes(top)
    url = _files(tmp_path, {"requirements.in": "-c https://example.com/constraints.txt\n"})
    with pytest.raises(UnsupportedRequirement, match="local files only"):
        inline_includes(url)


def test_the_server_refusal_says_how_to_send_constraints() -> None:
    with pytest.raises(UnsupportedRequirement) as raised:
        parse_requirements("lockd-fx-plain\n-c constraints.txt\n")
    assert raised.value.message == (
        "requirements.in line 2: lockd does not accept constraint files (-c): send constraints as their own field"
    )
    assert raised.value.hint is not None and "`constraints` in POST /v1/locks" in raised.value.hint


def test_the_cli_locks_with_inlined_includes(fixture_index: Any, tmp_path: Path) -> None:
    _files(
        tmp_path,
        {
            "requirements.in": "lockd-fx-extras\n-c constraints.txt\n",
            "constraints.txt": "lockd-fx-plain==1.0\n",
        },
    )
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LOCKD_")}, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "lockd", "lock", "requirements.in", "--platform", "linux_x86_64"]
    command += ["--python", "3.11", "--index-url", fixture_index.pypi_url, "--only-binary"]
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "lockd-fx-plain==1.0 \\" in done.stdout
    assert "-c constraints.txt --only-binary" in done.stdout
