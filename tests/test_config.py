"""Settings come from LOCKD_* variables, have safe defaults, and fail fast naming the variable;
index credentials are split off the index URLs here, once."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockd.config import DEFAULT_DATABASE_URL, InvalidConfiguration, load_settings, setting_names
from lockd.intake import build_request


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


@pytest.mark.parametrize(("value", "expected"), [(None, 128 * 1024), ("1048576", 1024 * 1024), ("0", None)])
def test_the_page_worker_threshold_reaches_the_index_client(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: int | None
) -> None:
    if value is None:
        monkeypatch.delenv("LOCKD_PAGE_WORKER_FROM", raising=False)
    else:
        monkeypatch.setenv("LOCKD_PAGE_WORKER_FROM", value)
    assert load_settings().client_options().page_worker_from == expected  # 0: no child process


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOCKD_PAGE_WORKER_FROM", "-1"),
        ("LOCKD_DATABASE_URL", "mysql://x"),
        ("LOCKD_INDEX_URL", "ftp://mirror/simple"),
        ("LOCKD_MAX_BODY_BYTES", "0"),
        ("LOCKD_RESOLVE_TIMEOUT", "soon"),
        ("LOCKD_LOG_LEVEL", "chatty"),
        ("LOCKD_ANONYMOUS_READ", "perhaps"),
        ("LOCKD_WEBHOOK_URL", "file:///etc/passwd"),
    ],
)
def test_bad_values_fail_fast_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidConfiguration) as caught:
        load_settings()
    assert name in caught.value.message


def test_index_credentials_are_split_off_the_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKD_INDEX_URL", "https://ci-user:s3cr%40t@pypi.internal/simple/")
    monkeypatch.setenv("LOCKD_PYTORCH_INDEX_URL", "https://t0ken@torch.internal:8443/whl")
    settings = load_settings()
    assert settings.index_url == "https://pypi.internal/simple/"
    assert settings.pytorch_index_url == "https://torch.internal:8443/whl"
    assert settings.index_credentials.hosts == ("pypi.internal", "torch.internal:8443")
    default = settings.index_credentials.for_url("https://pypi.internal/packages/idna-3.10-py3-none-any.whl")
    torch = settings.index_credentials.for_url("https://torch.internal:8443/whl/cu124/torch/")
    assert default is not None and (default.username, default.password) == ("ci-user", "s3cr@t")
    assert torch is not None and (torch.username, torch.password) == ("t0ken", "")
    for shown in (repr(settings), str(settings.as_dict()), repr(settings.index_credentials)):
        assert "s3cr" not in shown and "ci-user" not in shown and "t0ken" not in shown


def test_cli_index_urls_bring_their_own_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCKD_INDEX_URL", "https://env-user:env-pw@pypi.internal/simple/")
    monkeypatch.setenv("LOCKD_PYTORCH_INDEX_URL", "https://torch-user:torch-pw@torch.internal/whl")
    settings = load_settings().with_index_urls(index_url="https://cli-user:cli-pw@mirror.internal/simple/")
    assert settings.index_url == "https://mirror.internal/simple/"
    assert settings.index_credentials.hosts == (
        "mirror.internal",
        "torch.internal",
    )  # pypi.internal's went with its URL
    torch = settings.index_credentials.for_url("https://torch.internal/whl/cu124/")
    assert torch is not None and torch.password == "torch-pw"
    plain = settings.with_index_urls(pytorch_index_url="https://torch.internal/whl")
    assert plain.index_credentials.hosts == ("mirror.internal",)


def test_a_changed_password_changes_no_input_digest() -> None:
    def digest(userinfo: str) -> str:
        settings = load_settings(
            database_url="sqlite://",
            index_url=f"https://{userinfo}pypi.internal/simple/",
            pytorch_index_url=f"https://{userinfo}pypi.internal/whl",
        )
        request = build_request(
            requirements="torch==2.5.1\n",
            target={"platform": "linux_x86_64", "python": "3.11", "cuda": "cu124"},
            index_plan=settings.index_plan,
        )
        assert "@" not in request.canonical_bytes().decode()
        return request.digest

    assert digest("ci:old-password@") == digest("ci:new-password@") == digest("other-token@") == digest("")


def test_index_url_errors_never_echo_the_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("ftp://ci:s3cret@mirror/simple/", "https://ci:s3cret@mirror:port/simple/"):
        monkeypatch.setenv("LOCKD_INDEX_URL", value)
        with pytest.raises(InvalidConfiguration) as caught:
            load_settings()
        assert "LOCKD_INDEX_URL" in caught.value.message
        assert "s3cret" not in str(caught.value) + repr(caught.value.context)


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [f"LOCKD_{name.upper()}" for name in setting_names() if f"`LOCKD_{name.upper()}`" not in readme]
    assert missing == [], "add these to README.md's Configuration table"
