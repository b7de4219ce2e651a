"""Rasa's REST channel and HTTP API as the gateway uses them, with timeouts and safe retries.

A customer message is not idempotent in Rasa (sending it twice runs two turns), so a send is
retried only when the connection could not be made at all (the message never reached Rasa).
A timeout or a 5xx after the request was sent raises :class:`RasaUnavailable`, which the API
turns into a 503 the widget retries with the same client message id.

Rasa's HTTP API (trackers, ``trigger_intent``, ``/status``) needs its token (`RASA_AUTH_TOKEN`),
sent as the query parameter ``token`` on every request; errors name the path, never the URL
with the token.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from yarl import URL

UP, BUSY, DOWN = "up", "busy", "down"


class RasaUnavailable(RuntimeError):
    """Rasa could not be reached or did not answer in time.

    ``reached`` is False only when the request never got to Rasa (no connection), so it is
    certain that nothing ran; True when Rasa got it and may have acted on it.
    """

    def __init__(self, message: str, *, reached: bool = True) -> None:
        super().__init__(message)
        self.reached = reached


class RasaClient:
    """Sends customer messages to Rasa's REST webhook and reads conversation trackers."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        timeout: float = 30.0,
        connect_retries: int = 3,
        token: str | None = None,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._token = token or None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._connect_retries = connect_retries

    @property
    def base_url(self) -> str:
        return self._base

    @property
    def session(self) -> aiohttp.ClientSession:
        return self._session

    @property
    def token(self) -> str | None:
        """The token of Rasa's HTTP API (None: Rasa runs without one)."""
        return self._token

    def _params(self) -> dict[str, str]:
        return {"token": self._token} if self._token else {}

    async def send(
        self,
        sender: str,
        message: str,
        *,
        timeout: float | None = None,
        client_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """One customer turn: the bot's replies (``text``, ``buttons``, ``custom`` ...).

        ``client_id`` (the customer's message id) goes with the message as Rasa metadata, so
        the user event in Rasa's tracker names the message it came from: a turn that reached
        Rasa twice for one message id can be seen there (``bench.faults`` counts them).
        """
        body: dict[str, Any] = {"sender": sender, "message": message}
        if client_id:
            body["metadata"] = {"client_id": client_id}
        replies = await self._request("POST", "/webhooks/rest/webhook", body, timeout)
        if not isinstance(replies, list):
            raise RasaUnavailable("Rasa answered the webhook with something other than a list")
        return replies

    async def trigger_intent(
        self, sender: str, intent: str, entities: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Inject an intent into the conversation; returns the messages the bot uttered."""
        body = {"name": intent, "entities": entities or {}}
        result = await self._post(
            f"/conversations/{sender}/trigger_intent?output_channel=collector", body
        )
        return list(result.get("messages", [])) if isinstance(result, dict) else []

    async def execute(self, sender: str, action: str) -> list[dict[str, Any]]:
        """Run one action in the conversation (Rasa's ``execute``); the messages it uttered."""
        result = await self._post(f"/conversations/{sender}/execute", {"name": action})
        return list(result.get("messages") or []) if isinstance(result, dict) else []

    async def listen(self, sender: str) -> None:
        """Append ``action_listen``: after :meth:`execute` the conversation is back where a turn
        ends, so the customer's next message is handled by the rules as always."""
        await self._post(
            f"/conversations/{sender}/tracker/events", {"event": "action", "name": "action_listen"}
        )

    async def tracker(self, sender: str) -> dict[str, Any]:
        """The conversation's tracker (events included)."""
        return await self._request("GET", f"/conversations/{sender}/tracker", None)

    async def healthy(self) -> bool:
        """One quick look at Rasa's /status (no retries)."""
        return await self.probe() == UP

    async def probe(self, timeout: float = 2.0) -> str:
        """:data:`UP` (/status answered 200), :data:`BUSY` (Rasa accepts a connection but does
        not answer within ``timeout``: alive and loaded, e.g. parsing a burst of messages) or
        :data:`DOWN` (no connection, or an error status). A busy replica is not a dead one: it
        keeps its conversations (marking it down would fail them over, or fail them)."""
        url = URL(self._base)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(url.host, url.port), timeout=timeout
            )
        except (OSError, asyncio.TimeoutError):
            return DOWN
        writer.close()
        try:
            async with self._session.get(
                self._base + "/status",
                params=self._params(),
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                return UP if response.status == 200 else DOWN
        except asyncio.TimeoutError:
            return BUSY
        except aiohttp.ClientError:
            return DOWN

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        return await self._request("POST", path, body)

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None, timeout: float | None = None
    ) -> Any:
        url = self._base + path
        limit = self._timeout if timeout is None else aiohttp.ClientTimeout(total=timeout)
        for attempt in range(self._connect_retries + 1):
            try:
                async with self._session.request(
                    method, url, json=body, params=self._params(), timeout=limit
                ) as response:
                    if response.status >= 500:
                        raise RasaUnavailable(f"Rasa answered {response.status} for {path}")
                    if response.status >= 400:
                        detail = await response.text()
                        raise RasaUnavailable(
                            f"Rasa refused {path}: {response.status} {detail[:200]}"
                        )
                    return await response.json(content_type=None)
            except aiohttp.ClientConnectorError as error:  # never reached Rasa: safe to retry
                if attempt == self._connect_retries:
                    raise RasaUnavailable(
                        f"Rasa is not reachable at {self._base}", reached=False
                    ) from error
                await asyncio.sleep(0.2 * 2**attempt)
            except (asyncio.TimeoutError, aiohttp.ClientError) as error:
                # a ClientResponseError's repr holds the request URL, token included
                detail = (
                    type(error).__name__
                    if isinstance(error, aiohttp.ClientResponseError)
                    else repr(error)
                )
                raise RasaUnavailable(f"Rasa did not answer {path}: {detail}") from None
        raise RasaUnavailable(f"Rasa is not reachable at {self._base}", reached=False)
