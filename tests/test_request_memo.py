"""`RequestMemo`: a request is kept unless the index's offers chose its target."""

from __future__ import annotations

from collections.abc import Sequence

from lockd.inputs import InputRequirement, LockOptions, LockRequest
from lockd.intake import build_request
from lockd.request_memo import RequestMemo, request_key
from lockd.routing import IndexPlan, plan_for
from lockd.target import Target, VariantOffers


def _plan(target: Target) -> IndexPlan:
    return plan_for(target)


def _no_offers(
    _requirements: Sequence[InputRequirement], _constraints: Sequence[InputRequirement], _options: LockOptions
) -> VariantOffers:
    return lambda _target, _variant: None


def _build(memo: RequestMemo, target: dict[str, object]) -> LockRequest:
    key = request_key("requests\n", target, "", None, ())
    return memo.build(
        key,
        lambda offers: build_request(
            requirements="requests\n", target=target, index_plan=_plan, offers=offers
        ),
        _no_offers,
    )


def test_a_request_whose_target_is_explicit_is_kept() -> None:
    memo = RequestMemo()
    target: dict[str, object] = {"platform": "linux_x86_64", "python": "3.11"}
    built = _build(memo, target)
    assert memo.get(request_key("requests\n", target, "", None, ())) == built


def test_a_request_whose_target_the_offers_chose_is_not_kept() -> None:
    memo = RequestMemo()
    target: dict[str, object] = {
        "platform": "linux_x86_64",
        "python": "3.11",
        "cuda": "auto",
        "driver": "580.65.06",
    }
    _build(memo, target)
    assert memo.get(request_key("requests\n", target, "", None, ())) is None
