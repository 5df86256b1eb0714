"""why(): every path from a root requirement to a package, checked against the lock's `via` graph."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName

from fixtures.index import FixtureIndex
from lockd.errors import LockdError, NotFound
from lockd.index import IndexClient
from lockd.inputs import InputRequirement, LockOptions, LockRequest, parse_requirements
from lockd.lock import ROOT, Lock, LockedPackage
from lockd.resolver import resolve
from lockd.routing import plan_for
from lockd.target import Target
from lockd.why import PackageNotInLock, Why, render_why_text, why
from tests.render.conftest import SAMPLES, check_golden, fake_sha, package, wheel

REAL_REQUIREMENTS = """\
# an ML service: the torch family from the cu124 index, the web stack from PyPI
torch==2.5.1
torchvision

fastapi
requests>=2.31
jinja2
"""


@pytest.fixture(scope="module")
def real_lock(fixture_index: FixtureIndex) -> tuple[Lock, tuple[InputRequirement, ...]]:
    """A lock resolved from the fixture index (a faithful PyPI and PyTorch index snapshot)."""
    target = Target.of("linux_x86_64", "3.11", "cu124")
    requirements = parse_requirements(REAL_REQUIREMENTS)
    request = LockRequest(
        requirements=requirements,
        constraints=parse_requirements("numpy<2.2", source="constraints.txt"),
        target=target,
        plan=plan_for(target, default_url=fixture_index.pypi_url, pytorch_base=fixture_index.pytorch_base),
    )
    with IndexClient(timeout=30.0) as client:
        return resolve(request, client), requirements


def simple_paths(lock: Lock, name: str) -> list[tuple[str, ...]]:
    """The independent answer: a plain depth-first walk up the `via` edges, no package twice."""
    by_name = {p.name: p for p in lock.packages}
    found: list[tuple[str, ...]] = []

    def walk(chain: tuple[str, ...]) -> None:
        head = by_name[NormalizedName(chain[0])]
        if ROOT in head.via:
            found.append(chain)
        for parent in head.via:
            if parent in by_name and parent not in chain:
                walk((parent, *chain))

    walk((name,))
    return sorted(found)


def check_against_via(lock: Lock, answer: Why) -> None:
    by_name = {p.name: p for p in lock.packages}
    assert answer.version == by_name[answer.package].version
    assert sorted(path.names for path in answer.paths) == simple_paths(lock, answer.package)
    for path in answer.paths:
        first = path.steps[0]
        assert ROOT in by_name[first.package].via
        assert first.requirement is not None and first.requirement in lock.requirements
        assert first.specifier == SpecifierSet(first.requirement.split(";")[0].removeprefix(first.package))
        for parent, child in zip(path.steps, path.steps[1:], strict=False):
            assert parent.package in by_name[child.package].via
            assert child.requirement is None and child.specifier is None and child.line is None
        for step in path.steps:
            assert step.version == by_name[step.package].version
    lengths = [len(path.steps) for path in answer.paths]
    assert lengths == sorted(lengths), "shortest paths first"


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_why_matches_the_via_graph_for_every_package_of_the_samples(sample: str) -> None:
    lock = SAMPLES[sample]()
    for locked in lock.packages:
        answer = why(lock, locked.name)
        assert answer.paths and not answer.truncated
        check_against_via(lock, answer)


def test_why_matches_the_via_graph_of_a_resolved_lock_with_lines(
    real_lock: tuple[Lock, tuple[InputRequirement, ...]],
) -> None:
    lock, requirements = real_lock
    assert len(lock.packages) > 20
    lines = {r.name: r.line for r in requirements}
    for locked in lock.packages:
        answer = why(lock, locked.name, requirements=requirements)
        assert answer.paths and not answer.truncated
        check_against_via(lock, answer)
        for path in answer.paths:
            assert path.steps[0].line == lines[path.steps[0].package]
    numpy = why(lock, "numpy", requirements=requirements)
    assert all(path.steps[-1].constraints == ("numpy<2.2",) for path in numpy.paths)
    assert "constrained by: numpy<2.2" in render_why_text(numpy)
    torch = why(lock, "torch", requirements=requirements)
    assert (
        torch.paths[0].describe()
        == f"torch==2.5.1 (requirements.in line 2) → torch {lock.pins[NormalizedName('torch')]}"
    )


def test_names_are_normalised_and_a_missing_package_is_a_404() -> None:
    lock = SAMPLES["cuda"]()
    assert why(lock, "Typing_Extensions").package == "typing-extensions"
    with pytest.raises(PackageNotInLock) as caught:
        why(lock, "requests")
    error = caught.value
    assert isinstance(error, NotFound)
    assert (error.code, error.status) == ("package-not-in-lock", 404)
    assert error.context == {"package": "requests", "input_digest": lock.input_digest}
    assert LockdError.from_json(error.to_json()).code == "package-not-in-lock"


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_json_round_trip_is_equal_by_value(sample: str) -> None:
    lock = SAMPLES[sample]()
    for locked in lock.packages:
        answer = why(lock, locked.name)
        assert Why.from_json(answer.to_json()) == answer


def test_text_rendering() -> None:
    lock = SAMPLES["cuda"]()
    text = "".join(render_why_text(why(lock, name)) for name in ("filelock", "numpy", "torch"))
    check_golden("cuda.why.txt", text)


def layered_lock(width: int, depth: int) -> Lock:
    """`width` packages per layer, each required by every package of the layer above, plus a
    shortcut: the bottom package is also a root requirement of its own."""
    layers = [[f"l{level}-{i}" for i in range(width)] for level in range(depth)]
    packages: list[LockedPackage] = []
    for level, names in enumerate(layers):
        above = [ROOT] if level == 0 else layers[level - 1]
        packages.extend(
            package(n, "1.0", [wheel(f"{n}-1.0-py3-none-any.whl")], via=list(above)) for n in names
        )
    packages.append(package("bottom", "1.0", [wheel("bottom-1.0-py3-none-any.whl")], via=[*layers[-1], ROOT]))
    return Lock.build(
        input_digest=fake_sha("layered"),
        target=Target.of("linux_x86_64", "3.11"),
        plan=plan_for(Target.of("linux_x86_64", "3.11")),
        requirements=[*layers[0], "bottom"],
        constraints=[],
        options=LockOptions(),
        packages=packages,
    )


def test_a_dense_graph_gives_the_shortest_paths_and_says_it_stopped() -> None:
    lock = layered_lock(width=4, depth=8)  # 4**8 = 65,536 paths to `bottom`, plus the shortcut
    answer = why(lock, "bottom", max_paths=50)
    assert answer.truncated
    assert len(answer.paths) == 50
    assert answer.paths[0].names == ("bottom",)
    assert all(len(path.steps) == 9 for path in answer.paths[1:])
    assert "… and more: the 50 shortest are shown" in render_why_text(answer)
    small = layered_lock(width=2, depth=3)
    complete = why(small, "bottom", max_paths=1000)
    assert not complete.truncated and len(complete.paths) == 2**3 + 1
    check_against_via(small, complete)


def test_cycles_in_via_end_paths() -> None:
    """Projects can require each other (e.g. an extra of A needs B, B needs A): paths stay simple."""
    packages = [
        package("a", "1.0", [wheel("a-1.0-py3-none-any.whl")], via=[ROOT, "b"]),
        package("b", "1.0", [wheel("b-1.0-py3-none-any.whl")], via=["a"]),
        package("c", "1.0", [wheel("c-1.0-py3-none-any.whl")], via=["a", "b"]),
    ]
    target = Target.of("linux_x86_64", "3.11")
    lock = Lock.build(
        input_digest=fake_sha("cycle"),
        target=target,
        plan=plan_for(target),
        requirements=["a"],
        constraints=[],
        options=LockOptions(),
        packages=packages,
    )
    answer = why(lock, "c")
    assert [path.names for path in answer.paths] == [("a", "c"), ("a", "b", "c")]
    check_against_via(lock, answer)


@pytest.fixture
def markers_lock() -> Iterator[Lock]:
    target = Target.of("linux_x86_64", "3.11")
    packages = [package("tomli", "2.0.1", [wheel("tomli-2.0.1-py3-none-any.whl")], via=[ROOT])]
    yield Lock.build(
        input_digest=fake_sha("markers"),
        target=target,
        plan=plan_for(target),
        requirements=['tomli<2; python_version < "3.11"', 'tomli>=2; python_version >= "3.11"'],
        constraints=[],
        options=LockOptions(),
        packages=packages,
    )


def test_only_requirements_whose_marker_holds_on_the_target_start_a_path(markers_lock: Lock) -> None:
    answer = why(markers_lock, "tomli")
    assert [path.steps[0].requirement for path in answer.paths] == ['tomli>=2; python_version >= "3.11"']
    assert answer.paths[0].steps[0].specifier == SpecifierSet(">=2")
