"""The gateway's aiohttp application: pages, static files, the HTTP API and WebSockets.

``create_app(settings, redis, rasa_urls)`` builds it; ``python -m bot.web`` runs it. Every error
leaves as JSON (:mod:`bot.web.errors`): handler errors with their 4xx, an unreachable Redis or
Rasa as 503 with a clear message, anything unexpected as a 500 without a trace (the trace goes to
the gateway's log, where messages are masked and never logged in full).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import aiohttp
import redis.exceptions
import yaml
from aiohttp import web
from redis.asyncio import Redis

from bot.analytics import api as analytics_api
from bot.config import Settings
from bot.web import admin_api, agent_api, customer_api, fanout, metrics, typing_relay, websocket
from bot.web.auth import AgentAccounts, ensure_demo_agent
from bot.web.conversations import Conversations
from bot.web.dependencies import Dependencies
from bot.web.desk import Desk
from bot.web.errors import ApiError, error_response
from bot.web.events import ConversationEvents
from bot.web.gateway import GATEWAY, Gateway
from bot.web.inputs import path_ids
from bot.web.limits import LIMITS, Limits
from bot.web.proxy import forwarded_headers, parse_networks
from bot.web.queue_desk import QueueDesk
from bot.web.rasa_client import RasaUnavailable
from bot.web.rasa_ring import RasaRing
from bot.web.security import (
    add_cors_headers,
    add_security_headers,
    origin_allowed,
    parse_origins,
)

STATIC = Path(__file__).parent / "static"
OPENAPI = Path(__file__).parent / "openapi.yml"
MAX_BODY_BYTES = 64 * 1024
log = logging.getLogger("bot.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:  # the desk's refusals (DeskError) too
        return error.response()
    except RasaUnavailable as error:
        log.warning("rasa unavailable: %s", error)
        return error_response(
            503, "rasa_unavailable", "the assistant is not reachable; retry shortly"
        )
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        log.warning("redis unavailable: %s", error)
        return error_response(
            503, "redis_unavailable", "the message store is not reachable; retry shortly"
        )
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = error.reason.lower().replace(" ", "_")
        message = (
            error.text
            if error.text and not error.text.startswith(str(error.status))
            else error.reason
        )
        return error_response(error.status, code, message)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "something went wrong on our side")


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    if request.method == "OPTIONS" and request.path.startswith("/api/"):
        response: web.StreamResponse = web.Response(status=204)
        if not origin_allowed(request, gateway.allowed_origins):
            response = error_response(403, "forbidden", "origin not allowed")
    else:
        response = await handler(request)
    if not response.prepared:
        add_security_headers(request, response)
        add_cors_headers(request, response, gateway.allowed_origins)
    return response


def _page(name: str) -> Handler:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / name, headers={"Content-Type": "text/html; charset=utf-8"})

    return handler


async def healthz(request: web.Request) -> web.Response:
    """Each dependency's status; 200 while the gateway can serve, Rasa down included (see
    :mod:`bot.web.dependencies`)."""
    status, body = await request.app[GATEWAY].dependencies.report()
    return web.json_response(body, status=status)


async def openapi_yaml(_request: web.Request) -> web.Response:
    return web.Response(text=OPENAPI.read_text(), content_type="application/yaml")


async def openapi_json(_request: web.Request) -> web.Response:
    document = yaml.safe_load(OPENAPI.read_text())
    return web.json_response(document, dumps=lambda d: json.dumps(d, indent=1))


DeskFactory = Callable[[Redis, Settings, RasaRing, ConversationEvents], Desk]


def queue_desk(
    redis: Redis, settings: Settings, rasa: RasaRing, _events: ConversationEvents
) -> Desk:
    """The gateway's desk: the queue and the conversations' modes over `redis`."""
    return QueueDesk(redis, settings, rasa)


async def _renewing_socket_caps(app: web.Application) -> AsyncIterator[None]:
    """Renew the open sockets' cap entries, all together, while the gateway runs."""
    task = asyncio.create_task(app[LIMITS].run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(
    settings: Settings,
    redis: Redis,
    rasa_urls: str | Sequence[str],
    desk_factory: DeskFactory = queue_desk,
) -> web.Application:
    """The gateway for the given settings, Redis client and Rasa base URL or replicas (each
    conversation on one of them: :mod:`bot.web.rasa_ring`); its desk comes from `desk_factory`
    (default: over the queue)."""
    urls = [rasa_urls] if isinstance(rasa_urls, str) else list(rasa_urls)
    proxies = forwarded_headers(parse_networks(settings.trusted_proxies))
    app = web.Application(
        middlewares=[proxies, headers, metrics.observe, json_errors, path_ids],
        client_max_size=MAX_BODY_BYTES,
    )
    app[LIMITS] = Limits(redis, settings)  # rate limits and socket caps (bot/web/limits.py)
    app.cleanup_ctx.append(_renewing_socket_caps)
    typing_relay.setup(app, redis, settings.queue_namespace)  # typing on Pub/Sub, never stored
    # sockets' live events: one notice subscriber and one fetcher for all (bot/web/fanout.py)
    fanout.setup(app, redis, settings.queue_namespace)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        session = aiohttp.ClientSession()
        token = settings.rasa_auth_token
        rasa = RasaRing(session, urls, token=token.get_secret_value() if token else None)
        events = ConversationEvents(
            redis, settings.queue_namespace, settings.conversation_retention_seconds
        )
        desk = desk_factory(redis, settings, rasa, events)
        accounts = AgentAccounts.from_settings(redis, settings)
        dependencies = Dependencies(redis, rasa, desk, session, settings.action_server_url)
        app[GATEWAY] = Gateway(
            settings=settings,
            redis=redis,
            rasa=rasa,
            events=events,
            conversations=Conversations(
                redis,
                settings.queue_namespace,
                events,
                rasa,
                desk,
                settings,
                actions_up=dependencies.actions_up,
            ),
            accounts=accounts,
            desk=desk,
            allowed_origins=parse_origins(settings.web_allowed_origins),
            dependencies=dependencies,
        )
        if settings.demo_mode:  # the published demo password exists only in demo mode
            login, _password = await ensure_demo_agent(accounts)
            log.warning("DEMO MODE: the demo lead %s has a published password", login)
        desk.start()
        yield
        await desk.stop()
        await session.close()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(websocket.close_all)  # before the server waits for open handlers
    app.router.add_get("/", _page("index.html"))
    app.router.add_get("/agent", _page("console.html"))
    app.router.add_get("/api/docs", _page("docs.html"))
    app.router.add_get("/healthz", healthz)
    metrics.register(app, redis, settings)  # GET /metrics: bearer METRICS_TOKEN, else loopback only
    app.router.add_get("/api/openapi.yml", openapi_yaml)
    app.router.add_get("/api/openapi.json", openapi_json)
    app.router.add_routes(customer_api.routes)
    app.router.add_routes(agent_api.routes)
    app.router.add_routes(admin_api.routes)  # lead-only account management
    app.router.add_routes(websocket.routes)
    analytics_api.register(app)  # support-lead dashboard, analytics API, escalation labels
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    return app
