"""render_cyclonedx: valid CycloneDX 1.6 (the official schema, offline), deterministic, faithful."""

from __future__ import annotations

import json
import re
import socket
import uuid
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from lockd.lock import ROOT, Lock
from lockd.render import FORMATS
from lockd.render.cyclonedx import SPEC_VERSION, package_url, render_cyclonedx, serial_number
from tests.render.conftest import SAMPLES, check_golden


@pytest.fixture(scope="module")
def validator() -> JsonStrictValidator:
    return JsonStrictValidator(SchemaVersion.V1_6)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The schema and the SPDX/JSF schemas it references come from cyclonedx-python-lib's files."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("schema validation tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def sbom(lock: Lock) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(render_cyclonedx(lock))
    return document


def test_the_served_media_type_names_the_spec_version_written() -> None:
    # The format table holds the media type without importing this renderer.
    assert FORMATS["cyclonedx.json"].media_type == f"application/vnd.cyclonedx+json; version={SPEC_VERSION}"


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_validates_against_the_cyclonedx_1_6_schema(
    sample: str, validator: JsonStrictValidator, offline: None
) -> None:
    assert validator.validate_str(render_cyclonedx(SAMPLES[sample]()).decode("utf-8")) is None


def test_the_validator_rejects_what_the_schema_forbids(validator: JsonStrictValidator, offline: None) -> None:
    document = sbom(SAMPLES["cuda"]())
    document["components"][0]["hashes"] = [{"alg": "SHA-256", "content": "not-hex"}]
    assert validator.validate_str(json.dumps(document)) is not None
    document = sbom(SAMPLES["cuda"]())
    document["serialNumber"] = "lock-digest"
    assert validator.validate_str(json.dumps(document)) is not None


def test_golden(sample_lock: tuple[str, Lock]) -> None:
    name, lock = sample_lock
    check_golden(f"{name}.cyclonedx.json", render_cyclonedx(lock).decode("utf-8"))


def test_bytes_and_serial_follow_the_lock_only() -> None:
    lock = SAMPLES["cuda"]()
    assert render_cyclonedx(lock) == render_cyclonedx(SAMPLES["cuda"]())
    serial = sbom(lock)["serialNumber"]
    assert serial == serial_number(lock)
    assert uuid.UUID(serial.removeprefix("urn:uuid:")).version == 5
    assert re.fullmatch(
        r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", serial
    )
    others = {serial_number(SAMPLES[name]()) for name in SAMPLES}
    assert len(others) == len(SAMPLES)
    assert "timestamp" not in sbom(lock)["metadata"]


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_components_carry_purl_and_the_hash_of_every_file(sample: str) -> None:
    lock = SAMPLES[sample]()
    components = {c["name"]: c for c in sbom(lock)["components"]}
    assert sorted(components) == sorted(p.name for p in lock.packages)
    for package in lock.packages:
        component = components[package.name]
        purl = PackageURL.from_string(component["purl"])
        assert (purl.type, purl.name, purl.version) == ("pypi", package.name, str(package.version))
        expected_repository = None if package.index == "https://pypi.org/simple/" else package.index
        assert (purl.qualifiers or {}).get("repository_url") == expected_repository
        assert component["bom-ref"] == component["purl"] == package_url(package)
        files = {(r["comment"], r["url"], r["hashes"][0]["content"]) for r in component["externalReferences"]}
        assert files == {(f.filename, f.url, f.sha256) for f in package.files}
        assert all(
            r["type"] == "distribution" and r["hashes"][0]["alg"] == "SHA-256"
            for r in component["externalReferences"]
        )


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_dependency_graph_is_the_via_edges(sample: str) -> None:
    lock = SAMPLES[sample]()
    document = sbom(lock)
    ref: dict[str, str] = {p.name: package_url(p) for p in lock.packages}
    expected: dict[str, set[str]] = {"lock": set(), **{r: set() for r in ref.values()}}
    for package in lock.packages:
        for parent in package.via:
            if parent == ROOT:
                expected["lock"].add(ref[package.name])
            elif not parent.startswith("-"):
                expected[ref[parent]].add(ref[package.name])
    assert {d["ref"]: set(d["dependsOn"]) for d in document["dependencies"]} == expected
    assert document["metadata"]["component"]["bom-ref"] == "lock"


def test_target_and_digests_are_metadata_properties() -> None:
    lock = SAMPLES["cuda"]()
    properties = [(p["name"], p["value"]) for p in sbom(lock)["metadata"]["properties"]]
    for expected in [
        ("lockd:lock_digest", lock.digest),
        ("lockd:input_digest", lock.input_digest),
        ("lockd:target:platform", "linux_x86_64"),
        ("lockd:target:python", "3.11.0"),
        ("lockd:target:cuda", "cu124"),
        ("lockd:requirement", "torch==2.5.1"),
        ("lockd:constraint", "numpy<2.2"),
    ]:
        assert expected in properties
    host = [p["name"] for p in sbom(SAMPLES["host"]())["metadata"]["properties"]]
    assert "lockd:target:cuda" not in host and "lockd:option:as_of" in host
