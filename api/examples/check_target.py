"""Refuse to install a lock on an image it was not made for; print the pip flags it needs.

Run inside the image, before anything is installed: `python3 check_target.py lock.json`.
lockd serves the lock's target with the lock (`target` in lock.json: platform, Python,
accelerator). This compares it with the interpreter and machine that will run the packages —
Python major.minor, CPU architecture, C library (glibc at or above the manylinux baseline) —
and exits 1 with a message naming both when they differ, so a build fails here and not at
import time. On success it prints the pip flags: `--only-binary :all:` unless the lock pins a
version that ships only an sdist (then pip must be allowed to build that one).
Standard library only: the base image has nothing else yet.
"""

from __future__ import annotations

import json
import platform
import sys
from typing import Any

# The machine and the lowest glibc each lockd Linux platform's wheels may need (manylinux_2_28).
PLATFORMS = {"linux_x86_64": ("x86_64", (2, 28)), "linux_aarch64": ("aarch64", (2, 28))}


def _image() -> tuple[tuple[int, int], str, str, tuple[int, ...]]:
    libc, version = platform.libc_ver()
    parts = tuple(int(p) for p in version.split(".") if p.isdigit()) if version else ()
    return sys.version_info[:2], platform.machine(), libc or "unknown", parts


def problems(target: dict[str, Any]) -> list[str]:
    """What keeps this image from running the lock's packages (nothing: an empty list)."""
    python, machine, libc, libc_version = _image()
    wanted_python = tuple(int(p) for p in str(target["python"]).rstrip("t").split(".")[:2])
    found: list[str] = []
    if python != wanted_python:
        found.append(f"Python {python[0]}.{python[1]} here, {wanted_python[0]}.{wanted_python[1]} in the lock")
    known = PLATFORMS.get(target["platform"])
    if known is None:
        found.append(f"a Linux image cannot run a lock for {target['platform']}")
        return found
    wanted_machine, wanted_glibc = known
    if machine != wanted_machine:
        found.append(f"{machine} here, {wanted_machine} ({target['platform']}) in the lock")
    glibc = target.get("glibc")
    minimum = tuple(int(p) for p in str(glibc).split(".")) if glibc else wanted_glibc
    if libc != "glibc" or libc_version < minimum:
        have = f"{libc} {'.'.join(map(str, libc_version))}".strip()
        found.append(f"{have} here, glibc >= {'.'.join(map(str, minimum))} in the lock")
    return found


def pip_flags(lock: dict[str, Any]) -> str:
    sdist_only = [p["name"] for p in lock["packages"] if not any(f["kind"] == "wheel" for f in p["files"])]
    return "" if sdist_only else "--only-binary :all:"


def main(path: str) -> int:
    with open(path, encoding="utf-8") as file:
        lock = json.load(file)
    target = lock["target"]
    found = problems(target)
    if found:
        python, machine, libc, version = _image()
        image = f"Python {python[0]}.{python[1]}, {machine}, {libc} {'.'.join(map(str, version))}"
        wanted = f"{target['platform']}, Python {target['python']}, accelerator {target.get('cuda') or 'none'}"
        print(f"this image does not match the lock: {'; '.join(found)}", file=sys.stderr)
        print(f"  image: {image}\n  lock:  {wanted}", file=sys.stderr)
        print("  build FROM a base with the lock's Python and architecture, or lock for this image", file=sys.stderr)
        return 1
    print(pip_flags(lock))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
