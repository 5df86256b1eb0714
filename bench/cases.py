"""Benchmark cases: a requirements.in and a target.toml per directory, and where each one resolves.

Two sources: the public cases in ``../shared/bench/cases`` (real stacks, resolved against real PyPI,
with a PyTorch index that has to be the fixture index here because download.pytorch.org is
unreachable) and ``bench/cases`` (stacks the fixture index can serve, resolved with injected latency).
A ``bench/cases`` case whose target.toml says ``index = "pypi"`` (the generated ``pypi-N`` stacks of
about N pins) is a real-PyPI case: it is loaded with source "pypi" only.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

__all__ = [
    "FIXTURE_CASES",
    "HOST_PLATFORM",
    "HOST_PYTHON",
    "SHARED_CASES",
    "Case",
    "IndexSetup",
    "load_cases",
    "with_nonce",
]

ROOT = Path(__file__).resolve().parent
FIXTURE_CASES = ROOT / "cases"
# Under `--lockd-rev` the bench runs from an export, so the checkout passes the shared path along.
SHARED_CASES = Path(
    os.environ.get("LOCKD_BENCH_SHARED_CASES", ROOT.parent.parent / "shared" / "bench" / "cases")
)

# pip-compile resolves for the interpreter it runs on, so it only competes on the host's own target.
HOST_PLATFORM = "linux_x86_64"
HOST_PYTHON = "3.11"


@dataclass(frozen=True, slots=True)
class Case:
    """One stack to lock for one target."""

    name: str
    requirements: str  # the requirements.in text, comments included
    platform: str
    python: str
    cuda: str | None
    source: str  # "fixture" or "pypi"

    @property
    def is_host_target(self) -> bool:
        return self.platform == HOST_PLATFORM and self.python == HOST_PYTHON

    @property
    def is_torch(self) -> bool:
        return any(req.name in {"torch", "torchvision", "torchaudio"} for req in self.parsed())

    def parsed(self) -> list[Requirement]:
        reqs = []
        for raw in self.requirements.splitlines():
            line = raw.split("#", 1)[0].strip()
            if line:
                reqs.append(Requirement(line))
        return reqs


@dataclass(frozen=True, slots=True)
class IndexSetup:
    """The indexes one resolution runs against; every tool in a comparison gets the same one."""

    label: str  # "fixture+20ms" or "pypi (torch family: fixture index)"
    pypi_url: str  # a PEP 503/691 simple index, ending in /
    pytorch_base: str  # <base> of <base>/<variant>/, no trailing slash
    pypi_is_fixture: bool  # False: the default index is real PyPI

    def variant_url(self, variant: str) -> str:
        return f"{self.pytorch_base}/{variant}/"


def _index_of(directory: Path) -> str:
    return str(tomllib.loads((directory / "target.toml").read_text()).get("index", "fixture"))


def _load_case(directory: Path, source: str) -> Case:
    target = tomllib.loads((directory / "target.toml").read_text())
    cuda = target.get("cuda")
    return Case(
        name=directory.name,
        requirements=(directory / "requirements.in").read_text(),
        platform=str(target["platform"]),
        python=str(target["python"]),
        cuda=None if cuda is None else str(cuda),
        source=source,
    )


def load_cases(directory: Path, source: str, names: list[str] | None = None) -> list[Case]:
    """Every case under ``directory`` (sorted) for ``source``, or only those named.

    In ``bench/cases``, source "fixture" skips the ``index = "pypi"`` cases and "pypi" takes only them."""
    if not directory.is_dir():
        return []
    found = [
        child
        for child in sorted(directory.iterdir())
        if (child / "requirements.in").is_file() and (child / "target.toml").is_file()
    ]
    if directory.resolve() == FIXTURE_CASES.resolve():
        found = [child for child in found if (_index_of(child) == "pypi") == (source == "pypi")]
    cases = [_load_case(child, source) for child in found]
    if names:
        cases = [case for case in cases if case.name in names]
    return cases


def with_nonce(requirements: str, nonce: int) -> str:
    """The same stack with a different input digest: ``!=0.0.0.<nonce>`` excludes no real release.

    lockd returns a stored lock for a digest it has seen, so every *resolution* we time needs an
    input it has not seen; changing a specifier this way changes the digest but not the result.
    """
    out: list[str] = []
    done = False
    for raw in requirements.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not done:
            req = Requirement(line)
            req.specifier &= f"!=0.0.0.{nonce}"
            out.append(str(req))
            done = True
        else:
            out.append(raw)
    return "\n".join(out) + "\n"
