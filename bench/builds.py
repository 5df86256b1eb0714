"""Which lockd a measurement runs: this tree, or a `git archive` export of another revision.

Comparing two revisions in one run (`--baseline-rev`, or `--lockd-rev` given twice) measures both on
the same machine under the same load, interleaved run by run. Every lockd the comparison times runs
in a subprocess whose ``PYTHONPATH`` is its own tree; the bench itself always runs this tree's code.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ROOT", "LockdBuild", "current_build", "export_rev", "exported_build"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True, kw_only=True)
class LockdBuild:
    """One lockd to measure: ``suffix`` tells its rows apart ("" for the build under test, "@base")."""

    suffix: str
    root: Path  # the tree a subprocess imports ``lockd`` from (its PYTHONPATH and working directory)
    description: str

    def tool(self, name: str) -> str:
        return f"{name}{self.suffix}"


def _git(*argv: str) -> str:
    done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def current_build() -> LockdBuild:
    """The lockd of this tree (under `--lockd-rev`, the export the bench was re-run from)."""
    rev = os.environ.get("LOCKD_BENCH_REV")
    if rev:
        return LockdBuild(suffix="", root=ROOT, description=rev)
    try:
        head = _git("log", "-1", "--format=%h %s")
        dirty = " (plus uncommitted changes)" if _git("status", "--porcelain", "--", "lockd") else ""
    except (OSError, subprocess.CalledProcessError):
        head, dirty = "unknown commit", ""
    return LockdBuild(suffix="", root=ROOT, description=f"the working tree at {head}{dirty}")


def export_rev(rev: str, into: Path | None = None) -> tuple[Path, str]:
    """``git archive`` of ``rev`` unpacked into a new directory; (that directory, short sha)."""
    sha = _git("rev-parse", "--short", rev)
    export = Path(into or tempfile.mkdtemp(prefix=f"lockd-bench-{rev.replace('/', '_')}-"))
    export.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(export)], input=archive, check=True)
    # lockd imports its Alembic scripts as `lockd.migrations`; a checkout links them (see .gitignore).
    link = export / "lockd" / "migrations"
    if (export / "migrations").is_dir() and not link.exists():
        link.symlink_to(Path("..") / "migrations")
    return export, sha


def exported_build(rev: str, workroot: Path) -> LockdBuild:
    """The baseline of a comparison: ``rev`` exported under ``workroot``."""
    export, sha = export_rev(rev, workroot / f"build-{sha_safe(rev)}")
    return LockdBuild(suffix="@base", root=export, description=f"{rev} = {sha} (exported to {export})")


def sha_safe(rev: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in rev)[:40]
