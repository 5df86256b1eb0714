"""`Lock` → a CycloneDX 1.6 SBOM in JSON (https://cyclonedx.org/docs/1.6/json/).

One component per pin, named by its package URL (`pkg:pypi/<name>@<version>`, with the
`repository_url` qualifier when the pin came from an index other than PyPI, as the purl spec
asks). A pin may have several files (one wheel per platform tag, an sdist), and which one pip
installs is the installer's choice, so the SHA-256 of each file is given on that file's
`distribution` external reference rather than as one hash of the component. The dependency
graph is the lock's `via` edges, rooted at the lock itself, which is `metadata.component`; the
target, digests and options are `metadata.properties`.

The bytes are deterministic: no timestamp (a lock has no time of its own), and the serial
number is a UUID derived from the lock digest, so one lock has one SBOM forever.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

from lockd.lock import ROOT, Lock, LockedPackage
from lockd.routing import DEFAULT_INDEX_URL

__all__ = ["SPEC_VERSION", "package_url", "render_cyclonedx", "serial_number"]

SPEC_VERSION = "1.6"
_LOCK_REF = "lock"
# Names a UUIDv5 namespace of lockd's own, so the serial of a lock is nobody else's UUID.
_SERIAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://lockd.invalid/cyclonedx/serial")


def serial_number(lock: Lock) -> str:
    """`urn:uuid:…`, a UUIDv5 of the lock digest: equal locks share it, different ones never do."""
    return f"urn:uuid:{uuid.uuid5(_SERIAL_NAMESPACE, lock.digest)}"


def package_url(package: LockedPackage) -> str:
    """`pkg:pypi/torch@2.5.1%2Bcu124?repository_url=…`; the qualifier only off PyPI."""
    purl = f"pkg:pypi/{quote(package.name, safe='')}@{quote(str(package.version), safe='')}"
    if package.index.rstrip("/") != DEFAULT_INDEX_URL.rstrip("/"):
        purl += "?repository_url=" + quote(package.index, safe=":/")
    return purl


def _component(package: LockedPackage) -> dict[str, Any]:
    purl = package_url(package)
    component: dict[str, Any] = {
        "type": "library",
        "bom-ref": purl,
        "name": package.name,
        "version": str(package.version),
        "purl": purl,
    }
    references = [
        {
            "type": "distribution",
            "url": file.url,
            "comment": file.filename,
            "hashes": [{"alg": "SHA-256", "content": file.sha256}],
        }
        for file in package.files
    ]
    if references:
        component["externalReferences"] = references
    properties = [{"name": "lockd:index", "value": package.index}]
    if package.requires_python is not None:
        properties.append({"name": "lockd:requires_python", "value": package.requires_python})
    component["properties"] = properties
    return component


def _metadata(lock: Lock) -> dict[str, Any]:
    target = lock.target.to_json()
    properties = [
        {"name": "lockd:input_digest", "value": lock.input_digest},
        {"name": "lockd:lock_digest", "value": lock.digest},
        {"name": "lockd:target:platform", "value": str(target["platform"])},
        {"name": "lockd:target:python", "value": str(target["python"])},
    ]
    if target["cuda"] is not None:
        properties.append({"name": "lockd:target:cuda", "value": str(target["cuda"])})
    properties.append({"name": "lockd:index:default", "value": lock.plan.default_url})
    if lock.plan.accelerator_url is not None:
        properties.append({"name": "lockd:index:accelerator", "value": lock.plan.accelerator_url})
    properties.extend({"name": "lockd:requirement", "value": r} for r in lock.requirements)
    properties.extend({"name": "lockd:constraint", "value": c} for c in lock.constraints)
    properties.append({"name": "lockd:option:prereleases", "value": str(lock.options.prereleases).lower()})
    if lock.options.as_of is not None:
        properties.append({"name": "lockd:option:as_of", "value": lock.options.as_of.isoformat()})
    return {
        "tools": {"components": [{"type": "application", "name": "lockd"}]},
        "component": {
            "type": "application",
            "bom-ref": _LOCK_REF,
            "name": f"lock-{lock.input_digest[:12]}",
            "description": f"lockd lock of {len(lock.requirements)} requirements for {lock.target.describe()}",
        },
        "properties": properties,
    }


def _dependencies(lock: Lock) -> list[dict[str, Any]]:
    """The `via` edges turned around: each parent depends on the packages that name it in `via`."""
    refs: dict[str, str] = {package.name: package_url(package) for package in lock.packages}
    children: dict[str, set[str]] = {_LOCK_REF: set()}
    for package in lock.packages:
        children.setdefault(refs[package.name], set())
        for parent in package.via:
            if parent == ROOT:
                children[_LOCK_REF].add(refs[package.name])
            elif parent in refs:
                children.setdefault(refs[parent], set()).add(refs[package.name])
    return [{"ref": ref, "dependsOn": sorted(children[ref])} for ref in sorted(children)]


def render_cyclonedx(lock: Lock) -> bytes:
    """The SBOM as UTF-8 JSON, two-space indented, ending in a newline."""
    document = {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": serial_number(lock),
        "version": 1,
        "metadata": _metadata(lock),
        "components": [_component(package) for package in lock.packages],
        "dependencies": _dependencies(lock),
    }
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
