"""The secrets the services share among themselves: the action server's token, the token of
Rasa's HTTP API and the password of the launcher's own Redis.

Each comes from its setting in `bot.config` (`ACTION_SERVER_TOKEN`, `RASA_AUTH_TOKEN`,
`SUPPORT_REDIS_PASSWORD`). The launcher fills in the missing ones with :func:`ensure_secrets`: it
generates them once per data directory and keeps them under `<data dir>/secrets/` (directory 0700,
one 0600 file per secret, named like the variable), where `bot.config.load_settings` reads them,
so a restart, a CLI or a service started by hand uses the same ones. The test helpers use
:meth:`InternalSecrets.generate` for per-run ones. Values never go to a log or a command line
(`repr` hides them).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from bot.config import Settings

TOKEN_BYTES = 32  # 256 bits, URL-safe base64: fits a query string and a Redis URL as is

# setting -> file name under <data dir>/secrets/ (the variable's name in lower case, as
# pydantic's secrets_dir expects)
FILES = {
    "action_server_token": "action_server_token",
    "rasa_auth_token": "rasa_auth_token",
    "redis_password": "support_redis_password",
}


def new_secret() -> str:
    """A fresh random secret (256 bits)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True)
class InternalSecrets:
    """The three shared secrets of one stack."""

    action_server_token: str = field(repr=False)
    rasa_auth_token: str = field(repr=False)
    redis_password: str = field(repr=False)

    @classmethod
    def generate(cls) -> InternalSecrets:
        """Fresh ones (a test run, a benchmark)."""
        return cls(new_secret(), new_secret(), new_secret())

    def env(self) -> dict[str, str]:
        """Both tokens as Rasa reads them from the environment (the Redis password travels
        inside `REDIS_URL`). The action server gets only its own, the gateway only Rasa's."""
        return {
            "ACTION_SERVER_TOKEN": self.action_server_token,
            "RASA_AUTH_TOKEN": self.rasa_auth_token,
        }

    def gateway_env(self) -> dict[str, str]:
        """What a gateway needs: the token of Rasa's HTTP API."""
        return {"RASA_AUTH_TOKEN": self.rasa_auth_token}


def ensure_secrets(settings: Settings) -> InternalSecrets:
    """The stack's secrets: each setting that is set wins; a missing one is read from, or else
    generated into, `settings.secrets_dir` (so every restart keeps it)."""
    directory = settings.secrets_dir
    values: dict[str, str] = {}
    for name, filename in FILES.items():
        value = getattr(settings, name)
        if value is not None and value.get_secret_value():
            values[name] = value.get_secret_value()
        else:
            values[name] = _read_or_create(directory, filename)
    return InternalSecrets(**values)


def _read_or_create(directory: Path, filename: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    path = directory / filename
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)
        existing = path.read_text(encoding="utf-8").strip()
        if existing:
            return existing
        path.unlink()  # an empty file (a crash while writing): write a new one
        return _read_or_create(directory, filename)
    value = new_secret()
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(value + "\n")
    return value
