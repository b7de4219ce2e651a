"""Security tests run against the real stack: the fixtures of tests/web (a real redis-server, a
gateway process, and for ``stack`` Rasa and the action server with the trained model)."""

from __future__ import annotations

from tests.web.conftest import gateway, http, redis, stack, web_redis  # noqa: F401
