"""Supervision and replicas on real processes: a service killed with SIGKILL comes back while the
others keep running; a crash loop makes the supervisor give up and stop everything; the launcher
with two Rasa replicas and two gateways answers a customer through HAProxy, restarts a killed
gateway, and stops every process on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from bot.config import PROJECT_ROOT
from bot.runtime.internal_secrets import InternalSecrets
from bot.runtime.ports import free_port, free_run
from bot.runtime.redis_server import RedisServer
from bot.runtime.services import Service, action_server
from bot.runtime.supervisor import GaveUp, RedisUnit, RestartPolicy, Supervisor
from tests.leftovers import listening_ports
from tests.runtime.test_launcher import _listening, _processes_of, launched_ports, launcher_env

FAST = RestartPolicy(backoff_initial=0.1, backoff_max=1.0, poll_interval=0.1)


def _until(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[tuple[Supervisor, RedisServer, Service]]:
    """A Redis (AOF always, password) and an action server under a supervisor in a thread."""
    server = RedisServer(
        data_dir=tmp_path / "redis", appendonly=True, appendfsync="always", password="pw-test"
    )
    actions = action_server(
        free_port(),
        tmp_path / "logs",
        {"REDIS_URL": "redis://127.0.0.1:1/0", "SUPPORT_DATA_DIR": str(tmp_path)},
        secrets=InternalSecrets.generate(),
    )
    server.start()
    supervisor = Supervisor([RedisUnit(server), actions], FAST)
    thread = threading.Thread(target=supervisor.run, daemon=True)
    try:
        actions.start()
        actions.wait_healthy(timeout=120)
        thread.start()
        yield supervisor, server, actions
    finally:
        supervisor.stop()
        if thread.is_alive():
            thread.join(timeout=30)
        actions.stop()
        server.stop_keep_data()


def test_a_service_killed_with_sigkill_is_restarted_and_the_others_keep_their_pids(
    supervised: tuple[Supervisor, RedisServer, Service],
) -> None:
    supervisor, server, actions = supervised
    client = redis.Redis(port=server.port, password="pw-test")
    client.set("kept", "yes")
    redis_pid, actions_pid = server.pid, actions.pid

    os.kill(redis_pid, signal.SIGKILL)
    _until(lambda: supervisor.restarts("redis") == 1 and server.ping(), "redis is back")
    assert server.pid != redis_pid
    assert client.get("kept") == b"yes"  # same port, same password, data from the AOF
    assert actions.pid == actions_pid and actions.running()

    redis_pid = server.pid
    os.killpg(actions_pid, signal.SIGKILL)
    _until(
        lambda: supervisor.restarts("action server") == 1 and actions.healthy(),
        "the action server is healthy again",
    )
    assert actions.pid != actions_pid
    assert server.pid == redis_pid
    client.close()


def test_a_service_that_keeps_crashing_makes_the_supervisor_give_up_and_stop_everything(
    tmp_path: Path,
) -> None:
    server = RedisServer(data_dir=tmp_path / "redis")
    crasher = Service(
        name="crasher",
        command=[sys.executable, "-c", "import sys; sys.exit(3)"],
        health_url="http://127.0.0.1:9/",
        log_path=tmp_path / "crasher.log",
    )
    server.start()
    try:
        crasher.start()
        policy = RestartPolicy(
            backoff_initial=0.05,
            backoff_max=0.2,
            max_crashes=3,
            crash_window=60,
            poll_interval=0.05,
        )
        supervisor = Supervisor([RedisUnit(server), crasher], policy)
        with pytest.raises(GaveUp, match="crasher crashed 3 times"):
            supervisor.run()
        assert supervisor.restarts("crasher") == 2
        assert not server.running() and not _listening(server.port)
    finally:
        server.stop_keep_data()
        crasher.stop()


def _post(url: str, body: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def _pid_listening_on(data_dir: Path, port: int) -> int | None:
    """The process of this data dir listening on `port` (found by its environment; redis-server
    overwrites its environment with its process title: ask it with INFO instead)."""
    password_file = data_dir / "secrets" / "support_redis_password"
    try:
        client = redis.Redis(
            port=port, password=password_file.read_text().strip(), socket_timeout=5
        )
        with client:
            return int(client.info("server")["process_id"])
    except (redis.RedisError, OSError):
        pass
    return next((p for p in _processes_of(data_dir) if port in listening_ports(p)), None)


def _stop(launcher: subprocess.Popen[str]) -> None:
    """After a failure: SIGTERM first, so the launcher stops its children (each in a session of
    its own, which a SIGKILL of the launcher would leave running)."""
    if launcher.poll() is None:
        launcher.send_signal(signal.SIGTERM)
        try:
            launcher.wait(timeout=120)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()


class _Output:
    """The launcher's stdout, read by a thread so the test can wait for lines."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def all(self) -> str:
        """Everything, once the launcher has exited and its stdout is read to the end."""
        self._thread.join(timeout=30)
        return self.text()

    def wait_for(self, fragment: str, process: subprocess.Popen[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while fragment not in self.text():
            assert process.poll() is None, self.text()
            assert time.monotonic() < deadline, f"no {fragment!r} in:\n{self.text()}"
            time.sleep(0.2)


@pytest.mark.model
def test_launcher_with_two_rasa_and_two_gateways_answers_through_haproxy_and_stops_on_sigterm(
    trained_model: Path, tmp_path: Path
) -> None:
    rasa_port, gateway_port = free_run(2), free_run(3)
    ports = {
        "SUPPORT_REDIS_PORT": free_port(),
        "ACTION_SERVER_PORT": free_port(),
        "EVENT_SINK_PORT": free_port(),
        "RASA_PORT": rasa_port,
        "GATEWAY_PORT": gateway_port,
    }
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env |= {key: str(port) for key, port in ports.items()}
    env |= {
        "SUPPORT_DATA_DIR": str(tmp_path),
        "RASA_URL": f"http://127.0.0.1:{rasa_port}",
        "EVENTS_DB_URL": f"sqlite:///{tmp_path / 'events.db'}",
    }
    launcher = subprocess.Popen(
        [sys.executable, "-m", "bot.runtime.launcher", "--rasa", "2", "--gateways", "2"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = _Output(launcher)
    all_ports = [*ports.values(), rasa_port + 1, gateway_port + 1, gateway_port + 2]
    try:
        output.wait_for("The support stack is running", launcher, timeout=600)
        for port in all_ports:
            assert _listening(port), (port, output.text())
        # HAProxy in front: a customer's message gets a bot answer through it
        base = f"http://127.0.0.1:{gateway_port}"
        conversation = _post(f"{base}/api/conversations", {})
        reply = _post(
            f"{base}/api/conversations/{conversation['conversation_id']}/messages",
            {"text": "hello"},
            conversation["token"],
        )
        assert any(m["from"] == "bot" for m in reply["messages"]), reply

        # SIGKILL the first gateway: it is restarted, everything else keeps its pid
        before = {port: _pid_listening_on(tmp_path, port) for port in all_ports}
        assert all(before.values()), before
        os.killpg(before[gateway_port + 1], signal.SIGKILL)
        output.wait_for("gateway 1 is healthy again", launcher, timeout=120)
        after = {port: _pid_listening_on(tmp_path, port) for port in all_ports}
        assert after[gateway_port + 1] not in (None, before[gateway_port + 1])
        assert {p: v for p, v in after.items() if p != gateway_port + 1} == {
            p: v for p, v in before.items() if p != gateway_port + 1
        }
        assert "gateway 1 stopped unexpectedly" in (tmp_path / "logs" / "launcher.log").read_text()

        launcher.send_signal(signal.SIGTERM)
        launcher.wait(timeout=120)
    finally:
        _stop(launcher)
    assert launcher.returncode == 0, output.all()
    assert not any(_listening(port) for port in all_ports)
    assert _processes_of(tmp_path) == []


@pytest.mark.model
def test_launcher_gives_up_after_repeated_crashes_and_exits_non_zero_with_nothing_left(
    trained_model: Path, tmp_path: Path
) -> None:
    env = launcher_env(
        tmp_path, SUPERVISOR_MAX_CRASHES="2", SUPERVISOR_BACKOFF_INITIAL_SECONDS="0.2"
    )
    launcher = subprocess.Popen(
        [sys.executable, "-m", "bot.runtime.launcher"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = _Output(launcher)
    try:
        output.wait_for("The support stack is running", launcher, timeout=600)
        gateway = _pid_listening_on(tmp_path, int(env["GATEWAY_PORT"]))
        assert gateway is not None
        os.killpg(gateway, signal.SIGKILL)  # crash 1: restarted
        output.wait_for("gateway is healthy again", launcher, timeout=120)
        gateway = _pid_listening_on(tmp_path, int(env["GATEWAY_PORT"]))
        assert gateway is not None
        os.killpg(gateway, signal.SIGKILL)  # crash 2 within the window: give up
        launcher.wait(timeout=120)
    finally:
        _stop(launcher)
    assert launcher.returncode == 3, output.all()
    assert "giving up and stopping everything" in output.all()
    assert not any(_listening(port) for port in launched_ports(env))
    assert _processes_of(tmp_path) == []
