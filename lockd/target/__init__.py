"""What a target *is*: the machine a lock will be installed on.

- `platforms`: the platform table (Linux x86_64/aarch64 with a glibc or musl level, macOS
  arm64/x86_64 with a minimum version, Windows amd64/arm64) and each level's wheel tags;
- `python`: the supported CPython range (3.9–3.15) and free-threaded builds (`3.14t`);
- `aliases`: uv's `--python-platform` names and conda's subdirs, read as lockd's;
- `target`: `Target`, its marker environment (PEP 508), its best-first tags (PEP 425,
  600, 656) and the tags of newer machines, and its canonical JSON;
- `spec`: a target from loose user input, including `cuda=auto`;
- `coverage`: whether any target could install a wheel.

Nothing here reads the host: `packaging.tags.sys_tags()` and
`packaging.markers.default_environment()` are banned outside tests.
"""

from __future__ import annotations

from lockd.target.aliases import platform_named
from lockd.target.coverage import lockable_anywhere
from lockd.target.platforms import LEVEL_KINDS, PLATFORMS, Level, LevelKind, LevelRange, Platform
from lockd.target.python import (
    FREE_THREADED_MIN,
    PYTHON_MAX,
    PYTHON_MIN,
    parse_interpreter,
    parse_python,
    python_text,
    supported_minors,
)
from lockd.target.spec import SPEC_FIELDS, VariantOffers, choose_target, nearest, target_from_spec
from lockd.target.target import Target, python_tags

__all__ = [
    "FREE_THREADED_MIN",
    "LEVEL_KINDS",
    "PLATFORMS",
    "PYTHON_MAX",
    "PYTHON_MIN",
    "SPEC_FIELDS",
    "Level",
    "LevelKind",
    "LevelRange",
    "Platform",
    "Target",
    "VariantOffers",
    "choose_target",
    "lockable_anywhere",
    "nearest",
    "parse_interpreter",
    "parse_python",
    "platform_named",
    "python_tags",
    "python_text",
    "supported_minors",
    "target_from_spec",
]
