"""The `python -c` code a lockd child process runs: a module's `main`, imported as this process imports it.

The child is started with this process's interpreter, environment and working directory, so it
imports lockd as this process did; the directory this lockd is in is its last resort, after the
standard library (an installed lockd is found first, a checkout run by path still is).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["child_code"]

_ROOT = str(Path(__file__).resolve().parents[2])


def child_code(module: str) -> str:
    """Code for `python -c` that runs `module.main()` and exits with what it returns."""
    return f"import sys; sys.path.append({_ROOT!r}); from {module} import main; sys.exit(main())"
