"""Properties of intake over *generated* requirements (test_inputs.py proves them on fixed lines).

Hypothesis builds requirement sets from names, extras, specifiers and markers, then: any
reordering, spacing, comment, blank line, name spelling (PEP 503) or extras order leaves the
input digest alone; any change of one specifier, extra, marker or the target changes it. Over
HTTP, two equivalent bodies get the same `Input-Digest`, and the second is a byte-identical hit.
"""

from __future__ import annotations

import itertools
from typing import TypedDict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockd.inputs import LockOptions, LockRequest, parse_requirements
from lockd.routing import plan_for
from lockd.target import Target
from tests.support import LockdServer

NAMES = [
    "numpy",
    "torch",
    "requests",
    "fastapi",
    "pillow",
    "typing-extensions",
    "zope-interface",
    "ruamel-yaml",
]
EXTRAS = ["socks", "standard", "dev", "all"]
OPERATORS = ["==", ">=", "<=", "!=", "~=", "<", ">"]
MARKERS = [
    'sys_platform == "linux"',
    'python_version >= "3.10"',
    'platform_machine != "aarch64"',
    'implementation_name == "cpython"',
    'extra == "gpu"',
]
TARGETS = [
    Target.of("linux_x86_64", "3.11", "cu124"),
    Target.of("linux_x86_64", "3.11", None),
    Target.of("linux_x86_64", "3.12", "cu124"),
    Target.of("linux_aarch64", "3.11", None),
    Target.of("macos_arm64", "3.11", None),
    Target.of("windows_amd64", "3.11", "cu121"),
    Target.of("linux_x86_64", "3.11.7", "cu124"),
]


class Req(TypedDict):
    """One generated requirement, before it is spelled out."""

    name: str
    extras: list[str]
    specs: list[tuple[str, str]]
    marker: str | None


@st.composite
def requirement(draw: st.DrawFn, name: str) -> Req:
    extras = draw(st.lists(st.sampled_from(EXTRAS), unique=True, max_size=2))
    specs = draw(
        st.lists(
            st.tuples(st.sampled_from(OPERATORS), st.lists(st.integers(0, 30), min_size=2, max_size=3)),
            max_size=2,
            unique_by=lambda s: s[0],
        )
    )
    marker = draw(st.none() | st.sampled_from(MARKERS))
    return {
        "name": name,
        "extras": extras,
        "specs": [(op, ".".join(map(str, v))) for op, v in specs],
        "marker": marker,
    }


requirement_sets = st.lists(st.sampled_from(NAMES), min_size=1, max_size=5, unique=True).flatmap(
    lambda names: st.tuples(*[requirement(n) for n in names])
)


def spell(req: Req, *, style: int = 0) -> str:
    """One way of writing `req`; every style is equivalent."""
    name = req["name"]
    if style % 3 == 1:
        name = name.upper().replace("-", "_")
    elif style % 3 == 2:
        name = name.title().replace("-", ".")
    extras = list(req["extras"]) if style % 2 == 0 else list(reversed(req["extras"]))
    text = name + (f"[{', '.join(extras)}]" if extras else "")
    specs = req["specs"] if style % 2 == 0 else list(reversed(req["specs"]))
    gap = " " if style % 2 else ""
    text += gap + f",{gap}".join(f"{op}{gap}{version}" for op, version in specs)
    if req["marker"]:
        text += f" ; {req['marker']}" if style % 2 else f"; {req['marker']}"
    return text


def digest(text: str, target: Target = TARGETS[0]) -> str:
    return LockRequest(
        requirements=parse_requirements(text),
        constraints=(),
        target=target,
        plan=plan_for(target),
        options=LockOptions(),
    ).digest


@settings(max_examples=150, deadline=None)
@given(
    reqs=requirement_sets,
    data=st.data(),
)
def test_equivalent_spellings_of_generated_requirements_share_a_digest(
    reqs: tuple[Req, ...], data: st.DataObject
) -> None:
    base = digest("\n".join(spell(r) for r in reqs))
    order = data.draw(st.permutations(list(reqs)))
    styles = data.draw(st.lists(st.integers(0, 5), min_size=len(reqs), max_size=len(reqs)))
    comment = data.draw(st.sampled_from(["", "  # pinned for CUDA", "\t# -r x.in"]))
    blank = data.draw(st.sampled_from(["", "\n", "\n# header\n\n"]))
    lines = [f"  {spell(r, style=s)}{comment}" for r, s in zip(order, styles, strict=True)]
    assert digest(blank + "\n".join(lines) + blank) == base


@st.composite
def one_change(draw: st.DrawFn, reqs: tuple[Req, ...]) -> tuple[Req, ...]:
    """The same set with exactly one semantic change to one requirement."""
    index = draw(st.integers(0, len(reqs) - 1))
    req = reqs[index].copy()
    kind = draw(st.sampled_from(["spec-version", "spec-operator", "spec-add", "extra", "marker"]))
    if kind == "spec-version" and req["specs"]:
        op, version = req["specs"][0]
        req["specs"] = [(op, version + ".1"), *req["specs"][1:]]
    elif kind == "spec-operator" and req["specs"]:
        op, version = req["specs"][0]
        others = {o for o, _ in req["specs"]}
        new = draw(st.sampled_from([o for o in OPERATORS if o not in others]))
        req["specs"] = [(new, version), *req["specs"][1:]]
    elif kind == "extra":
        missing = [e for e in EXTRAS if e not in req["extras"]]
        grow = bool(missing) and draw(st.booleans())
        req["extras"] = [*req["extras"], missing[0]] if grow else req["extras"][1:]
        if req["extras"] == reqs[index]["extras"]:
            req["extras"] = [*req["extras"], missing[0]]
    elif kind == "marker":
        req["marker"] = draw(st.sampled_from([m for m in [*MARKERS, None] if m != req["marker"]]))
    else:
        ops = {o for o, _ in req["specs"]}
        new = next(o for o in ("!=", "<", ">=", "==") if o not in ops)
        req["specs"] = [*req["specs"], (new, "99.1")]
    return (*reqs[:index], req, *reqs[index + 1 :])


@settings(max_examples=150, deadline=None)
@given(reqs=requirement_sets, data=st.data())
def test_any_change_of_specifier_extra_or_marker_changes_the_digest(
    reqs: tuple[Req, ...], data: st.DataObject
) -> None:
    changed = data.draw(one_change(reqs))
    assert changed != reqs
    assert digest("\n".join(spell(r) for r in changed)) != digest("\n".join(spell(r) for r in reqs))


@settings(max_examples=60, deadline=None)
@given(reqs=requirement_sets, pair=st.lists(st.sampled_from(TARGETS), min_size=2, max_size=2, unique=True))
def test_any_change_of_target_changes_the_digest(reqs: tuple[Req, ...], pair: list[Target]) -> None:
    text = "\n".join(spell(r) for r in reqs)
    assert digest(text, pair[0]) != digest(text, pair[1])


_fresh = itertools.count(1)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(styles=st.lists(st.integers(0, 5), min_size=2, max_size=2), flip=st.booleans())
def test_equivalent_bodies_over_http_share_an_input_digest(
    lockd_server: LockdServer, styles: list[int], flip: bool
) -> None:
    tag = f"0.0.{next(_fresh)}.{id(lockd_server) % 1000}"
    reqs: list[Req] = [
        {"name": "lockd-fx-plain", "extras": [], "specs": [("!=", tag), (">=", "1.0")], "marker": None},
        {"name": "lockd-fx-extras", "extras": ["speedups"], "specs": [], "marker": 'python_version >= "3.9"'},
    ]
    first = "\n".join(spell(r, style=styles[0]) for r in reqs) + "\n"
    second = "# the same, written differently\n" + "\n\n".join(
        spell(r, style=styles[1]) for r in (reqs[::-1] if flip else reqs)
    )
    params = {"platform": "linux_x86_64", "python": "3.11"}
    with lockd_server.client("lock") as client:
        one = client.post("/lock", params=params, content=first, headers={"content-type": "text/plain"})
        two = client.post("/v1/locks", json={"requirements": second, "target": params})
        three = client.post("/lock", params=params, content=second, headers={"content-type": "text/plain"})
    assert one.status_code == 201, one.text
    assert two.status_code == 200 and three.status_code == 200, (two.text, three.text)
    assert one.headers["input-digest"] == two.headers["input-digest"] == three.headers["input-digest"]
    assert one.content == three.content  # the stored lock, byte for byte
