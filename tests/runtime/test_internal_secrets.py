"""The services' shared secrets (bot.runtime.internal_secrets, bot.config): generated once per data
directory, kept private, read back by every process, and never shown."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bot.config import Settings, load_settings, redact_url
from bot.runtime.internal_secrets import FILES, InternalSecrets, ensure_secrets

SECRET_VARIABLES = ("ACTION_SERVER_TOKEN", "RASA_AUTH_TOKEN", "SUPPORT_REDIS_PASSWORD", "REDIS_URL")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in SECRET_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SUPPORT_DATA_DIR", str(tmp_path))
    return tmp_path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_generated_once_per_data_dir_into_private_files(data_dir):
    first = ensure_secrets(Settings())
    again = ensure_secrets(Settings())
    assert first == again
    assert len({first.action_server_token, first.rasa_auth_token, first.redis_password}) == 3
    assert mode(data_dir / "secrets") == 0o700
    for filename in FILES.values():
        assert mode(data_dir / "secrets" / filename) == 0o600


def test_a_secret_given_in_the_environment_wins_and_is_not_written(data_dir, monkeypatch):
    monkeypatch.setenv("RASA_AUTH_TOKEN", "from-the-environment")
    secrets = ensure_secrets(Settings())
    assert secrets.rasa_auth_token == "from-the-environment"
    assert not (data_dir / "secrets" / "rasa_auth_token").exists()


def test_every_process_reads_the_generated_secrets_back_through_the_settings(data_dir):
    secrets = ensure_secrets(Settings())
    settings = load_settings()
    assert settings.action_server_token.get_secret_value() == secrets.action_server_token
    assert settings.rasa_auth_token.get_secret_value() == secrets.rasa_auth_token
    assert settings.redis_address() == (
        f"redis://:{secrets.redis_password}@127.0.0.1:{settings.redis_port}/0"
    )
    assert secrets.redis_password not in repr(settings)


def test_the_secrets_never_show_in_a_repr_or_a_redacted_url():
    secrets = InternalSecrets.generate()
    assert secrets.rasa_auth_token not in repr(secrets)
    url = f"redis://:{secrets.redis_password}@127.0.0.1:6390/0"
    assert redact_url(url) == "redis://:***@127.0.0.1:6390/0"
    assert redact_url("redis://127.0.0.1:6390/0") == "redis://127.0.0.1:6390/0"
