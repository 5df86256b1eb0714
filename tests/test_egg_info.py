"""requires.txt sections to Requires-Dist lines, as setuptools means them."""

from __future__ import annotations

import pytest

from lockd.egg_info import RequiresTxtError, core_metadata, requires_dist

REQUIRES_TXT = """six>=1.9
typing_extensions; python_version < "3.8"

[:sys_platform == "win32"]
colorama

[test]
pytest>=3
mock; python_version<"3.3"

[Crypto:python_version >= "3"]
pycryptodome
"""


def test_sections_become_extras_and_markers() -> None:
    assert requires_dist(REQUIRES_TXT) == [
        "six>=1.9",
        'typing_extensions; python_version < "3.8"',
        'colorama; sys_platform == "win32"',
        'pytest>=3; extra == "test"',
        'mock; (python_version < "3.3") and extra == "test"',
        'pycryptodome; (python_version >= "3") and extra == "crypto"',
    ]


def test_an_empty_file_has_no_dependencies() -> None:
    assert requires_dist("\n# nothing\n") == []


@pytest.mark.parametrize("text", ["six>=", "[test", '[:python_version >> "3"]\nsix'])
def test_what_setuptools_never_writes_is_refused(text: str) -> None:
    with pytest.raises(RequiresTxtError):
        requires_dist(text)


def test_core_metadata_is_stamped_with_its_source() -> None:
    document = core_metadata(
        name="promise",
        version="2.3",
        requires=["six"],
        requires_python=">=3.6",
        source="egg-info",
        source_header="Lockd-Metadata-Source",
    )
    assert document == (
        b"Metadata-Version: 2.1\nName: promise\nVersion: 2.3\nRequires-Python: >=3.6\n"
        b"Requires-Dist: six\nLockd-Metadata-Source: egg-info\n"
    )
