"""`lockd.index.options`: settings describe a client as values; the client is built from them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lockd.config import InvalidConfiguration, load_settings
from lockd.index import ClientOptions, IndexClient, IndexCredentials


def test_settings_give_the_client_their_limits_and_the_indexes_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOCKD_INDEX_URL", "https://ci-user:s3cret@pypi.internal/simple/")
    monkeypatch.setenv("LOCKD_HTTP_TIMEOUT", "7.5")
    monkeypatch.setenv("LOCKD_HTTP_MAX_CONNECTIONS", "3")
    monkeypatch.setenv("LOCKD_PAGE_TTL", "42")
    settings = load_settings()
    options = settings.client_options()
    assert (options.timeout, options.max_connections, options.page_ttl) == (7.5, 3, 42.0)
    assert options.credentials == settings.index_credentials and options.credentials.hosts == (
        "pypi.internal",
    )
    assert "s3cret" not in repr(options) and "ci-user" not in repr(options)
    with IndexClient.from_options(replace(options, page_ttl=3600.0)) as client:
        assert client.options == replace(options, page_ttl=3600.0)


def test_keyword_arguments_override_single_options() -> None:
    base = ClientOptions(timeout=9.0, page_cache_bytes=1 << 20)
    with IndexClient(base, timeout=2.0, page_ttl=0.0) as client:
        assert client.options == replace(base, timeout=2.0, page_ttl=0.0)
    with IndexClient() as default:
        assert default.options == ClientOptions()
        assert default.options.credentials == IndexCredentials()


_LIMITS = {
    "max_page_bytes": "2097152",
    "max_page_files": "1234",
    "max_compression_ratio": "50",
    "max_metadata_bytes": "65536",
    "max_requires_dist": "77",
    "max_sdist_bytes": "3145728",
    "max_archive_members": "999",
    "max_sdist_member_bytes": "1048576",
    "max_download_bytes": "4194304",
}


def test_every_read_limit_is_a_setting_that_reaches_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings().client_options()
    assert {name: getattr(defaults, name) for name in _LIMITS} == {
        name: getattr(ClientOptions(), name) for name in _LIMITS
    }
    for name, value in _LIMITS.items():
        monkeypatch.setenv(f"LOCKD_{name.upper()}", value)
    options = load_settings().client_options()
    assert {name: str(getattr(options, name)) for name in _LIMITS} == _LIMITS


@pytest.mark.parametrize("name", sorted(_LIMITS))
def test_a_read_limit_must_be_positive(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(f"LOCKD_{name.upper()}", "0")
    with pytest.raises(InvalidConfiguration, match=f"LOCKD_{name.upper()}"):
        load_settings()


def test_the_default_limits_fit_the_largest_real_pages_and_files() -> None:
    """Sizes measured on PyPI (2026): the biggest JSON pages and files lockd must read whole."""
    options = ClientOptions()
    assert options.max_page_bytes >= 48 * 1024 * 1024  # ddtrace's page: ~35 MiB, ~50,000 files
    assert options.max_page_files >= 60_000
    assert options.max_archive_members >= 60_000  # ansible's wheel
    assert options.max_download_bytes >= 4 * 1024**3  # CUDA torch wheels: up to ~2.5 GB
    assert options.max_requires_dist >= 1_000  # apache-airflow: ~800
