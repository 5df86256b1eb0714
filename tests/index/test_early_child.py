"""`lockd lock`'s page child spawned before the settings load: adopted when it matches, ended otherwise.

Real processes throughout (the page child itself), and a fixture index for a whole run through
`lockd.cli.main` in this process.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.served_index import WatchedIndex
from lockd.cli import main
from lockd.index import early_child
from lockd.index.page_worker import PageWorker
from tests.support import wait_until


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every process `early_child` and the page worker start in this test, in order."""
    started: list[subprocess.Popen[bytes]] = []
    real = early_child.popen

    def recording(argv: list[str]) -> subprocess.Popen[bytes]:
        process = real(argv)
        started.append(process)
        return process

    monkeypatch.setattr(early_child, "popen", recording)
    monkeypatch.setattr("lockd.index.page_worker.popen", recording)
    yield started
    early_child.discard()
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_page_worker_adopts_the_early_child(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    early_child.spawn(early_child.page_child_argv(fetches=False))
    worker = PageWorker(from_bytes=0, max_form_bytes=1 << 20)
    try:
        worker.start_soon()
        wait_until(lambda: worker.started, 60, "the worker never started its child")
        assert len(spawned) == 1  # the early one, not a second
        assert early_child.take(early_child.page_child_argv(fetches=False)) is None  # taken once
    finally:
        worker.close()
    assert spawned[0].wait(timeout=30) is not None  # the worker's close ended it: the worker owned it


def test_an_early_child_for_other_arguments_is_ended_not_adopted(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    early_child.spawn(early_child.page_child_argv(fetches=False))
    assert early_child.take(early_child.page_child_argv(fetches=True)) is None
    assert spawned[0].wait(timeout=30) == 0  # its stdin closed: it ended by itself


def test_an_early_child_nobody_takes_is_ended(spawned: list[subprocess.Popen[bytes]]) -> None:
    early_child.spawn(early_child.page_child_argv(fetches=False))
    early_child.discard()
    assert spawned[0].returncode == 0
    assert early_child.take(early_child.page_child_argv(fetches=False)) is None


def test_a_child_that_cannot_start_leaves_the_worker_to_start_its_own() -> None:
    early_child.spawn([str(Path("/nonexistent/python")), "-c", "pass"])  # OSError, kept quiet
    assert early_child.take([str(Path("/nonexistent/python")), "-c", "pass"]) is None


def test_lock_help_spawns_no_child(
    spawned: list[subprocess.Popen[bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["lock", "--help"])
    assert "requirements.in" in capsys.readouterr().out
    assert spawned == []


def test_a_lock_that_fails_on_its_arguments_ends_the_child_it_spawned(
    spawned: list[subprocess.Popen[bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["lock", "requirements.in", "--platform", "linux_x86_64"])  # --python is missing
    assert "--python" in capsys.readouterr().err
    assert len(spawned) == 1 and spawned[0].returncode == 0  # spawned first, then ended


def test_a_cold_lock_runs_on_the_child_spawned_first(
    spawned: list[subprocess.Popen[bytes]],
    fixture_index: WatchedIndex,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    requirements = tmp_path / "requirements.in"
    requirements.write_text("numpy\n")  # numpy's fixture page goes to the page child (16 KiB or more)
    code = main(
        [
            "lock", str(requirements), "--platform", "linux_x86_64", "--python", "3.11",
            "--index-url", fixture_index.pypi_url, "--pytorch-index-url", fixture_index.pytorch_base,
            "--cache-dir", str(tmp_path / "cache"),
        ]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "numpy==" in out
    assert len(spawned) == 1  # one page child: the early one, adopted
    assert spawned[0].wait(timeout=30) is not None  # ended with the run, by the worker that adopted it
