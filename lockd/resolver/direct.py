"""A wheel named by URL (`name @ https://host/file.whl#sha256=…`) as the one candidate of its project.

Intake lets such a line through only for hosts the operator allows; here the URL becomes a
`DistFile` like an index's: name, version and tags from the wheel's file name (PEP 427), the
sha256 from the fragment when given. Its METADATA and its bytes are then read through the
same index client as any file, with the same limits, deadlines and hash checks.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

from packaging.utils import InvalidWheelFilename, NormalizedName, parse_wheel_filename

from lockd.errors import NoMatchingDistribution, UnsupportedRequirement
from lockd.resolver.candidates import ProjectCandidate
from lockd.simple import DistFile
from lockd.target import Target

__all__ = ["direct_candidate", "without_fragment"]


def without_fragment(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


def direct_candidate(
    url: str, name: NormalizedName, extra: NormalizedName | None, target: Target
) -> ProjectCandidate:
    """The candidate the wheel at `url` is, if it is a wheel of `name` that installs on `target`."""
    parts = urlsplit(url)
    filename = unquote(parts.path.rsplit("/", 1)[-1])
    try:
        wheel_name, version, _build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise UnsupportedRequirement(f"{url} does not name a wheel: {exc}", context={"url": url}) from None
    if wheel_name != name:
        raise UnsupportedRequirement(
            f"{url} is a wheel of {wheel_name}, not of {name}", context={"url": url, "project": name}
        )
    if target.wheel_rank(tags) is None:
        shown = ", ".join(sorted(str(t) for t in tags)[:8])
        raise NoMatchingDistribution(
            f"{filename} does not install on {target.describe()}: its tags are {shown}",
            hint="name a wheel built for the target, or lock for the target this wheel is for",
            context={"url": url, "project": name, "target": target.to_json()},
        )
    sha256 = parts.fragment.split("=", 1)[1].lower() if parts.fragment.startswith("sha256=") else None
    file = DistFile.of(
        name=name,
        version=version,
        filename=filename,
        url=without_fragment(url),
        kind="wheel",
        tags=frozenset(tags),
        sha256=sha256,
        size=None,
        requires_python=None,
        yanked=None,
        upload_time=None,
        metadata_url=None,
        metadata_sha256=None,
    )
    return ProjectCandidate.with_files(name=name, version=version, extra=extra, files=(file,))
