"""Structured logs: one JSON object per line, each carrying the conversation being handled.

:data:`CONVERSATION_ID` is a context variable. The gateway sets it for each request that names a
conversation (:mod:`bot.web.metrics`), the action server for each action run, from the tracker's
``sender_id`` (:mod:`bot.runtime.action_metrics`). asyncio copies the context into tasks created
while handling the request, so every line logged during a turn, in any module, carries
``conversation_id``. :func:`configure` installs the handler; processes call it once at start.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar, Token
from datetime import datetime, timezone

CONVERSATION_ID: ContextVar[str | None] = ContextVar("conversation_id", default=None)


def bind_conversation(conversation_id: str | None) -> Token:
    """Log lines from now on in this context carry `conversation_id` (reset with the token)."""
    return CONVERSATION_ID.set(conversation_id)


class ConversationFilter(logging.Filter):
    """Adds ``record.conversation_id`` (None outside a turn) to every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "conversation_id"):
            record.conversation_id = CONVERSATION_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, conversation_id (when known) and
    the exception text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        conversation_id = getattr(record, "conversation_id", None) or CONVERSATION_ID.get()
        if conversation_id:
            line["conversation_id"] = conversation_id
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(level: int | str = logging.INFO) -> None:
    """JSON lines on stderr for the whole process (replaces the root logger's handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ConversationFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
