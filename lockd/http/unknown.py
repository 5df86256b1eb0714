"""Unknown names are errors: every query parameter and JSON field a route does not declare.

A misspelled parameter that is silently ignored gives the worst kind of wrong answer, one
that looks right: `POST /lock?…&cdua=cu124` would lock torch from PyPI with CUDA 12 runtime
wheels and no variant. `reject_unknown_query` (an app-wide dependency, so it answers before the route's own checks)
compares the request's query parameters with the ones the matched route declares (its
dependencies' included);
`unknown_field_problem` turns pydantic's `extra_forbidden` errors into the same answer for
JSON bodies. Both are 422 problems naming the parameter and the nearest known name.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from lockd.errors import InvalidRequest
from lockd.http.deps import SCOPE_CHECK

__all__ = [
    "UnknownParameter",
    "declared_query",
    "reject_unknown_query",
    "unknown_field_problem",
]


class UnknownParameter(InvalidRequest):
    """A query parameter or JSON field the route does not know (a request error like any other)."""

    status = 422


def _nearest(name: str, known: Sequence[str]) -> str | None:
    found = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.6)
    return found[0] if found else None


def _unknown(kind: str, name: str, known: Sequence[str], where: str, prefix: str = "") -> UnknownParameter:
    guess = _nearest(name, known)
    shown = prefix + name
    message = f"unknown {kind} {shown!r}" + (f": did you mean {prefix + guess!r}?" if guess else "")
    return UnknownParameter(
        message,
        hint=f"{where} takes: " + (", ".join(known) if known else "none"),
        context={
            "field": shown,
            "did_you_mean": None if guess is None else prefix + guess,
            "accepted": list(known),
        },
    )


def _dependants(route: APIRoute) -> Iterator[Dependant]:
    """The route's dependant and its dependencies', all the way down."""
    pending: list[Dependant] = [route.dependant]
    while pending:
        dependant = pending.pop()
        yield dependant
        pending.extend(dependant.dependencies)


def declared_query(route: APIRoute) -> list[str]:
    """The query parameters a route declares, its dependencies' included, as spelled on the wire."""
    names: list[str] = []
    for dependant in _dependants(route):
        names.extend(param.alias for param in dependant.query_params if param.alias not in names)
    return names


async def reject_unknown_query(request: Request) -> None:
    """A query parameter the matched route does not declare is a 422 naming the nearest known one,
    once the route's token checks pass: a caller who may not use the route gets their 401 or
    403, never the route's parameters."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = declared_query(route)
    for name in request.query_params:
        if name not in known:
            for check in _scope_checks(route):
                await check(request)
            raise _unknown("query parameter", name, known, f"{request.method} {route.path}")


def _scope_checks(route: APIRoute) -> list[Callable[[Request], Awaitable[None]]]:
    """The route's token checks (`lockd.http.deps.requires`), its dependencies' included."""
    return [
        dependant.call  # type: ignore[misc]  # `requires` made it
        for dependant in _dependants(route)
        if getattr(dependant.call, SCOPE_CHECK, None) is not None
    ]


def _model_at(model: type[BaseModel], path: Sequence[str]) -> type[BaseModel] | None:
    """The pydantic model that holds the field at `path` (list indexes skipped)."""
    current: Any = model
    for part in path:
        if part.isdigit():
            continue
        field = (
            current.model_fields.get(part)
            if isinstance(current, type) and issubclass(current, BaseModel)
            else None
        )
        if field is None:
            return None
        current = next((arg for arg in _models_in(field.annotation)), None)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()):
        found.extend(_models_in(arg))
    return found


def unknown_field_problem(request: Request, errors: Sequence[Any]) -> UnknownParameter | None:
    """The problem for the first `extra_forbidden` error of a JSON body, if there is one."""
    route = request.scope.get("route")
    for error in errors:
        if error.get("type") != "extra_forbidden":
            continue
        loc = [str(part) for part in error.get("loc", ())]
        path, name = loc[1:-1] if loc[:1] == ["body"] else loc[:-1], loc[-1]
        known: list[str] = []
        field_info = getattr(getattr(route, "body_field", None), "field_info", None)
        body = getattr(field_info, "annotation", None)
        if isinstance(body, type) and issubclass(body, BaseModel):
            holder = _model_at(body, path)
            if holder is not None:
                known = list(holder.model_fields)
        where = "the JSON body" + (f" at {'.'.join(path)}" if path else "")
        return _unknown("field", name, known, where, prefix="".join(f"{part}." for part in path))
    return None
