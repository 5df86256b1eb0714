"""`render_conda_lock_yml`: files conda-lock's own parser reads back to the same pins and hashes."""

from __future__ import annotations

from pathlib import Path

import yaml
from conda_lock.lockfile import parse_conda_lock_file
from conda_lock.lockfile.v1.models import Lockfile as LockfileV1
from packaging.utils import NormalizedName
from packaging.version import Version

from lockd.lock import Lock, LockedFile, LockedPackage
from lockd.render.conda_lock import best_file, render_conda_lock_yml
from lockd.target import Target


def test_conda_lock_parses_it_to_the_same_pins_urls_and_hashes(
    sample_lock: tuple[str, Lock], tmp_path: Path
) -> None:
    _, lock = sample_lock
    path = tmp_path / "conda-lock.yml"
    path.write_text(render_conda_lock_yml(lock), encoding="utf-8")
    parsed = parse_conda_lock_file(path)
    platform = lock.target.platform.conda_platform
    assert parsed.metadata.platforms == [platform]
    assert parsed.metadata.content_hash == {platform: lock.input_digest}
    assert parsed.metadata.channels == []
    entries = {p.name: p for p in parsed.package}
    assert sorted(entries) == [p.name for p in lock.packages]
    for locked in lock.packages:
        entry = entries[locked.name]
        chosen = best_file(locked, lock.target)
        assert chosen is not None
        assert (entry.manager, entry.platform, entry.categories) == ("pip", platform, {"main"})
        assert Version(entry.version) == locked.version
        assert (entry.url, entry.hash.sha256) == (chosen.url, chosen.sha256)
        assert sorted(entry.dependencies) == list(locked.dependencies)
        for dep, constraint in entry.dependencies.items():
            assert constraint == f"=={lock.pins[dep]}"


def test_it_is_the_v1_schema_with_version_first(sample_lock: tuple[str, Lock]) -> None:
    _, lock = sample_lock
    text = render_conda_lock_yml(lock)
    data = yaml.safe_load(text)
    assert list(data) == ["version", "metadata", "package"]
    assert data["version"] == 1
    LockfileV1.model_validate({k: v for k, v in data.items() if k != "version"})
    custom = data["metadata"]["custom_metadata"]
    assert custom["lockd-input-digest"] == f"sha256:{lock.input_digest}"
    assert custom.get("lockd-cuda") == lock.target.variant_name


def test_the_best_wheel_for_the_target_is_chosen_else_the_sdist() -> None:
    def wheel(filename: str) -> LockedFile:
        return LockedFile(filename, f"https://x/{filename}", "0" * 64, None, "wheel")

    files = (
        wheel("demo-1.0-py3-none-any.whl"),
        wheel("demo-1.0-cp311-abi3-manylinux_2_17_x86_64.whl"),
        wheel("demo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"),
        wheel("demo-1.0-cp311-cp311-macosx_11_0_arm64.whl"),
        wheel("demo-1.0-cp311-cp311-win_amd64.whl"),
        LockedFile("demo-1.0.tar.gz", "https://x/demo-1.0.tar.gz", "1" * 64, None, "sdist"),
    )
    demo = LockedPackage(
        NormalizedName("demo"), Version("1.0"), "https://x/", files, (), ("-r requirements.in",)
    )

    def chosen(platform: str, python: str = "3.11") -> str | None:
        best = best_file(demo, Target.of(platform, python))
        return None if best is None else best.filename

    assert chosen("linux_x86_64") == "demo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    assert chosen("macos_arm64") == "demo-1.0-cp311-cp311-macosx_11_0_arm64.whl"
    assert chosen("windows_amd64") == "demo-1.0-cp311-cp311-win_amd64.whl"
    assert chosen("linux_aarch64") == "demo-1.0-py3-none-any.whl"
    assert chosen("linux_x86_64", "3.12") == "demo-1.0-cp311-abi3-manylinux_2_17_x86_64.whl"
    sdist_only = LockedPackage(NormalizedName("demo"), Version("1.0"), "https://x/", files[-1:], (), ())
    best = best_file(sdist_only, Target.of("linux_aarch64", "3.11"))
    assert best is not None and best.kind == "sdist"


def _with_only(lock: Lock, package: LockedPackage) -> Lock:
    """`lock`'s input, target and plan with `package` as its one pin."""
    return Lock.build(
        input_digest="0" * 64,
        target=lock.target,
        plan=lock.plan,
        requirements=lock.requirements,
        constraints=lock.constraints,
        options=lock.options,
        packages=[package],
    )


def test_yaml_lookalike_versions_stay_strings(sample_lock: tuple[str, Lock], tmp_path: Path) -> None:
    _, lock = sample_lock
    first = lock.packages[0]
    odd = LockedPackage(
        first.name, Version("1.0"), first.index, first.files, (), first.via, first.requires_python
    )
    tweaked = _with_only(lock, odd)
    data = yaml.safe_load(render_conda_lock_yml(tweaked))
    assert data["package"][0]["version"] == "1.0"
    assert data["metadata"]["content_hash"] == {lock.target.platform.conda_platform: "0" * 64}


def _pure_python(lock: Lock) -> str:
    """What the renderer wrote before it used libyaml: PyYAML's own emitter, same options."""
    from lockd.render import conda_lock  # noqa: PLC0415  (its private document builder)

    header = render_conda_lock_yml(lock).split("version: 1\n", 1)[0]
    body = yaml.safe_dump(
        conda_lock._document(lock),
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=10_000,
    )
    return header + body


def test_libyaml_writes_the_bytes_pyyaml_wrote(sample_lock: tuple[str, Lock]) -> None:
    _, lock = sample_lock
    assert render_conda_lock_yml(lock) == _pure_python(lock)


def test_text_libyaml_would_write_differently_goes_through_pyyaml(sample_lock: tuple[str, Lock]) -> None:
    from lockd.render.conda_lock import _libyaml_safe  # noqa: PLC0415

    assert _libyaml_safe({"a": ["b", 1, True], "c": {"d": ""}})
    assert not _libyaml_safe({"a": "\u2028"})  # escaped one way by libyaml, another by PyYAML
    assert not _libyaml_safe({"": "x"})  # an empty key: `? ''` against `'':`
    assert not _libyaml_safe({"k" * 129: "x"})  # PyYAML's long keys are complex keys
    assert not _libyaml_safe({"a": None})
    _, lock = sample_lock
    first = lock.packages[0]
    odd_file = LockedFile(
        first.files[0].filename, "https://x/é\x85/" + first.files[0].filename, "0" * 64, 1, "wheel"
    )
    odd = LockedPackage(first.name, first.version, "https://x/\u2028", (odd_file,), (), first.via)
    tweaked = _with_only(lock, odd)
    assert render_conda_lock_yml(tweaked) == _pure_python(tweaked)
