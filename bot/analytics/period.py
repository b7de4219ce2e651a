"""Reporting periods: whole UTC days, ``--from`` and ``--to`` both inclusive."""

from __future__ import annotations

import argparse
import time
from datetime import date, datetime, timedelta, timezone

DEFAULT_DAYS = 30


def day_start(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()


def parse_period(
    start: str | None, end: str | None, now: float | None = None
) -> tuple[float, float]:
    """``[start, end)`` in Unix seconds for days ``start``..``end`` (YYYY-MM-DD, UTC, inclusive).

    Defaults: ``end`` today, ``start`` 29 days before ``end`` (30 days). A malformed date or an
    end before the start raises ``ValueError`` with a clear message.
    """
    today = datetime.fromtimestamp(now if now is not None else time.time(), timezone.utc).date()
    try:
        last = date.fromisoformat(end) if end else today
        first = date.fromisoformat(start) if start else last - timedelta(days=DEFAULT_DAYS - 1)
    except ValueError as exc:
        raise ValueError(f"dates must be YYYY-MM-DD: {exc}") from exc
    if last < first:
        raise ValueError(f"the period ends ({last}) before it starts ({first})")
    return day_start(first), day_start(last + timedelta(days=1))


def days(start: float, end: float) -> list[date]:
    """Every UTC day in ``[start, end)``."""
    first = datetime.fromtimestamp(start, timezone.utc).date()
    count = max(1, round((end - start) / 86400))
    return [first + timedelta(days=i) for i in range(count)]


def add_period_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--from``/``--to`` options every analytics command takes."""
    parser.add_argument("--from", dest="start", help="YYYY-MM-DD (UTC), default: 30 days ago")
    parser.add_argument("--to", dest="end", help="YYYY-MM-DD (UTC) inclusive, default: today")


def period_of(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[float, float]:
    """The period the options name; a bad date is a usage error, not a trace."""
    try:
        return parse_period(args.start, args.end)
    except ValueError as exc:
        parser.error(str(exc))
        raise  # parser.error exits; this keeps type checkers content
