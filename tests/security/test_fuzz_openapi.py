"""Issue 12, finding 8: OpenAPI-driven fuzzing (schemathesis) of every route of the real gateway
finds no 500: valid and malformed bodies, parameters and headers, each answered with a 4xx
JSON error or a success.

Bounded and deterministic: a fixed number of examples per route and mode, derandomized, no
example database. Each case is sent twice: with the ids schemathesis made up, and with the ids
of a real conversation and ticket with real tokens, so the fuzzed input reaches the handlers'
validation rather than stopping at "no such conversation".
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from bot.web.app import OPENAPI
from bot.web.limits import GENEROUS_ENV
from tests.security.gateways import RunningGateway, gateway, lead_token, new_conversation

EXAMPLES = 10
SCHEMA = schemathesis.openapi.from_path(OPENAPI)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.fixture(scope="module")
def gw(redis_server) -> Iterator[RunningGateway]:
    with gateway(redis_server.url, GENEROUS_ENV) as running:
        yield running


@pytest.fixture(scope="module")
def real(gw) -> dict[str, str]:
    """A real conversation with its token and a lead session (ticket T1 does not exist)."""

    async def make() -> dict[str, str]:
        async with aiohttp.ClientSession() as http:
            conversation, token = await new_conversation(http, gw)
            lead = await lead_token(http, gw)
        return {"conversation_id": conversation, "ticket_id": "T1", "customer": token, "lead": lead}

    return asyncio.run(make())


def token_for(operation_path: str, real: dict[str, str]) -> str:
    if operation_path == "/api/agent/logout":
        return "not-a-session"  # the fuzzer must not end the session the other cases use
    if operation_path.startswith("/api/conversations/"):
        return real["customer"]
    return real["lead"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_fuzzed_requests_never_get_a_server_error(gw, real, operation, mode):
    http = requests.Session()
    failures: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case) -> None:
        headers = {"Authorization": f"Bearer {token_for(operation.path, real)}"}
        if case.headers:  # a made-up token would stop every case at 401: use a real one
            case.headers = {k: v for k, v in case.headers.items() if k.lower() != "authorization"}
        for params in (None, real):
            if params is not None:
                if not case.path_parameters:
                    continue
                case.path_parameters = {
                    name: params.get(name, value) for name, value in case.path_parameters.items()
                }
            response = case.call(base_url=gw.url, session=http, headers=headers, timeout=30)
            content_type = (response.headers.get("content-type") or [""])[0]
            if response.status_code >= 500 or (
                response.status_code >= 400 and not content_type.startswith("application/json")
            ):
                failures.append(
                    f"{case.method} {response.request.url} {dict(response.request.headers)}"
                    f" -> {response.status_code} {content_type} {response.text[:200]}"
                )

    try:
        fuzz()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        pytest.skip("this route has no parameter or body to make malformed")
    finally:
        http.close()
    assert not failures, failures[:5]
    assert requests.get(f"{gw.url}/healthz", timeout=10).status_code == 200
