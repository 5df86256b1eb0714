"""Why a lock did not keep a preferred version: a person reads it next to the difference.

A multi-target request prefers the first target's pins for the others; where another target's
lock pins a different version, the preferred one either does not install there (the finder
says why, as for any version) or the other requirements on that target rule it out.
"""

from __future__ import annotations

from packaging.utils import NormalizedName
from packaging.version import Version

from lockd.errors import UnknownProject
from lockd.inputs import LockRequest
from lockd.lock import Lock
from lockd.resolver.finder import Finder
from lockd.resolver.provider import IndexSource

__all__ = ["why_not_preferred"]


def why_not_preferred(request: LockRequest, lock: Lock, index: IndexSource) -> dict[NormalizedName, str]:
    """For each preferred project `lock` pins at another public version: why, in words."""
    reasons: dict[NormalizedName, str] = {}
    pins = lock.pins
    for name, preferred in request.preferences:
        pinned = pins.get(name)
        if pinned is None or pinned.public == preferred.public:
            continue
        reasons[name] = _why(request, index, name, preferred, pinned)
    return reasons


def _why(
    request: LockRequest, index: IndexSource, name: NormalizedName, preferred: Version, pinned: Version
) -> str:
    target = request.target
    try:
        page = index.project_page(request.plan.index_for(name), name)
    except UnknownProject:
        return f"{name} is not on the index that serves it for {target.describe()}"
    options = request.options
    finder = Finder(name, page, target, as_of=options.as_of, prereleases=options.prereleases)
    same = [v for v in page.versions if v.public == preferred.public]
    if not same:
        return f"{name} {preferred.public} is not on {page.index_url or 'the index that serves it'}"
    installable = [v for v in same if finder.release(v) is not None]
    if not installable:
        return finder.why_not(same[0])
    return (
        f"{name} {installable[0]} installs on {target.describe()}, but the other requirements there rule it"
        f" out; the lock pins {pinned}"
    )
