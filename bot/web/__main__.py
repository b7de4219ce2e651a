"""Run the gateway: ``python -m bot.web [--host H] [--port P]`` (defaults from bot.config)."""

from __future__ import annotations

import argparse
import logging
import os

from aiohttp import web
from aiohttp.web_log import AccessLogger

from bot import logs
from bot.config import get_settings
from bot.redis_clients import bounded_async_redis
from bot.web.app import create_app
from bot.web.limits import REPEAT


class AccessLog(AccessLogger):
    """aiohttp's access log without the repeats refused from memory (a flood ignoring
    ``Retry-After``: :mod:`bot.web.refusals`); the first refusal, Redis's, is logged."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if not response.get(REPEAT):
            super().log(request, response, time)


def _fast_event_loop() -> None:
    """uvloop when installed (it comes with Rasa's Sanic): a faster asyncio event loop."""
    try:
        import uvloop
    except ImportError:
        return
    uvloop.install()


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m bot.web", description="The web gateway of the support stack."
    )
    parser.add_argument("--host", default=settings.gateway_host)
    parser.add_argument("--port", type=int, default=settings.gateway_port)
    args = parser.parse_args()
    _fast_event_loop()
    logs.configure(logging.INFO)  # JSON lines carrying the conversation id
    # A bounded pool: however many sockets are open, the gateway holds at most this many Redis
    # connections (callers wait for a free one); each is named gateway-<pid> in CLIENT LIST.
    redis = bounded_async_redis(
        settings.gateway_redis_max_connections,
        settings,
        client_name=f"gateway-{os.getpid()}",
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=10,
        health_check_interval=30,
    )
    app = create_app(settings, redis, settings.rasa_replica_urls())
    # The access log shows method, path and status only: never bodies (customer text).
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        access_log_class=AccessLog,
        access_log_format='%a "%r" %s %Tf',
        print=None,
    )


if __name__ == "__main__":
    main()
