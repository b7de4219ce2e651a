"""Start the whole stack with one command: Redis, the action server, Rasa and the gateway.

Uses `REDIS_URL` when given, else starts its own redis-server with AOF (data under
`var/redis`) and a password. The services' shared secrets (action server token, Rasa API token,
Redis password) come from bot.config or are generated once under `var/secrets/`
(bot.runtime.internal_secrets) and reach the services through their environment. Trains the Rasa model if it is missing or stale, starts each service (the action
server, the event sink that stores Rasa's events in SQL, Rasa, the gateway) with its own
log file under `var/logs`, waits until each is healthy, prints where to go, and stops everything
cleanly on Ctrl-C (or when any service dies).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bot.accounts import prepare_accounts
from bot.config import Settings, get_settings
from bot.runtime.internal_secrets import InternalSecrets, ensure_secrets
from bot.runtime.redis_server import RedisServer
from bot.runtime.services import (
    Service,
    ServiceError,
    action_server,
    event_sink_service,
    gateway_service,
    rasa_server,
)
from bot.runtime.training import ensure_model


def _start_redis(settings: Settings, secrets: InternalSecrets, stack: ExitStack) -> str:
    if settings.redis_url:
        return settings.redis_url
    server = RedisServer(
        port=settings.redis_port,
        data_dir=settings.data_dir / "redis",
        appendonly=True,
        appendfsync="always",
        password=secrets.redis_password,
    )
    stack.callback(server.stop)  # first, so a stop request while it starts still stops it
    with _starting_a_child():
        server.start()
    print(
        f"redis: started {server.display_url} (AOF under {settings.data_dir / 'redis'})",
        flush=True,
    )
    return server.url


def _services(
    settings: Settings, model: Path, redis_url: str, secrets: InternalSecrets, demo: bool
) -> list[Service]:
    log_dir = settings.data_dir / "logs"
    env = {"REDIS_URL": redis_url, "RASA_URL": settings.rasa_url}
    if demo:
        env["SUPPORT_DEMO"] = "1"
    action_url = f"http://127.0.0.1:{settings.action_server_port}/webhook"
    return [
        action_server(
            settings.action_server_port,
            log_dir,
            env,
            secrets=secrets,
            host=settings.action_server_host,
        ),
        event_sink_service(settings.event_sink_port, log_dir, env),
        rasa_server(
            settings.rasa_port,
            model,
            action_url,
            log_dir,
            env,
            secrets=secrets,
            host=settings.rasa_host,
        ),
        gateway_service(
            settings.gateway_host, settings.gateway_port, log_dir, {**env, **secrets.gateway_env()}
        ),
    ]


def _print_ready(settings: Settings, account_lines: list[str]) -> None:
    base = f"http://{settings.gateway_host}:{settings.gateway_port}"
    print("\nThe support stack is running (Ctrl-C stops it):", flush=True)
    print(f"  customer page:  {base}/")
    print(f"  agent console:  {base}/agent")
    print(f"  dashboard:      {base}/dashboard  (support-lead role)")
    for line in account_lines:
        print(f"  {line}")
    print(
        f"  Rasa HTTP API:  {settings.rasa_url}  (token: {settings.secrets_dir}/rasa_auth_token"
        " unless RASA_AUTH_TOKEN is set; REST channel: POST /webhooks/rest/webhook)"
    )
    print("  chat in this terminal:  .venv/bin/python -m bot.runtime.chat")
    print(f"  logs:           {settings.data_dir / 'logs'}", flush=True)


class StopRequested(Exception):
    """Ctrl-C or SIGTERM: stop the stack, also while it is still starting."""


_stop_deferred = False  # True while a child process is being started
_pending_stop: str | None = None


def _request_stop(signum: int, _frame: object) -> None:
    global _pending_stop
    if _stop_deferred:
        _pending_stop = signal.Signals(signum).name
        return
    raise StopRequested(signal.Signals(signum).name)


@contextmanager
def _starting_a_child() -> Iterator[None]:
    """Hold a stop request back while a child process starts: raised inside `Popen` (after the
    fork) or before the child is recorded, it would leave that child running, unstopped."""
    global _stop_deferred
    _stop_deferred = True
    try:
        yield
    finally:
        _stop_deferred = False
    if _pending_stop is not None:
        raise StopRequested(_pending_stop)


def _supervise(services: list[Service]) -> None:
    """Return when a service dies; a stop request raises `StopRequested` out of the sleep."""
    while True:
        for service in services:
            if not service.running():
                print(f"\n{service.name} stopped unexpectedly; see {service.log_path}", flush=True)
                return
        time.sleep(0.5)


def run(settings: Settings, demo: bool = False) -> int:
    # handlers first: a stop request during training or start-up still stops what was started
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    with ExitStack() as stack:
        try:
            secrets = ensure_secrets(settings)
            redis_url = _start_redis(settings, secrets, stack)
            account_lines = prepare_accounts(redis_url, settings, demo=demo)
            model = ensure_model()
            print(f"model: {model.name}", flush=True)
            services = _services(settings, model, redis_url, secrets, demo)
            for service in services:
                stack.callback(service.stop)
            for service in services:
                print(f"{service.name}: starting (log {service.log_path})", flush=True)
                with _starting_a_child():
                    service.start()
                service.wait_healthy()
            _print_ready(settings, account_lines)
            _supervise(services)
        except ServiceError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        except StopRequested:
            pass
        finally:
            # the stack now stops the services: a second request must not cut that short
            _ignore_stop_requests()
        print("\nstopping ...", flush=True)
    print("stopped.")
    return 0


def _ignore_stop_requests() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def main() -> None:
    parser = argparse.ArgumentParser(description="Start the whole support stack.")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="demo mode: seed the demo lead with its published password (never in production)",
    )
    args = parser.parse_args()
    settings = get_settings()
    sys.exit(run(settings, demo=args.demo or settings.demo_mode))


if __name__ == "__main__":
    main()
