"""Settings come from LOCKD_* variables, have safe defaults, and fail fast naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockd.config import DEFAULT_DATABASE_URL, InvalidConfiguration, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOCKD_DATABASE_URL", "LOCKD_INDEX_URL", "LOCKD_MAX_BODY_BYTES", "LOCKD_ANONYMOUS_READ"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.sqlite_path == Path("./var/lockd.db")
    assert settings.index_url == "https://pypi.org/simple/"
    assert settings.pytorch_index_url == "https://download.pytorch.org/whl"
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.anonymous_read is True
    assert settings.drift_interval is None
    assert settings.drift_cron is None
    assert "torch" in settings.torch_family_names


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKD_DATABASE_URL", "postgresql+psycopg://lockd@db/lockd")
    monkeypatch.setenv("LOCKD_RESOLVE_TIMEOUT", "7.5")
    monkeypatch.setenv("LOCKD_ANONYMOUS_READ", "false")
    monkeypatch.setenv("LOCKD_TORCH_FAMILY", "torch, xformers")
    monkeypatch.setenv("LOCKD_LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.sqlite_path is None
    assert settings.resolve_timeout == 7.5
    assert settings.anonymous_read is False
    assert settings.torch_family_names == ("torch", "xformers")
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOCKD_DATABASE_URL", "mysql://x"),
        ("LOCKD_INDEX_URL", "ftp://mirror/simple"),
        ("LOCKD_MAX_BODY_BYTES", "0"),
        ("LOCKD_RESOLVE_TIMEOUT", "soon"),
        ("LOCKD_LOG_LEVEL", "chatty"),
        ("LOCKD_ANONYMOUS_READ", "perhaps"),
        ("LOCKD_WEBHOOK_URL", "file:///etc/passwd"),
    ],
)
def test_bad_values_fail_fast_naming_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidConfiguration) as caught:
        load_settings()
    assert name in caught.value.message
