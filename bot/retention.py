"""How long the product keeps what it writes to Redis: small helpers for the retention settings.

Every key's retention is declared in :mod:`bot.keys` and listed in docs/security.md ("Retention").
Keys that expire get their TTL where they are written; streams shared by every conversation (the
decision, CSAT and label streams) are trimmed by age at each append with ``MINID ~``
(:func:`min_stream_id`), so an idle deployment keeps at most one batch of old entries.
"""

from __future__ import annotations

import time


def min_stream_id(retention_seconds: float, now: float | None = None) -> str:
    """The smallest stream id to keep: entries appended more than ``retention_seconds`` ago are
    older (stream ids start with the append time in milliseconds)."""
    now = time.time() if now is None else now
    return f"{max(0, int((now - retention_seconds) * 1000))}-0"
