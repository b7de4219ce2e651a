"""Validators for the values actions read from the tracker.

A tracker holds what the customer sent (text, entities of a button payload), slots set earlier
and the message's metadata. None of it can be trusted to have the shape an action expects: an
entity ``csat_score`` of ``""`` or ``"12345"``, a slot holding a list where a string was stored,
metadata claiming ``verified: "yes"``. Each validator takes any value and returns a clean value
of the expected type, or ``None`` (or an empty/default value, as documented) when the input is not
acceptable; none of them raises. They are pure: no I/O, no settings.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

MAX_FREE_TEXT = 2000
MAX_EMAIL = 254
MAX_NAME = 100
MAX_ID = 64
CONVERSATION_MODES = ("bot", "waiting", "agent")
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_HEX_ID = re.compile(r"[0-9a-f]{32}")


def csat_score(value: Any) -> int | None:
    """A satisfaction rating: an integer 1-5 (an int, or a string of one digit 1-5)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 1 <= value <= 5 else None
    if isinstance(value, str):
        value = value.strip()
        if len(value) == 1 and value in "12345":
            return int(value)
    return None


def email(value: Any) -> str | None:
    """An e-mail address (at most 254 characters, local part at most 64), stripped."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if len(value) > MAX_EMAIL or not _EMAIL.fullmatch(value):
        return None
    if len(value.split("@", 1)[0]) > 64:
        return None
    return value


def free_text(value: Any, limit: int = MAX_FREE_TEXT) -> str:
    """Customer text as a string: control characters (but line breaks and tabs) removed,
    stripped, cut to ``limit`` characters; anything that is not a string gives ''."""
    if not isinstance(value, str):
        return ""
    kept = "".join(
        char
        for char in value
        if char in "\n\t" or unicodedata.category(char) not in ("Cc", "Cs", "Co")
    )
    return kept.strip()[:limit]


def identifier(value: Any) -> str | None:
    """An id (ticket, customer, conversation): 1-64 letters, digits or ``_.:-``."""
    if isinstance(value, str) and _IDENTIFIER.fullmatch(value):
        return value
    return None


def rating_id(value: Any) -> str | None:
    """The id of a stored rating: 32 lowercase hex digits."""
    if isinstance(value, str) and _HEX_ID.fullmatch(value):
        return value
    return None


def conversation_mode(value: Any) -> str:
    """``bot``, ``waiting`` or ``agent``; anything else is ``bot``."""
    return value if isinstance(value, str) and value in CONVERSATION_MODES else "bot"


def intent_name(value: Any, known: Collection[str]) -> str:
    """An intent of the domain; anything else (unknown, not a string) is ''."""
    return value if isinstance(value, str) and value in known else ""


def confidence(value: Any) -> float:
    """A confidence in [0, 1]; anything else (NaN, negative, not a number) is 0.0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    value = float(value)
    return value if math.isfinite(value) and 0.0 <= value <= 1.0 else 0.0


def flag(value: Any) -> bool:
    """True only for the boolean True (``"yes"``, ``1``, ``"false"`` are not True)."""
    return value is True


def string_list(value: Any, limit: int = 20, item_limit: int = MAX_ID) -> list[str]:
    """A list of short strings (e.g. handoff reasons): other items and the excess dropped."""
    if not isinstance(value, (list, tuple)):
        return []
    items = [item for item in value if isinstance(item, str) and 0 < len(item) <= item_limit]
    return items[:limit]


@dataclass(frozen=True)
class CustomerInfo:
    """Who the customer is, as far as the message metadata says."""

    customer_id: str | None
    display_name: str
    verified: bool


def customer_info(metadata: Any) -> CustomerInfo:
    """The customer of a message's metadata (``customer: {id, display_name, verified}`` or the
    flat ``customer_id`` / ``customer_name`` / ``verified``), every field validated."""
    metadata = metadata if isinstance(metadata, dict) else {}
    customer = metadata.get("customer")
    customer = customer if isinstance(customer, dict) else {}
    raw_id = customer.get("id", metadata.get("customer_id"))
    raw_name = customer.get("display_name", metadata.get("customer_name"))
    raw_verified = customer.get("verified", metadata.get("verified"))
    return CustomerInfo(
        customer_id=identifier(raw_id if not isinstance(raw_id, int) else str(raw_id)),
        display_name=free_text(raw_name, MAX_NAME).replace("\n", " ").replace("\t", " "),
        verified=flag(raw_verified),
    )
