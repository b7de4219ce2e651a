"""README command 1's launcher: a stop request while the stack is still starting stops it all; its
Redis wants the password it generated into the data dir."""

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from bot.config import PROJECT_ROOT
from bot.runtime.ports import free_port

pytestmark = pytest.mark.model


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


PORT_SETTINGS = (
    "SUPPORT_REDIS_PORT",
    "ACTION_SERVER_PORT",
    "RASA_PORT",
    "GATEWAY_PORT",
    "EVENT_SINK_PORT",
)


def launched_ports(env: dict[str, str]) -> list[int]:
    """The ports a launcher started with `launcher_env` listens on."""
    return [int(env[name]) for name in PORT_SETTINGS]


def launcher_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a launcher on free ports with its own data dir (and its own Redis)."""
    ports = {name: free_port() for name in PORT_SETTINGS}
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env |= {key: str(port) for key, port in ports.items()}
    return env | {
        "SUPPORT_DATA_DIR": str(data_dir),
        "RASA_URL": f"http://127.0.0.1:{ports['RASA_PORT']}",
        "EVENTS_DB_URL": f"sqlite:///{data_dir / 'events.db'}",
        **extra,
    }


def test_sigterm_while_rasa_starts_stops_every_service_already_started(
    trained_model: Path, tmp_path: Path
) -> None:
    env = launcher_env(tmp_path)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "bot.runtime.launcher"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        seen = []
        for line in launcher.stdout:  # Redis and the action server are up once Rasa starts
            seen.append(line)
            if line.startswith("rasa: starting"):
                break
        assert any(line.startswith("rasa: starting") for line in seen), "".join(seen)
        assert _listening(int(env["SUPPORT_REDIS_PORT"]))
        assert _listening(int(env["ACTION_SERVER_PORT"]))
        # its Redis has the password generated into the data dir, and wants it
        password = (tmp_path / "secrets" / "support_redis_password").read_text().strip()
        assert (
            stat.S_IMODE((tmp_path / "secrets" / "support_redis_password").stat().st_mode) == 0o600
        )
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=int(env["SUPPORT_REDIS_PORT"])).ping()
        assert redis.Redis(port=int(env["SUPPORT_REDIS_PORT"]), password=password).ping()
        assert password not in "".join(seen)
        launcher.send_signal(signal.SIGTERM)
        rest, _ = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 0, rest
    assert "stopped." in rest
    assert not any(_listening(port) for port in launched_ports(env))
    assert _processes_of(tmp_path) == []  # none left behind, not even one not yet listening


def _processes_of(data_dir: Path) -> list[int]:
    """Live processes started for this data dir (it is in their environment)."""
    marker = f"SUPPORT_DATA_DIR={data_dir}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours
            continue
    return found
