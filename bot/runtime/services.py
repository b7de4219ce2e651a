"""Child processes of the stack: start one, wait until it is healthy, stop it cleanly.

Each service logs to its own file. Used by the launcher and by the test fixtures that need a
real Rasa server or action server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from bot.config import PROJECT_ROOT, get_settings
from bot.runtime.internal_secrets import InternalSecrets
from bot.runtime.ports import free_port


class ServiceError(RuntimeError):
    """A service failed to start or became unhealthy."""


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


@dataclass
class Service:
    """One long-running child process with a health URL and its own log file."""

    name: str
    command: list[str]
    health_url: str = field(repr=False)  # may carry a token
    log_path: Path
    env: dict[str, str] = field(default_factory=dict, repr=False)  # carries the secrets
    process: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        env = {
            **os.environ,
            "RASA_TELEMETRY_ENABLED": "false",  # no calls home: this machine has no internet
            **self.env,
            "PYTHONPATH": str(PROJECT_ROOT),
        }
        self.process = subprocess.Popen(
            self.command,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the launcher, which stops children in order
        )
        log.close()

    def wait_healthy(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with code {self.process.returncode}; see {self.log_path}"
                )
            if _healthy(self.health_url):
                return
            time.sleep(0.5)
        raise ServiceError(f"{self.name} not healthy after {timeout:.0f} s; see {self.log_path}")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        """True when its health URL answers 2xx now."""
        return _healthy(self.health_url)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def stop(self, timeout: float = 15.0) -> None:
        if not self.running():
            return
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def action_server(
    port: int,
    log_dir: Path,
    env: dict[str, str] | None = None,
    *,
    secrets: InternalSecrets,
    host: str = "127.0.0.1",
) -> Service:
    """The action server serving the `actions` package on `host` (loopback by default); every
    call but the health check needs `secrets.action_server_token` (bot.runtime.action_server)."""
    return Service(
        name="action server",
        command=[
            sys.executable,
            "-m",
            "bot.runtime.action_server",
            "--actions",
            "actions",
            "--port",
            str(port),
            "--interface",
            host,
        ],
        health_url=f"http://127.0.0.1:{port}/health",
        log_path=log_dir / "actions.log",
        env={**(env or {}), "ACTION_SERVER_TOKEN": secrets.action_server_token},
    )


def rasa_server(
    port: int,
    model: Path,
    action_url: str,
    log_dir: Path,
    env: dict[str, str] | None = None,
    *,
    secrets: InternalSecrets,
    host: str = "127.0.0.1",
) -> Service:
    """Rasa with the REST channel and its HTTP API (behind `secrets.rasa_auth_token`) on `host`
    (loopback by default), calling the action server at `action_url` with its token; started
    through the project's entry point (bot.runtime.rasa_server), which patches Rasa first."""
    token = urlencode({"token": secrets.rasa_auth_token})
    return Service(
        name="rasa",
        command=[
            sys.executable,
            "-m",
            "bot.runtime.rasa_server",  # patches, then `rasa` with --auth-token from RASA_AUTH_TOKEN
            "run",
            "--enable-api",
            "--model",
            str(model),
            "--endpoints",
            "endpoints.yml",
            "--credentials",
            "credentials.yml",
            "--port",
            str(port),
            "--interface",
            host,
        ],
        health_url=f"http://127.0.0.1:{port}/status?{token}",
        log_path=log_dir / "rasa.log",
        env={
            "EVENTS_DB_URL": events_db_url(),
            **RASA_THREADS_ENV,
            **(env or {}),
            **secrets.env(),
            "ACTION_SERVER_URL": action_url,
        },
    )


# Rasa's numeric libraries on one thread each. The NLU's numpy products are tiny (one message's
# 1 x 384 embedding against the classifier's weights): with OpenBLAS's default pool (a thread per
# core) the main thread handed them out and waited for the workers, which on a busy machine cost
# more than the product (docs/performance.md, third round). The encoder's onnxruntime session has
# its own setting (bot.nlu.sentence_encoder.THREADS).
RASA_THREADS_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def events_db_url() -> str:
    """The SQL event store the event sink writes and analytics reads: EVENTS_DB_URL or
    var/events.db."""
    settings = get_settings()
    return settings.events_db_url or f"sqlite:///{settings.data_dir / 'events.db'}"


def event_sink_service(port: int, log_dir: Path, env: dict[str, str] | None = None) -> Service:
    """The event sink (`python -m bot.analytics.event_sink`): Rasa's events from the Redis stream
    into the SQL event store (EVENTS_DB_URL). Needs REDIS_URL in `env` or the environment."""
    return Service(
        name="event sink",
        command=[sys.executable, "-m", "bot.analytics.event_sink", "--port", str(port)],
        health_url=f"http://127.0.0.1:{port}/health",
        log_path=log_dir / "event_sink.log",
        env={"EVENTS_DB_URL": events_db_url(), **(env or {})},
    )


def gateway_service(
    host: str, port: int, log_dir: Path, env: dict[str, str] | None = None, name: str = "gateway"
) -> Service:
    """The web gateway (`python -m bot.web`)."""
    return Service(
        name=name,
        command=[sys.executable, "-m", "bot.web", "--host", host, "--port", str(port)],
        health_url=f"http://127.0.0.1:{port}/healthz",
        log_path=log_dir / f"{name}.log",
        env=env or {},
    )


@contextmanager
def running(services: Sequence[Service], timeout: float = 300.0) -> Iterator[None]:
    """Start the services, wait until all are healthy, and stop them in reverse order on exit."""
    started: list[Service] = []
    try:
        for service in services:
            service.start()
            started.append(service)
        for service in services:
            service.wait_healthy(timeout=timeout)
        yield
    finally:
        for service in reversed(started):
            service.stop()


@dataclass(frozen=True)
class BotServices:
    """A running action server and Rasa, and the secrets that open them."""

    rasa_url: str
    action_url: str
    secrets: InternalSecrets

    @property
    def rasa_token(self) -> str:
        """The token of Rasa's HTTP API (query parameter ``token``)."""
        return self.secrets.rasa_auth_token

    def client_env(self) -> dict[str, str]:
        """What a gateway needs to reach this Rasa (`RASA_URL`, `RASA_AUTH_TOKEN`)."""
        return {"RASA_URL": self.rasa_url, "RASA_AUTH_TOKEN": self.rasa_token}


@contextmanager
def bot_services(
    model: Path, log_dir: Path, env: dict[str, str], secrets: InternalSecrets | None = None
) -> Iterator[BotServices]:
    """The action server, the event sink and Rasa with `model` on free loopback ports, healthy,
    with `secrets` (fresh ones for this run unless given). `env` must name the Redis (REDIS_URL)
    Rasa's events go to."""
    secrets = secrets or InternalSecrets.generate()
    actions_port, rasa_port, sink_port = free_port(), free_port(), free_port()
    action_url = f"http://127.0.0.1:{actions_port}/webhook"
    services = [
        action_server(actions_port, log_dir, env, secrets=secrets),
        event_sink_service(sink_port, log_dir, env),
        rasa_server(rasa_port, model, action_url, log_dir, env, secrets=secrets),
    ]
    with running(services):
        yield BotServices(f"http://127.0.0.1:{rasa_port}", action_url, secrets)
