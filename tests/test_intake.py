"""Intake: request text and a loose target spec become one normalised `LockRequest`, from explicit values."""

from __future__ import annotations

import pytest

from lockd.errors import InputTooLarge, InvalidRequest, InvalidTarget
from lockd.inputs import LockOptions, parse_requirements
from lockd.intake import build_request
from lockd.routing import IndexPlan, plan_for
from lockd.target import Target

CUDA = {"platform": "linux_x86_64", "python": "3.11", "cuda": "cu124"}


def test_the_plan_comes_from_the_parsed_target() -> None:
    asked: list[Target] = []

    def index_plan(target: Target) -> IndexPlan:
        asked.append(target)
        return plan_for(target, default_url="https://mirror.internal/simple")

    request = build_request(
        requirements="Torch==2.5.1  # pinned\n", constraints="numpy<2\n", target=CUDA, index_plan=index_plan
    )
    assert asked == [Target.of("linux_x86_64", "3.11", "cu124")] == [request.target]
    assert request.plan == plan_for(request.target, default_url="https://mirror.internal/simple")
    assert request.requirements == parse_requirements("torch==2.5.1\n")
    assert request.constraints == parse_requirements("numpy<2", source="constraints.txt")
    assert request.options == LockOptions()


def test_an_empty_body_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        build_request(requirements="# nothing\n\n", target=CUDA, index_plan=plan_for)
    assert caught.value.message == "no requirements given"


def test_the_limit_applies_to_requirements_and_constraints() -> None:
    many = "".join(f"project-{n}\n" for n in range(3))
    assert len(build_request(requirements=many, target=CUDA, index_plan=plan_for).requirements) == 3
    with pytest.raises(InputTooLarge):
        build_request(requirements=many, target=CUDA, index_plan=plan_for, max_requirements=2)
    with pytest.raises(InputTooLarge) as caught:
        build_request(
            requirements="torch\n", constraints=many, target=CUDA, index_plan=plan_for, max_requirements=2
        )
    assert caught.value.context["source"] == "constraints.txt"


def test_a_bad_target_is_refused_before_any_plan() -> None:
    def index_plan(target: Target) -> IndexPlan:
        raise AssertionError(f"planned {target}")

    with pytest.raises(InvalidTarget):
        build_request(
            requirements="torch\n", target={"platform": "plan9", "python": "3.11"}, index_plan=index_plan
        )
