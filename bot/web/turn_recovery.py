"""Finish a customer turn whose gateway never recorded it, from Rasa's tracker.

A bot turn is recorded in the conversation's stream by the gateway that ran it, once Rasa has
answered (:meth:`bot.web.conversations.Conversations._run_turn`). If that gateway dies after
sending the message to Rasa, or Redis fails between Rasa's answer and the append, the turn's
``pending`` marker stays behind and the customer's retries (same ``client_id``) used to wait for
it until it read as "unknown" (a 409 after the Rasa timeout + 30 s: "send it again").

The gateway sends each message's ``client_id`` to Rasa as message metadata, so Rasa's tracker
says what happened to it:

* **Rasa finished the turn**: the user event with that ``client_id`` is followed by the bot's
  utterances and ``action_listen``. :func:`finished_turn` returns those replies, as Rasa's REST
  channel would have, and the retry records them itself. Recording is idempotent: the customer
  message is keyed by its ``client_id`` and each bot reply by ``<client_id>#bot<n>``
  (:func:`reply_key`), so a gateway that was only slow, and records the same turn a moment
  later, appends nothing twice.
* **Rasa never ran it**: no user event has the ``client_id`` and nobody holds or waits for the
  conversation's lock in Rasa's lock store (:data:`bot.keys.RASA_LOCK`: Rasa draws a ticket
  before it does anything with a message and gives it back when the turn ends, also when the
  turn is cancelled because the gateway hung up). This is only asked once the marker reads as
  "unknown" (older than the Rasa timeout + 30 s): a younger message may still be waiting for a
  busy Rasa to read it, before any ticket. Then :func:`never_ran` is true and the reservation is
  released, so the retry runs the turn: the message is answered instead of refused.
* Anything else (the turn is still running, or Rasa cannot be asked) leaves the marker as it is.
"""

from __future__ import annotations

from typing import Any

# How old a pending marker must be before a retry looks for the finished turn in Rasa's tracker
# (a turn normally takes well under this; looking earlier would only ask Rasa in vain).
SETTLE_SECONDS = 5.0


def reply_key(client_id: str, index: int) -> str:
    """The key under which the ``index``-th bot reply to a customer message is appended once."""
    return f"{client_id}#bot{index}"


def _client_id(event: dict[str, Any]) -> str | None:
    metadata = event.get("metadata")
    return metadata.get("client_id") if isinstance(metadata, dict) else None


def user_event(tracker: dict[str, Any], client_id: str) -> tuple[int, dict[str, Any]] | None:
    """The position and the user event of Rasa's tracker that carries this ``client_id``."""
    for index, event in enumerate(tracker.get("events") or []):
        if event.get("event") == "user" and _client_id(event) == client_id:
            return index, event
    return None


def finished_turn(tracker: dict[str, Any], client_id: str) -> list[dict[str, Any]] | None:
    """The bot's replies to the message with this ``client_id`` in REST-channel form, once Rasa
    has finished that turn (an ``action_listen`` or the next user event follows); None when the
    tracker has no such message or the turn is not finished."""
    found = user_event(tracker, client_id)
    if found is None:
        return None
    replies: list[dict[str, Any]] = []
    for event in (tracker.get("events") or [])[found[0] + 1 :]:
        kind = event.get("event")
        if kind == "user" or (kind == "action" and event.get("name") == "action_listen"):
            return replies
        if kind == "bot":
            data = event.get("data") if isinstance(event.get("data"), dict) else {}
            reply: dict[str, Any] = {"text": event.get("text")}
            reply.update({k: data[k] for k in ("buttons", "image", "custom") if data.get(k)})
            replies.append(reply)
    return None


def never_ran(tracker: dict[str, Any], client_id: str, lock_fields: dict[Any, Any]) -> bool:
    """True when Rasa has no user event with this ``client_id`` and nobody holds or waits for
    the conversation's lock (``lock_fields``: the lock hash, ``t:<n>`` per live ticket)."""
    tickets = [f for f in lock_fields if (f.decode() if isinstance(f, bytes) else f)[:2] == "t:"]
    return user_event(tracker, client_id) is None and not tickets
