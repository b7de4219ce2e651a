"""Checks of the queue's arguments: each returns the value or raises :class:`InvalidInput` with a
message that says what is allowed. The client checks everything before it calls a script."""

from __future__ import annotations

import re
from typing import TypeVar

from bot.queue.errors import InvalidInput, MessageTooLarge
from bot.queue.records import Customer, Summary

TOPIC_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")
ID_RE = re.compile(r"^[^\s,\x00-\x1f\x7f]{1,200}$")
NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
STREAM_ID_RE = re.compile(r"^(\d+-\d+|\d+|\$)$")
MAX_PRIORITY = 9
# The one size limit of a chat message (customer's or agent's), used by the gateway's API before
# anything is written and by the queue: characters as people count them, and a byte cap that
# every text within the character limit fits (UTF-8 takes at most 4 bytes a character), so the
# two can never disagree; the byte cap bounds what one entry may cost Redis.
MAX_MESSAGE_CHARS = 2000
MAX_MESSAGE_BYTES = 4 * MAX_MESSAGE_CHARS

RecordT = TypeVar("RecordT", Customer, Summary)


def record(value: object, kind: type[RecordT], malformed: str) -> RecordT:
    """`value` as a `kind` record: given as one, or as the dict `kind.from_dict` reads."""
    if isinstance(value, dict):
        try:
            value = kind.from_dict(value)
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidInput(f"{malformed}: {error}") from None
    if not isinstance(value, kind):
        raise InvalidInput(
            f"{kind.__name__.lower()} must be a {kind.__name__}, not {type(value).__name__}"
        )
    return value


def check_id(kind: str, value: object) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise InvalidInput(
            f"{kind} must be a non-empty string of at most 200 characters without spaces or "
            f"commas, not {value!r}"
        )
    return value


def check_message_text(value: object, max_bytes: int = MAX_MESSAGE_BYTES) -> str:
    """A message's text: a non-empty string of at most :data:`MAX_MESSAGE_CHARS` characters and
    ``max_bytes`` bytes of UTF-8 (else :class:`MessageTooLarge`, or :class:`InvalidInput`)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("message text must be a non-empty string")
    if len(value) > MAX_MESSAGE_CHARS:
        raise MessageTooLarge(
            f"message is {len(value)} characters; the limit is {MAX_MESSAGE_CHARS} characters"
        )
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput("message text must be valid Unicode (no lone surrogates)") from None
    if size > max_bytes:
        raise MessageTooLarge(f"message is {size} bytes; the limit is {max_bytes} bytes")
    return value


def check_topic(value: object, kind: str = "topic") -> str:
    if not isinstance(value, str) or not TOPIC_RE.match(value):
        raise InvalidInput(
            f"{kind} must be 1-64 characters of a-z, 0-9, '_', '-', '.', starting with a letter "
            f"or digit, not {value!r}"
        )
    return value


def check_priority(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRIORITY:
        raise InvalidInput(f"priority must be an integer from 0 to {MAX_PRIORITY}, not {value!r}")
    return value


def check_stream_id(value: str) -> str:
    if not isinstance(value, str) or not STREAM_ID_RE.match(value):
        raise InvalidInput(
            f"offset must be a stream id like '0-0' or '1700000000000-3', not {value!r}"
        )
    return value


def check_reason(value: object, kind: str = "reason") -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 500 or "\x00" in value:
        raise InvalidInput(f"{kind} must be a non-empty string of at most 500 characters")
    return value


def check_capacity(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise InvalidInput(f"capacity must be an integer from 1 to 1000, not {value!r}")
    return value


def check_namespace(value: object) -> str:
    """A namespace is checked when the queue is built: a bad one is a programming error."""
    if not isinstance(value, str) or not NAMESPACE_RE.match(value):
        raise ValueError(f"namespace must be 1-64 of A-Z a-z 0-9 _ . -, not {value!r}")
    return value
