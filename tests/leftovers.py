"""After a test run: no process the run started is still alive, and none of them listens.

`scripts/test.sh` gives pytest a marker in the environment (``SUPPORT_TEST_RUN=<random>``). Every
process the tests start (Redis, Rasa, the action server, gateways, browsers, the launcher) inherits
it, also those started in a session of their own, so after pytest this module finds the survivors
by reading ``/proc/<pid>/environ``, prints each with its listening ports, kills them (their
whole process group) and exits non-zero, green run or not.

    python -m tests.leftovers MARKER
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

MARKER_VAR = "SUPPORT_TEST_RUN"


def marked_pids(marker: str, proc: Path = Path("/proc")) -> list[int]:
    """Processes (other than this one) whose environment carries ``SUPPORT_TEST_RUN=marker``."""
    needle = f"{MARKER_VAR}={marker}".encode()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return sorted(found)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def listening_ports(pid: int) -> list[int]:
    """TCP ports (IPv4 and IPv6) the process listens on."""
    inodes = _socket_inodes(pid)
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:200]


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0]:
        print("usage: python -m tests.leftovers MARKER", file=sys.stderr)
        return 2
    survivors = marked_pids(argv[0])
    if not survivors:
        print("leftovers: no process of the test run is left")
        return 0
    print(f"leftovers: {len(survivors)} process(es) of the test run still alive:", file=sys.stderr)
    for pid in survivors:
        print(f"  pid {pid} ports {listening_ports(pid) or '-'}: {_cmdline(pid)}", file=sys.stderr)
    for pid in survivors:
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    time.sleep(0.5)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
