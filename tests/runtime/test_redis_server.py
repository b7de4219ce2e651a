"""bot.runtime.redis_server: start on a free port, AOF options, kill and restart, clean stop."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis

from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer, RedisServerError, find_redis_server


def test_start_stop_with_own_temp_dir() -> None:
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        assert client.config_get("appendonly")["appendonly"] == "no"
        data_dir = server.data_dir
        assert data_dir is not None and data_dir.exists()
        client.close()
    assert not server.running()
    assert not data_dir.exists()  # a temporary dir is removed
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
        pass


def test_aof_kill_restart_keeps_data(tmp_path: Path) -> None:
    server = RedisServer(data_dir=tmp_path / "r", appendonly=True, appendfsync="always")
    with server:
        client = redis.Redis.from_url(server.url)
        cfg = client.config_get("append*")
        assert cfg["appendonly"] == "yes" and cfg["appendfsync"] == "always"
        client.set("k", "v")
        pid = server.pid
        server.kill()
        assert not server.running()
        server.restart()
        assert server.pid != pid
        assert redis.Redis.from_url(server.url).get("k") == b"v"
    assert (tmp_path / "r").exists()  # a given data dir is kept


def test_refuses_busy_port_and_bad_options(tmp_path: Path) -> None:
    with RedisServer() as first:
        with pytest.raises(RedisServerError, match="already answers"):
            RedisServer(port=first.port, data_dir=tmp_path).start()
    with pytest.raises(ValueError, match="appendfsync"):
        RedisServer(appendfsync="sometimes")


def test_finds_a_binary_and_free_ports() -> None:
    assert Path(find_redis_server()).exists()
    assert 1024 < free_port() < 65536
