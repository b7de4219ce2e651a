"""The end-of-run check finds a process the run left behind, with its listening port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid

from tests.leftovers import MARKER_VAR, listening_ports, marked_pids


def test_a_marked_process_that_listens_is_found_with_its_port() -> None:
    marker = uuid.uuid4().hex
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, time; s = socket.socket(); "
            f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)",
        ],
        env={MARKER_VAR: marker},
        start_new_session=True,
    )
    try:
        for _ in range(100):
            if listening_ports(child.pid):
                break
            time.sleep(0.05)
        assert marked_pids(marker) == [child.pid]
        assert listening_ports(child.pid) == [port]
    finally:
        child.kill()
        child.wait()
    assert marked_pids(marker) == []
