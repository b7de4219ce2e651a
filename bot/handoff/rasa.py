"""Running the bot's handoff actions in a conversation through Rasa's HTTP API (the gateway).

`resume_in_rasa()` tells Rasa the human stretch ended: Rasa runs `action_handback`, which greets
the customer back and asks for a rating. `check_wait_in_rasa()` runs `action_wait_check` for a
customer waiting without writing, so the offer to leave contact details past the wait limit does
not depend on their next message.

Rasa's HTTP API needs its token (`RASA_AUTH_TOKEN`): pass it as `token`; it travels as the query
parameter ``token``. A refusal raises :class:`RasaApiError` (an `aiohttp.ClientError`) naming
the status and the path, never the URL with the token.
"""

from __future__ import annotations

from typing import Any

import aiohttp

HANDBACK_ACTION = "action_handback"
WAIT_CHECK_ACTION = "action_wait_check"


class RasaApiError(aiohttp.ClientError):
    """Rasa's HTTP API answered with an error status."""


def _check(response: aiohttp.ClientResponse, what: str) -> None:
    if response.status >= 400:  # not raise_for_status(): its message holds the URL and token
        raise RasaApiError(f"Rasa answered {response.status} to {what}")


async def run_in_rasa(
    rasa_url: str,
    conversation_id: str,
    action: str,
    session: aiohttp.ClientSession | None = None,
    *,
    token: str | None = None,
) -> list[dict[str, Any]]:
    """Run one of the bot's actions in the conversation through Rasa's HTTP API and return the
    bot's messages for the customer; the bot then listens, as after any turn."""
    base = f"{rasa_url.rstrip('/')}/conversations/{conversation_id}"
    timeout = aiohttp.ClientTimeout(total=30)
    params = {"token": token} if token else {}
    own = session is None
    session = session or aiohttp.ClientSession()
    try:
        async with session.post(
            f"{base}/execute", json={"name": action}, params=params, timeout=timeout
        ) as resp:
            _check(resp, f"execute {action}")
            messages = (await resp.json()).get("messages") or []
        # `execute` runs the action alone; appending `action_listen` puts the conversation back
        # where a turn ends, so the customer's next message is handled by the rules as always.
        async with session.post(
            f"{base}/tracker/events",
            json={"event": "action", "name": "action_listen"},
            params=params,
            timeout=timeout,
        ) as resp:
            _check(resp, "tracker/events")
        return messages
    finally:
        if own:
            await session.close()


async def resume_in_rasa(
    rasa_url: str,
    conversation_id: str,
    session: aiohttp.ClientSession | None = None,
    *,
    token: str | None = None,
) -> list[dict[str, Any]]:
    """Tell Rasa the human stretch ended: runs `action_handback` (greets the customer back and
    asks for a rating) and returns the bot's messages for the customer."""
    return await run_in_rasa(rasa_url, conversation_id, HANDBACK_ACTION, session, token=token)


async def check_wait_in_rasa(
    rasa_url: str,
    conversation_id: str,
    session: aiohttp.ClientSession | None = None,
    *,
    token: str | None = None,
) -> list[dict[str, Any]]:
    """For a customer waiting silently: runs `action_wait_check`, which offers to leave contact
    details once the wait passes the policy's limit (nothing otherwise). Returns its messages."""
    return await run_in_rasa(rasa_url, conversation_id, WAIT_CHECK_ACTION, session, token=token)
