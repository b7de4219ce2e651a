"""The Redis stream that carries Rasa's events from Rasa to the SQL event store.

Rasa publishes every tracker event to its event broker on its own event loop. Writing each to SQL
there (Rasa's ``SQLEventBroker``: one synchronous commit per event) cost ~20 % of Rasa's CPU per
turn. Instead the project's broker (:mod:`bot.analytics.rasa_broker`) appends each event to this
stream, and the event sink (:mod:`bot.analytics.event_sink`, its own process) persists the stream
to SQL in batches, in the schema Rasa's SQL broker writes, so :mod:`bot.analytics.rasa_events`
reads it unchanged.

One stream entry is one Rasa event, three fields:

* ``uid``: a random id the broker gives the event when Rasa publishes it. The sink inserts an
  event only if its ``uid`` is not yet applied (a table of applied uids, written in the same
  transaction): an entry delivered twice (a consumer killed between its SQL commit and its XACK,
  or a broker retrying an XADD) is stored once.
* ``sender_id``: the conversation.
* ``data``: the event as JSON, exactly as Rasa's SQL broker stores it (``sender_id`` included).

The stream is read by one consumer group (:data:`SINK_GROUP`); entries are deleted (XTRIM MINID)
only once the group has acknowledged them, so the stream holds the backlog, never less.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

# The stream's key, one per deployment namespace (SUPPORT_QUEUE_NAMESPACE). Kept here until the
# Redis key registry (bot/keys.py) exists on this branch: the lead moves it there.
EVENTS_STREAM = "{ns}:rasa:events"
SINK_GROUP = "event-sink"  # the consumer group of the event sink(s)


def stream_key(namespace: str) -> str:
    """The stream of Rasa's events for ``namespace``."""
    return EVENTS_STREAM.format(ns=namespace)


@dataclass(frozen=True)
class StreamEvent:
    """One Rasa event as it travels through the stream."""

    uid: str
    sender_id: str | None
    data: str  # the event as JSON

    @classmethod
    def from_rasa(cls, event: dict[str, Any]) -> StreamEvent:
        """A new entry for an event Rasa publishes (a fresh ``uid``)."""
        return cls(uuid.uuid4().hex, event.get("sender_id"), json.dumps(event))

    def fields(self) -> dict[str, str]:
        """The entry's fields for XADD."""
        return {"uid": self.uid, "sender_id": self.sender_id or "", "data": self.data}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> StreamEvent:
        """The event of a stream entry (fields decoded to str); ValueError when it is not one."""
        try:
            uid, data = fields["uid"], fields["data"]
        except KeyError as missing:
            raise ValueError(f"stream entry without {missing}") from None
        return cls(uid, fields.get("sender_id") or None, data)
