"""`Lock` → pylock.toml (PEP 751, lock-version 1.0).

The lock is for one target, so `environments` holds that target's marker and no package
carries a marker of its own. Each package names the index it came from, its dependencies
(by name: a lock holds one entry per name), and its files as `wheels` and `sdist` with
url, size and sha256. The CUDA variant cannot be said in a PEP 508 marker; it is recorded
under `[tool.lockd]` with the input digest. The TOML is written here, deterministically,
rather than by a library: the format is small and byte stability is the point.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from lockd.lock import Lock, LockedFile, LockedPackage
from lockd.target import Target

__all__ = ["environment_marker", "iter_pylock_toml", "render_pylock_toml", "requires_python"]

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


# What a basic string escapes: a value without any is written as it is (most of a lock's text).
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f\x7f"\\]')


def _string(value: str) -> str:
    """A TOML string: literal ('…') when that needs no escape, else a basic string."""
    if _NEEDS_ESCAPE.search(value) is None:
        return f'"{value}"'
    plain = all(ch >= " " and ch != "\x7f" for ch in value)
    if plain and "'" not in value and '"' in value:
        return f"'{value}'"
    out: list[str] = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch < " " or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def environment_marker(target: Target) -> str:
    """The PEP 508 marker that is true exactly on the target's platform and Python minor."""
    platform = target.platform
    return (
        f'sys_platform == "{platform.sys_platform}" and platform_machine == "{platform.platform_machine}"'
        f' and implementation_name == "cpython" and python_version == "{target.python_version}"'
    )


def requires_python(target: Target) -> str:
    """`>=3.11.0,<3.12`: the target's Python, and every later patch release of its minor."""
    return f">={target.python},<{target.python.major}.{target.python.minor + 1}"


def _file_table(file: LockedFile) -> str:
    fields = [f"name = {_string(file.filename)}", f"url = {_string(file.url)}"]
    if file.size is not None:
        fields.append(f"size = {file.size}")
    fields.append(f"hashes = {{ sha256 = {_string(file.sha256)} }}")
    return "{ " + ", ".join(fields) + " }"


def _package_lines(package: LockedPackage, target: Target) -> Iterator[str]:
    yield "[[packages]]"
    yield f"name = {_string(package.name)}"
    yield f"version = {_string(str(package.version))}"
    if package.direct and package.files:
        # PEP 751: a file named by URL is an archive, with no index.
        file = package.files[0]
        yield f"archive = {{ url = {_string(file.url)}, hashes = {{ sha256 = {_string(file.sha256)} }} }}"
    else:
        yield f"index = {_string(package.index)}"
    if package.requires_python:
        yield f"requires-python = {_string(package.requires_python)}"
    if package.dependencies:
        entries = ", ".join(f"{{ name = {_string(name)} }}" for name in package.dependencies)
        yield f"dependencies = [{entries}]"
    files = package.files_best_first(target)
    sdists = [f for f in files if f.kind == "sdist" and not package.direct]
    wheels = [f for f in files if f.kind == "wheel" and not package.direct]
    if sdists:
        # PEP 751 allows one sdist per package; a lock carries at most one per version.
        yield f"sdist = {_file_table(sdists[0])}"
    if wheels:
        yield "wheels = ["
        for wheel in wheels:
            yield f"    {_file_table(wheel)},"
        yield "]"
    yield ""


def _tool_lines(lock: Lock) -> Iterator[str]:
    target = lock.target
    yield "[tool.lockd]"
    yield f"input-digest = {_string('sha256:' + lock.input_digest)}"
    yield f"platform = {_string(target.platform.name)}"
    if target.level is not None and target.level != target.platform.default_level:
        yield f"{target.level.kind} = {_string(str(target.level))}"
    yield f"python = {_string(target.python_text)}"
    if target.variant_name is not None:
        yield f"cuda = {_string(target.variant_name)}"
    if target.driver is not None:
        yield f"driver = {_string(str(target.driver))}"
    if lock.accelerator_runtime is not None:
        yield f"accelerator-runtime = {_string(lock.accelerator_runtime)}"
    yield f"default-index = {_string(lock.plan.default_url)}"
    if lock.plan.accelerator_url is not None:
        yield f"accelerator-index = {_string(lock.plan.accelerator_url)}"
    if lock.requirements:
        yield "requirements = [" + ", ".join(_string(r) for r in lock.requirements) + "]"
    if lock.constraints:
        yield "constraints = [" + ", ".join(_string(c) for c in lock.constraints) + "]"


def iter_pylock_toml(lock: Lock) -> Iterator[str]:
    yield 'lock-version = "1.0"'
    yield f"environments = [{_string(environment_marker(lock.target))}]"
    yield f"requires-python = {_string(requires_python(lock.target))}"
    yield 'created-by = "lockd"'
    yield ""
    for package in sorted(lock.packages, key=lambda p: p.name):
        yield from _package_lines(package, lock.target)
    yield from _tool_lines(lock)


def render_pylock_toml(lock: Lock) -> str:
    return "".join(line + "\n" for line in iter_pylock_toml(lock))
