"""Conversations as Rasa recorded them: read from the SQL event store, translated to events.

Rasa publishes every tracker event to the broker configured under ``event_broker:`` in
``endpoints.yml`` (a Redis stream, :mod:`bot.analytics.rasa_broker`); the event sink
(:mod:`bot.analytics.event_sink`) writes one row per event in the schema of Rasa's SQL broker
(``id``, ``sender_id``, ``data`` = the event as JSON) to SQLite by default or PostgreSQL when
``EVENTS_DB_URL`` points there. The
rows outlive any Rasa restart, so this is the durable record of what customers said and how the
NLU understood it.

Translation (pure, :func:`translate`): a ``user`` event becomes a :class:`CustomerMessage` (its
sentiment computed with the same VADER scorer the escalation signals use); an ``affirm``/``deny``
right after the bot asked "Did that answer your question?" (reply tag ``did_that_help``) also
becomes a :class:`HelpAnswer` about the answer tagged ``answer:<intent>`` before it; a ``bot``
event becomes a :class:`BotMessage`, one tagged ``offer_human`` a :class:`TurnDecision`
``offer``, one tagged ``csat_ask`` a :class:`SurveyOffered`. Satisfaction answers are Rasa events
too: ``csat_rating`` with its ``csat_score`` entity (the rating buttons) becomes a :class:`Rating`,
and the customer's typed reply to ``csat_comment`` its comment. Replies to the bot's own questions
(rating, comment, email) are marked ``prompted``: they are no topic and no fallback.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy

from bot.analytics.events import (
    BotMessage,
    CustomerMessage,
    Event,
    HelpAnswer,
    Rating,
    SurveyOffered,
    TurnDecision,
)
from bot.sentiment import sentiment

REPLY_KEY = "reply"
SURVEY_REPLY = "csat_ask"
COMMENT_REPLY = "csat_comment"
RATING_INTENT = "csat_rating"
RATING_ENTITY = "csat_score"
# The customer's next message answers the bot's question: not a topic, not a fallback.
PROMPT_REPLIES = frozenset({SURVEY_REPLY, COMMENT_REPLY, "ask_email", "email_invalid"})
FEEDBACK_REPLY = "did_that_help"
OFFER_REPLY = "offer_human"
ANSWER_PREFIX = "answer:"
CUSTOMER_KEYS = ("customer_id", "customer")


def _candidate(parse_data: dict[str, Any]) -> str | None:
    for entry in parse_data.get("intent_ranking") or []:
        name = entry.get("name")
        if name and name != "nlu_fallback":
            return name
    return None


def _customer(metadata: dict[str, Any] | None) -> str | None:
    for key in CUSTOMER_KEYS:
        value = (metadata or {}).get(key)
        if isinstance(value, str) and value:
            return value
    return None


class _Conversation:
    """What the translation remembers between events of one conversation."""

    def __init__(self) -> None:
        self.replies: list[str] = []  # reply tags since the customer's last message
        self.last_answer: str | None = None


def _user(cid: str, event: dict[str, Any], conv: _Conversation) -> Iterator[Event]:
    parse = event.get("parse_data") or {}
    intent = parse.get("intent") or {}
    name = intent.get("name")
    text = event.get("text") or ""
    at = float(event["timestamp"])
    yield CustomerMessage(
        at=at,
        conversation_id=cid,
        text=text,
        intent=name,
        confidence=intent.get("confidence"),
        candidate=_candidate(parse) if name == "nlu_fallback" else None,
        sentiment=sentiment(text) if text and not text.startswith("/") else None,
        customer_id=_customer(event.get("metadata")),
        ranking=tuple(
            (entry["name"], float(entry.get("confidence") or 0.0))
            for entry in parse.get("intent_ranking") or []
            if entry.get("name")
        ),
        replies_before=tuple(conv.replies),
        prompted=bool(PROMPT_REPLIES.intersection(conv.replies)),
    )
    if FEEDBACK_REPLY in conv.replies and name in ("affirm", "deny"):
        yield HelpAnswer(at, cid, helped=name == "affirm", topic=conv.last_answer)
    score = _score(parse) if name == RATING_INTENT else None
    if score is not None:
        yield Rating(at, cid, score)
    elif COMMENT_REPLY in conv.replies and text and not text.startswith("/"):
        yield Rating(at, cid, None, text)
    conv.replies = []


def _score(parse: dict[str, Any]) -> int | None:
    for entity in parse.get("entities") or []:
        if entity.get("entity") == RATING_ENTITY:
            try:
                value = int(str(entity.get("value")).strip())
            except ValueError:
                return None
            return value if 1 <= value <= 5 else None
    return None


def _bot(cid: str, event: dict[str, Any], conv: _Conversation) -> Iterator[Event]:
    at = float(event["timestamp"])
    tag = (event.get("metadata") or {}).get(REPLY_KEY)
    yield BotMessage(at, cid, event.get("text") or "")
    if not isinstance(tag, str):
        return
    conv.replies.append(tag)
    if tag.startswith(ANSWER_PREFIX):
        conv.last_answer = tag[len(ANSWER_PREFIX) :]
    elif tag == OFFER_REPLY:
        yield TurnDecision(at, cid, "offer")
    elif tag == SURVEY_REPLY:
        yield SurveyOffered(at, cid)


def translate(rows: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[Event]:
    """Analytics events from Rasa events ``(sender_id, event dict)`` in broker order."""
    conversations: dict[str, _Conversation] = {}
    for cid, event in rows:
        conv = conversations.setdefault(cid, _Conversation())
        kind = event.get("event")
        if kind == "user":
            yield from _user(cid, event, conv)
        elif kind == "bot":
            yield from _bot(cid, event, conv)


def default_url() -> str:
    """The event database: ``EVENTS_DB_URL`` if set, else SQLite ``<data dir>/events.db``."""
    from bot.runtime.services import events_db_url

    return events_db_url()


class EventTable:
    """Rows of the broker's ``events`` table, read incrementally.

    Rows are only ever appended (``id`` grows), so each read fetches the rows after the last id
    seen and keeps the parsed rows: a dashboard refresh costs the new events, not all of them.
    The kept rows are a cache of the database, never a source: a new process reads them again.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.last_id = 0
        self.rows: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def read(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            self.rows.extend(self._new_rows())
            return list(self.rows)

    def _new_rows(self) -> list[tuple[str, dict[str, Any]]]:
        database = sqlalchemy.engine.make_url(self.url).database
        if self.url.startswith("sqlite") and database and not Path(database).exists():
            return []
        engine = sqlalchemy.create_engine(self.url)
        try:
            with engine.connect() as connection:
                if not sqlalchemy.inspect(connection).has_table("events"):
                    return []
                result = connection.execute(
                    sqlalchemy.text(
                        "SELECT id, sender_id, data FROM events WHERE id > :after ORDER BY id"
                    ),
                    {"after": self.last_id},
                )
                rows = []
                for row_id, sender, data in result:
                    rows.append((sender, json.loads(data)))
                    self.last_id = row_id
                return rows
        finally:
            engine.dispose()


_tables: dict[str, EventTable] = {}


def read_rows(url: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Every event row of the broker's ``events`` table, in the order Rasa published them
    (none when Rasa has not written any yet)."""
    url = url or default_url()
    table = _tables.setdefault(url, EventTable(url))
    return table.read()


def read_events(url: str | None = None) -> list[Event]:
    """Analytics events of every conversation Rasa has recorded."""
    return list(translate(read_rows(url)))
