"""Input at the gateway's edge: every malformed input is a clear 4xx, never a 500.

* :func:`read_json` is the one JSON body reader of every route: ``Content-Type:
  application/json`` (else 415), UTF-8, at most the app's body size (413), an object, nested at
  most :data:`MAX_DEPTH` deep, no ``NaN``/``Infinity``, no unpaired surrogates (they could not
  be stored). :func:`loads` is the same for WebSocket frames.
* :func:`valid_event_id`: a Redis stream id whose two parts fit in 64 bits.
* :data:`ID` / :func:`path_ids`: ids in paths (``conversation_id``, ``ticket_id``) are letters,
  digits and ``_.@+-`` only, so an id can never name another key (``T1:msgs``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.web.errors import ApiError, bad_request

MAX_DEPTH = 16
ID = re.compile(r"[A-Za-z0-9_.@+-]{1,128}")
PATH_IDS = ("conversation_id", "ticket_id")
_EVENT_ID = re.compile(r"(\d{1,20})-(\d{1,20})")
_U64 = 2**64 - 1
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _check(value: Any) -> None:
    """Depth and strings of a parsed document (iterative: no recursion on hostile input)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_DEPTH:
                raise bad_request(f"the JSON is nested more than {MAX_DEPTH} deep")
            for key, child in item.items():
                _check_str(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > MAX_DEPTH:
                raise bad_request(f"the JSON is nested more than {MAX_DEPTH} deep")
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_str(item)


def _check_str(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise bad_request("the JSON holds an unpaired surrogate (\\ud800-\\udfff)") from error


def loads(text: str | bytes) -> Any:
    """Parse JSON text safely, raising a 400 :class:`ApiError` for anything malformed."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError as error:
        raise bad_request(f"the JSON is nested more than {MAX_DEPTH} deep") from error
    except ValueError as error:  # includes JSONDecodeError, UnicodeDecodeError, int too long
        raise bad_request("the body is not valid JSON") from error
    _check(value)
    return value


def media_type(header: str | None) -> str:
    """The lowercased media type of a ``Content-Type`` value ('' when absent). aiohttp's
    ``content_type`` parses the header with the ``email`` package on every call (~50 us)."""
    return (header or "").partition(";")[0].strip().lower()


def is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or 415 (not JSON), 413 (too large) or 400 (malformed)."""
    if not request.can_read_body:
        raise bad_request("the body must be a JSON object")
    if not is_json(media_type(request.headers.get("Content-Type"))):
        raise ApiError(
            415, "unsupported_media_type", "send the body as 'Content-Type: application/json'"
        )
    body = loads(await request.read())
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    return body


def valid_event_id(value: Any) -> bool:
    """True for a stream id ``<ms>-<seq>`` whose parts fit in 64 bits."""
    if not isinstance(value, str):
        return False
    match = _EVENT_ID.fullmatch(value)
    return bool(match) and int(match.group(1)) <= _U64 and int(match.group(2)) <= _U64


def valid_id(value: Any) -> bool:
    return isinstance(value, str) and bool(ID.fullmatch(value))


@web.middleware
async def path_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse malformed ids in the path before any handler reads Redis with them."""
    for name in PATH_IDS:
        value = request.match_info.get(name)
        if value is not None and not valid_id(value):
            raise bad_request(f"'{name}' must be 1-128 letters, digits or _.@+-")
    return await handler(request)
