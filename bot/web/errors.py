"""API errors as clear JSON: ``{"error": {"code": ..., "message": ...}}`` with a 4xx/503 status.

Handlers raise :class:`ApiError`; the middleware in :mod:`bot.web.app` turns it (and aiohttp's
own HTTP errors, and anything unexpected) into that shape. A trace never reaches a client.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


class ApiError(Exception):
    """An error the client can act on."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, **self.details)


def error_response(status: int, code: str, message: str, **details: Any) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return web.json_response({"error": body}, status=status)


def bad_request(message: str, **details: Any) -> ApiError:
    return ApiError(400, "bad_request", message, **details)


def unauthorized(message: str = "a valid token is required") -> ApiError:
    return ApiError(401, "unauthorized", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def conflict(message: str, **details: Any) -> ApiError:
    return ApiError(409, "conflict", message, **details)


def too_large(message: str, **details: Any) -> ApiError:
    return ApiError(413, "too_large", message, **details)


def unavailable(message: str) -> ApiError:
    return ApiError(503, "unavailable", message)
