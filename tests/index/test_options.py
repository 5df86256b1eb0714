"""`lockd.index.options`: settings describe a client as values; the client is built from them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lockd.config import load_settings
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
