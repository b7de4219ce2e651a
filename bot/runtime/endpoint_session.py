"""Rasa calls the action server over kept-alive connections instead of a new session each time.

Rasa 3.6's ``EndpointConfig.request`` (every call to the action server: one per bot turn, and the
handback and wait-check actions) opens a new ``aiohttp.ClientSession`` for each request and
closes it after: a new connector, a host lookup in a thread of the default executor, a new TCP
connection (and the action server accepts one), then teardown. That was ~8 % of Rasa's samples
per bot turn (docs/performance.md).

:func:`apply` replaces that one method with :func:`request`: the same steps (headers, URL,
parameters and token, CA file, ``ClientResponseError`` for a status >= 400, the JSON answer or
None) on a session kept per event loop and per endpoint settings (headers, basic auth), whose
connections are kept alive for :data:`KEEPALIVE_SECONDS`, under the action server's own 5 s
(Sanic's ``KEEP_ALIVE_TIMEOUT``), so the client always closes an idle connection before the
server would: a request never goes out on a connection the server is closing. The session has
Rasa's own timeout (``DEFAULT_REQUEST_TIMEOUT``). ``EndpointConfig.session()`` itself is left
alone (Rasa's model server download uses it).

The request's JSON body (the tracker and domain Rasa sends with each action call) is written by
ujson (:func:`dumps`; ~2x faster than the standard library, 2-3 % of Rasa's samples per turn,
docs/performance.md, fourth round): the same JSON data, only without spaces (the tracker store
writes trackers the same way); what ujson refuses is written by the standard library as before.

Guarded (:mod:`bot.runtime.guarded_patch`): applied by ``python -m bot.runtime.rasa_server``
only when the source of Rasa's method hashes to :data:`RASA_SOURCE_SHA256`;
``tests/runtime/test_endpoint_session.py`` fails when a Rasa upgrade changes it and checks both
methods against a real server.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from typing import Any

import aiohttp
import ujson
from aiohttp.client_exceptions import ContentTypeError
from rasa.shared.exceptions import FileNotFoundException
from rasa.utils.endpoints import (
    DEFAULT_REQUEST_TIMEOUT,
    ClientResponseError,
    EndpointConfig,
    concat_url,
)

from bot.runtime.guarded_patch import GuardedPatch

# sha256 of `inspect.getsource(EndpointConfig.request)` in rasa 3.6.21.
RASA_SOURCE_SHA256 = "ccdb778aed8208e23cde3c3f47eac7fbbbb735dac8f7ef7254d54451c64ad608"
KEEPALIVE_SECONDS = 2.0  # under Sanic's KEEP_ALIVE_TIMEOUT (5 s), the action server's

ORIGINAL = EndpointConfig.request
_sessions: dict[tuple[Any, ...], aiohttp.ClientSession] = {}


def dumps(data: Any) -> str:
    """``json.dumps(data)`` as aiohttp writes a request's ``json=`` body, by ujson (the same data,
    without spaces); the standard library for what ujson refuses."""
    try:
        return ujson.dumps(data, ensure_ascii=True, escape_forward_slashes=False)
    except (TypeError, ValueError, OverflowError):
        return json.dumps(data)


def _session(endpoint: EndpointConfig) -> aiohttp.ClientSession:
    """The kept session for this event loop and the endpoint's headers and basic auth."""
    loop = asyncio.get_running_loop()
    auth = endpoint.basic_auth or {}
    key = (
        id(loop),
        tuple(sorted((str(k), str(v)) for k, v in endpoint.headers.items())),
        auth.get("username"),
        auth.get("password"),
    )
    session = _sessions.get(key)
    if session is None or session.closed or session.loop is not loop:
        session = aiohttp.ClientSession(  # as EndpointConfig.session() makes it, kept alive
            headers=endpoint.headers,
            auth=aiohttp.BasicAuth(auth["username"], auth["password"]) if auth else None,
            timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
            connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_SECONDS),
            json_serialize=dumps,
        )
        _sessions[key] = session
    return session


async def request(
    self: EndpointConfig,
    method: str = "post",
    subpath: str | None = None,
    content_type: str | None = "application/json",
    compress: bool = False,
    **kwargs: Any,
) -> Any | None:
    """Rasa's ``EndpointConfig.request`` on a kept session (see the module docstring)."""
    headers = {}
    if content_type:
        headers["Content-Type"] = content_type
    if "headers" in kwargs:
        headers.update(kwargs["headers"])
        del kwargs["headers"]
    if self.headers:
        headers.update(self.headers)
    url = concat_url(self.url, subpath)
    sslcontext = None
    if self.cafile:
        try:
            sslcontext = ssl.create_default_context(cafile=self.cafile)
        except FileNotFoundError as e:
            raise FileNotFoundException(
                f"Failed to find certificate file, '{os.path.abspath(self.cafile)}' does not exist."  # noqa: ASYNC240 - as Rasa's
            ) from e
    async with _session(self).request(
        method,
        url,
        headers=headers,
        params=self.combine_parameters(kwargs),
        compress=compress,
        ssl=sslcontext,
        **kwargs,
    ) as response:
        if response.status >= 400:
            raise ClientResponseError(
                response.status, response.reason, await response.content.read()
            )
        try:
            return await response.json()
        except ContentTypeError:
            return None


PATCH = GuardedPatch(
    owner=EndpointConfig,
    attribute="request",
    replacement=request,
    guarded=(ORIGINAL,),
    what="Rasa's EndpointConfig.request",
    module=__name__,
)


def rasa_source_sha256() -> str:
    """sha256 of the source of Rasa's ``EndpointConfig.request`` as installed."""
    return PATCH.rasa_source_sha256()


def apply() -> bool:
    """Replace Rasa's method by :func:`request`; True when it was replaced (or already was).
    Leaves Rasa's method in place, and warns, when its source is not the expected one."""
    return PATCH.apply(RASA_SOURCE_SHA256)
