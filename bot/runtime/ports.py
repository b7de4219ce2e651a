"""Free TCP ports for the servers the launcher, the tests and the benchmarks start."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on `port` now."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def bindable(port: int, host: str = "127.0.0.1") -> bool:
    """Whether `port` could be bound now."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_run(count: int, host: str = "127.0.0.1") -> int:
    """A first port such that it and the `count - 1` following ones are free now (replicas take
    consecutive ports)."""
    for _ in range(50):
        first = free_port(host)
        ports = range(first, first + count)
        if all(not listening(p, host) and bindable(p, host) for p in ports):
            return first
    raise RuntimeError(f"no run of {count} free ports")
