"""Start the whole stack with one command: Redis, the action servers, Rasa and the gateways.

Uses `REDIS_URL` when given, else starts its own redis-server with AOF (data under
`var/redis`) and a password. The services' shared secrets (action server token, Rasa API token,
Redis password) come from bot.config or are generated once under `var/secrets/`
(bot.runtime.internal_secrets) and reach the services through their environment. Trains the Rasa
model if it is missing or stale, starts each service (the action servers, the event sink that
stores Rasa's events in SQL, Rasa, the gateways) with its own log file under `var/logs`,
waits until each is healthy and prints where to go.

Replicas (`--rasa N --actions M --gateways K`, or RASA_REPLICAS, ACTION_SERVER_REPLICAS,
GATEWAY_REPLICAS): replica i of a kind listens on its base port + i (RASA_PORT,
ACTION_SERVER_PORT); Rasa replica i calls action server i mod M; every gateway gets RASA_URLS
listing all Rasa replicas. With more than one gateway, HAProxy (bot.runtime.haproxy) listens on
GATEWAY_PORT and the gateways on GATEWAY_PORT+1 ... GATEWAY_PORT+K.

Then bot.runtime.supervisor watches every process: a crashed one is restarted with backoff while
the others keep running; a crash loop stops everything and the launcher exits with status 3.
Ctrl-C or SIGTERM stops everything cleanly (also during start-up) and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from bot.accounts import prepare_accounts
from bot.config import Settings, get_settings
from bot.runtime.haproxy import haproxy_service, requests_per_ip
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
from bot.runtime.supervisor import GaveUp, RedisUnit, RestartPolicy, Supervisor, Unit
from bot.runtime.training import ensure_model


def _start_redis(
    settings: Settings, secrets: InternalSecrets, stack: ExitStack
) -> tuple[str, RedisServer | None]:
    if settings.redis_url:
        return settings.redis_url, None
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
    return server.url, server


@dataclass(frozen=True)
class Replicas:
    """How many of each service to start (settings, overridden by the command-line flags)."""

    rasa: int = 1
    actions: int = 1
    gateways: int = 1


def _numbered(service: Service, index: int, count: int) -> Service:
    """`service` as replica `index` of `count`: "rasa 2" logging to rasa-2.log (one: unchanged)."""
    if count == 1:
        return service
    log = service.log_path
    return replace(
        service,
        name=f"{service.name} {index + 1}",
        log_path=log.with_name(f"{log.stem}-{index + 1}{log.suffix}"),
    )


def rasa_urls(settings: Settings, replicas: Replicas) -> list[str]:
    """Where the launcher's Rasa replicas listen: RASA_PORT, RASA_PORT+1, ..."""
    return [f"http://127.0.0.1:{settings.rasa_port + i}" for i in range(replicas.rasa)]


def _services(
    settings: Settings,
    model: Path,
    redis_url: str,
    secrets: InternalSecrets,
    demo: bool,
    replicas: Replicas,
) -> list[Service]:
    """Action servers, the event sink, Rasa replicas, gateways and (more than one gateway) HAProxy, in start
    order. Ports: service i of a kind listens on its base port + i; with HAProxy, HAProxy has
    GATEWAY_PORT and the gateways GATEWAY_PORT+1, +2, ..."""
    log_dir = settings.data_dir / "logs"
    urls = rasa_urls(settings, replicas)
    env = {"REDIS_URL": redis_url, "RASA_URL": urls[0], "RASA_URLS": ",".join(urls)}
    if demo:
        env["SUPPORT_DEMO"] = "1"
    action_ports = [settings.action_server_port + i for i in range(replicas.actions)]
    services = [
        _numbered(
            action_server(port, log_dir, env, secrets=secrets, host=settings.action_server_host),
            i,
            replicas.actions,
        )
        for i, port in enumerate(action_ports)
    ]
    # one event sink: it drains Rasa's event stream for every replica (bot.analytics.event_sink)
    services.append(event_sink_service(settings.event_sink_port, log_dir, env))
    for i in range(replicas.rasa):
        action_url = f"http://127.0.0.1:{action_ports[i % replicas.actions]}/webhook"
        rasa = rasa_server(
            settings.rasa_port + i,
            model,
            action_url,
            log_dir,
            env,
            secrets=secrets,
            host=settings.rasa_host,
        )
        services.append(_numbered(rasa, i, replicas.rasa))
    # the gateway probes the action server (/healthz, and a turn Rasa answered with nothing)
    gateway_env = {
        **env,
        **secrets.gateway_env(),
        "ACTION_SERVER_URL": f"http://127.0.0.1:{action_ports[0]}/webhook",
    }
    if replicas.gateways == 1:
        services.append(
            gateway_service(settings.gateway_host, settings.gateway_port, log_dir, gateway_env)
        )
        return services
    proxies = ",".join(p for p in ("127.0.0.1", settings.trusted_proxies) if p)
    gateway_ports = [settings.gateway_port + 1 + i for i in range(replicas.gateways)]
    balancer = haproxy_service(  # checked first: a missing haproxy stops the start early
        settings.gateway_host,
        settings.gateway_port,
        gateway_ports,
        settings.data_dir,
        log_dir,
        requests_per_ip(settings.rate_limit_requests_per_ip),
        settings.trusted_proxies,
    )
    for i, port in enumerate(gateway_ports):
        gateway = gateway_service(
            "127.0.0.1", port, log_dir, {**gateway_env, "TRUSTED_PROXIES": proxies}
        )
        services.append(_numbered(gateway, i, replicas.gateways))
    services.append(balancer)
    return services


def _print_ready(settings: Settings, account_lines: list[str], rasa: list[str]) -> None:
    base = f"http://{settings.gateway_host}:{settings.gateway_port}"
    print("\nThe support stack is running (Ctrl-C stops it):", flush=True)
    print(f"  customer page:  {base}/")
    print(f"  agent console:  {base}/agent")
    print(f"  dashboard:      {base}/dashboard  (support-lead role)")
    for line in account_lines:
        print(f"  {line}")
    print(
        f"  Rasa HTTP API:  {', '.join(rasa)}  (token: {settings.secrets_dir}/rasa_auth_token"
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


def _log_to(log_path: Path) -> None:
    """The supervisor's restarts and crashes go to stdout and `log_path` (launcher.log)."""
    logger = logging.getLogger("bot.runtime.supervisor")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(log_path)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    to_stdout = logging.StreamHandler(sys.stdout)
    to_stdout.setFormatter(logging.Formatter("supervisor: %(message)s"))
    logger.addHandler(to_file)
    logger.addHandler(to_stdout)


def restart_policy(settings: Settings) -> RestartPolicy:
    return RestartPolicy(
        backoff_initial=settings.supervisor_backoff_initial_seconds,
        backoff_max=settings.supervisor_backoff_max_seconds,
        healthy_reset=settings.supervisor_healthy_reset_seconds,
        max_crashes=settings.supervisor_max_crashes,
        crash_window=settings.supervisor_crash_window_seconds,
    )


def run(settings: Settings, demo: bool = False, replicas: Replicas | None = None) -> int:
    replicas = replicas or Replicas(
        settings.rasa_replicas, settings.action_server_replicas, settings.gateway_replicas
    )
    _log_to(settings.data_dir / "logs" / "launcher.log")
    # handlers first: a stop request during training or start-up still stops what was started
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    with ExitStack() as stack:
        try:
            secrets = ensure_secrets(settings)
            redis_url, redis_server = _start_redis(settings, secrets, stack)
            account_lines = prepare_accounts(redis_url, settings, demo=demo)
            model = ensure_model()
            print(f"model: {model.name}", flush=True)
            services = _services(settings, model, redis_url, secrets, demo, replicas)
            for service in services:
                stack.callback(service.stop)
            for service in services:
                print(f"{service.name}: starting (log {service.log_path})", flush=True)
                with _starting_a_child():
                    service.start()
                service.wait_healthy()
            _print_ready(settings, account_lines, rasa_urls(settings, replicas))
            units: list[Unit] = [RedisUnit(redis_server)] if redis_server else []
            supervisor = Supervisor(
                [*units, *services], restart_policy(settings), starting=_starting_a_child
            )
            supervisor.run()  # returns never; a stop request raises out of it
        except ServiceError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        except GaveUp as error:
            print(f"error: {error}; stopped everything", file=sys.stderr, flush=True)
            return 3
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
    for flag, what in (
        ("--rasa", "Rasa servers"),
        ("--actions", "action servers"),
        ("--gateways", "gateways"),
    ):
        parser.add_argument(
            flag,
            type=_replica_count,
            default=None,
            metavar="N",
            help=f"how many {what} to start (default: from the settings, 1)",
        )
    args = parser.parse_args()
    settings = get_settings()
    replicas = Replicas(
        args.rasa or settings.rasa_replicas,
        args.actions or settings.action_server_replicas,
        args.gateways or settings.gateway_replicas,
    )
    sys.exit(run(settings, demo=args.demo or settings.demo_mode, replicas=replicas))


def _replica_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= count <= 32:
        raise argparse.ArgumentTypeError("give a number from 1 to 32")
    return count


if __name__ == "__main__":
    main()
