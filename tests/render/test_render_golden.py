"""Golden files: every renderer, every sample lock, byte for byte.

After an intended format change: `LOCKD_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/render -q`,
then review `git diff tests/golden`.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lockd.lock import Lock
from lockd.render import render

SUFFIX = {
    "requirements.txt": "requirements.txt",
    "pylock.toml": "pylock.toml",
    "conda-lock.yml": "conda-lock.yml",
}


@pytest.mark.parametrize("fmt", sorted(SUFFIX))
def test_rendered_file_matches_its_golden_file(
    sample_lock: tuple[str, Lock], fmt: str, golden: Callable[[str, str], None]
) -> None:
    name, lock = sample_lock
    golden(f"{name}.{SUFFIX[fmt]}", render(lock, fmt).decode("utf-8"))
