"""The action server: rasa_sdk's app, listening on loopback, answering only callers with the token.

``python -m bot.runtime.action_server --actions actions --port 5055`` takes the options of
``rasa run actions`` plus ``--interface`` (default `ACTION_SERVER_HOST`, 127.0.0.1) and serves the
same routes (``POST /webhook``, ``GET /actions``, ``GET /health``) plus ``GET /metrics``
(:mod:`bot.runtime.action_metrics`). rasa_sdk has no
authentication, so a request middleware checks every call but the health check: the query
parameter ``token`` (what Rasa sends for ``action_endpoint: token:`` in endpoints.yml) must equal
`ACTION_SERVER_TOKEN`, compared in constant time; anything else gets a 401 and runs nothing. With
no token configured the server refuses to start rather than run open.
"""

from __future__ import annotations

import hmac
import logging
import sys
import types

from rasa_sdk import utils
from rasa_sdk.constants import APPLICATION_ROOT_LOGGER_NAME
from rasa_sdk.endpoint import create_app, create_argument_parser, create_ssl_context
from rasa_sdk.plugin import plugin_manager
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import logs
from bot.config import get_settings
from bot.runtime.action_metrics import instrument

log = logging.getLogger(__name__)

TOKEN_PARAMETER = "token"  # rasa.utils.endpoints.EndpointConfig's default token_name
OPEN_PATHS = frozenset({"/health"})


def token_matches(provided: str | None, expected: str) -> bool:
    """True when `provided` is the expected token (constant time, any text)."""
    if not provided or not expected:
        return False
    return hmac.compare_digest(provided.encode("utf-8"), expected.encode("utf-8"))


def require_token(app: Sanic, token: str) -> None:
    """Refuse (401, nothing run) every request to `app` but the health check without `token`."""
    if not token:
        raise ValueError("the action server needs a non-empty token")

    @app.middleware("request")
    async def check_token(request: Request) -> HTTPResponse | None:
        if request.path in OPEN_PATHS:
            return None
        if token_matches(request.args.get(TOKEN_PARAMETER), token):
            return None
        log.warning(
            "refused %s %s from %s: no or a wrong token", request.method, request.path, request.ip
        )
        return response.json({"error": "missing or wrong action server token"}, status=401)


def secured_app(
    action_package: str | types.ModuleType,
    token: str,
    cors: str | list[str] | None = None,
    auto_reload: bool = False,
) -> Sanic:
    """rasa_sdk's action server app for `action_package`, behind the token check (no CORS unless
    asked: no browser calls the action server)."""
    app = create_app(action_package, cors_origins=cors, auto_reload=auto_reload)
    require_token(app, token)
    instrument(app)  # GET /metrics (behind the token) and per-run timing and log context
    return app


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = create_argument_parser()  # rasa run actions' options
    parser.prog = "python -m bot.runtime.action_server"
    parser.add_argument(
        "-i",
        "--interface",
        default=settings.action_server_host,
        help="interface to listen on (default ACTION_SERVER_HOST, 127.0.0.1)",
    )
    args = parser.parse_args(argv)
    token = settings.action_server_token.get_secret_value() if settings.action_server_token else ""
    if not token:
        sys.exit("error: ACTION_SERVER_TOKEN is not set; the action server will not run open")
    logging.getLogger("matplotlib").setLevel(logging.WARN)
    logs.configure(args.loglevel or logging.INFO)  # JSON lines carrying the conversation id
    utils.configure_file_logging(
        logging.getLogger(APPLICATION_ROOT_LOGGER_NAME),
        args.log_file,
        args.loglevel,
        args.logging_config_file,
    )
    utils.update_sanic_log_level()
    app = secured_app(args.actions, token, cors=args.cors, auto_reload=args.auto_reload)
    plugin_manager().hook.attach_sanic_app_extensions(app=app)
    ssl_context = create_ssl_context(args.ssl_certificate, args.ssl_keyfile, args.ssl_password)
    log.info("action server on %s:%s (token required)", args.interface, args.port)
    app.run(
        args.interface,
        args.port,
        ssl=ssl_context,
        workers=utils.number_of_sanic_workers(),
        access_log=False,  # request lines carry the token in their query string
    )


if __name__ == "__main__":
    main()
