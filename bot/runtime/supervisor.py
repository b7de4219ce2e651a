"""Keep the stack's services running: restart a crashed one with backoff, give up on a crash loop.

The launcher hands the supervisor its started, healthy services (Redis, the Rasa replicas, the
action servers, the gateways, HAProxy). Every half second the supervisor checks each process:

* one that has exited is restarted after a backoff (``backoff_initial`` doubling up to
  ``backoff_max``), the others keep running untouched; the backoff of a service drops back to
  ``backoff_initial`` once it has been healthy for ``healthy_reset`` seconds;
* a restarted service counts as up again once its health check answers; one that is not healthy
  within ``start_timeout`` is stopped and counted as a crash;
* when one service has crashed ``max_crashes`` times within ``crash_window`` seconds, the
  supervisor logs that it gives up, stops every service (in reverse order) and raises
  :class:`GaveUp`: the launcher then exits non-zero.

Every crash and restart is logged (logger ``bot.runtime.supervisor``; the launcher sends it to
stdout and ``<data dir>/logs/launcher.log``). A restarted Redis keeps its port, password and data
(AOF) because :class:`RedisUnit` restarts the same :class:`RedisServer`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bot.runtime.redis_server import RedisServer

log = logging.getLogger(__name__)


class Unit(Protocol):
    """What the supervisor needs of a service (bot.runtime.services.Service has all of it)."""

    name: str

    def start(self) -> None: ...

    def running(self) -> bool: ...

    def healthy(self) -> bool: ...

    def stop(self) -> None: ...

    @property
    def pid(self) -> int | None: ...

    @property
    def log_path(self) -> Path: ...


class GaveUp(RuntimeError):
    """A service crashed too often within the window; every service has been stopped."""


@dataclass(frozen=True)
class RestartPolicy:
    """How the supervisor restarts (defaults: 0.5 s doubling to 30 s; 5 crashes in 120 s)."""

    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    healthy_reset: float = 60.0
    max_crashes: int = 5
    crash_window: float = 120.0
    start_timeout: float = 180.0
    poll_interval: float = 0.5


@dataclass
class _State:
    unit: Unit
    backoff: float
    crashes: deque[float] = field(default_factory=deque)
    restart_at: float | None = None  # crashed: when to start it again
    starting_since: float | None = None  # restarted, not healthy yet
    healthy_since: float | None = None
    restarts: int = 0


class RedisUnit:
    """The launcher's own Redis as a supervised unit: a restart reuses the same port, password
    and data directory, so the AOF is replayed."""

    name = "redis"

    def __init__(self, server: RedisServer) -> None:
        self.server = server

    def start(self) -> None:
        self.server.stop_keep_data()  # reaps the dead process, closes its pipe
        self.server.start()  # waits for PING (after replaying the AOF)

    def running(self) -> bool:
        return self.server.running()

    def healthy(self) -> bool:
        return self.server.ping()

    def stop(self) -> None:
        self.server.stop_keep_data()

    @property
    def pid(self) -> int | None:
        return self.server.pid

    @property
    def log_path(self) -> Path:
        return self.server.log_path


class Supervisor:
    """Watches `units` (already started) until :meth:`stop` or a stop signal; see the module doc."""

    def __init__(
        self,
        units: Sequence[Unit],
        policy: RestartPolicy | None = None,
        *,
        starting: Callable[[], AbstractContextManager[object]] = nullcontext,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or RestartPolicy()
        now = clock()
        self._states = [
            _State(unit, self.policy.backoff_initial, healthy_since=now) for unit in units
        ]
        self._starting = starting  # the launcher's guard: holds a stop request back during Popen
        self._clock = clock
        self._stop = threading.Event()

    def restarts(self, name: str) -> int:
        """How often the unit called `name` has been restarted."""
        return next(s.restarts for s in self._states if s.unit.name == name)

    def stop(self) -> None:
        """Make :meth:`run` return (from another thread)."""
        self._stop.set()

    def run(self) -> None:
        """Supervise until :meth:`stop`; raises :class:`GaveUp` after a crash loop (everything
        stopped by then). A signal handler's exception (Ctrl-C) passes through."""
        while not self._stop.is_set():
            self.check()
            self._stop.wait(self.policy.poll_interval)

    def check(self) -> None:
        """One round: notice crashes, restart what is due, note what became healthy."""
        for state in self._states:
            self._check_one(state)

    def _check_one(self, state: _State) -> None:
        unit, now = state.unit, self._clock()
        if state.restart_at is not None:
            if now >= state.restart_at:
                state.restart_at = None
                state.restarts += 1
                log.warning("restarting %s (restart %d)", unit.name, state.restarts)
                try:
                    with self._starting():
                        unit.start()
                except (OSError, RuntimeError) as error:  # a failed start is one more crash
                    # (not Exception: the launcher's stop request must pass through)
                    log.warning("%s did not start: %s", unit.name, error)
                    self._crashed(state, now)
                    return
                state.starting_since = now
            return
        if not unit.running():
            self._crashed(state, now)
            return
        if state.starting_since is not None:
            if unit.healthy():
                log.warning(
                    "%s is healthy again (pid %s, after %.1f s)",
                    unit.name,
                    unit.pid,
                    now - state.starting_since,
                )
                state.starting_since, state.healthy_since = None, now
            elif now - state.starting_since > self.policy.start_timeout:
                log.warning("%s not healthy after %.0f s", unit.name, self.policy.start_timeout)
                unit.stop()
                self._crashed(state, now)
            return
        if (
            state.healthy_since is not None
            and now - state.healthy_since >= self.policy.healthy_reset
            and state.backoff != self.policy.backoff_initial
        ):
            state.backoff = self.policy.backoff_initial

    def _crashed(self, state: _State, now: float) -> None:
        unit, policy = state.unit, self.policy
        state.starting_since = state.healthy_since = None
        state.crashes.append(now)
        while state.crashes and now - state.crashes[0] > policy.crash_window:
            state.crashes.popleft()
        if len(state.crashes) >= policy.max_crashes:
            log.error(
                "%s crashed %d times within %.0f s; giving up and stopping everything (see %s)",
                unit.name,
                len(state.crashes),
                policy.crash_window,
                unit.log_path,
            )
            self.stop_all()
            raise GaveUp(
                f"{unit.name} crashed {len(state.crashes)} times in {policy.crash_window:.0f} s"
            )
        delay = state.backoff
        state.backoff = min(state.backoff * 2, policy.backoff_max)
        state.restart_at = now + delay
        log.warning(
            "%s stopped unexpectedly (crash %d within %.0f s); restarting in %.1f s; see %s",
            unit.name,
            len(state.crashes),
            policy.crash_window,
            delay,
            unit.log_path,
        )

    def stop_all(self) -> None:
        """Stop every unit, last started first."""
        for state in reversed(self._states):
            state.unit.stop()
