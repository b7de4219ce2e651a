"""Card numbers (PANs) masked before a message goes anywhere.

PCI DSS allows at most the first six and the last four digits of a card number to be shown.
:func:`mask_card_numbers` finds card-like digit runs in free text (13 to 19 digits, optionally
grouped with single spaces or dashes) and replaces the middle digits with ``*``. A run is treated
as a card number when it passes the Luhn check, or when it is written in the groups cards are
printed in (4-4-4-4, 4-4-4-4-3, 4-6-5): a mistyped card number is still a card number.

The gateway applies this to every customer and agent message before it reaches Rasa (and so
Rasa's tracker store), a ticket, the console, a stream or a log line.
"""

from __future__ import annotations

import re

_CANDIDATE = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,}(?!\d)")
_CARD_GROUPS = (
    re.compile(r"\d{4}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?"),
    re.compile(r"\d{4}([ -])\d{6}\1\d{4,5}"),
)
MASK_CHAR = "*"


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn (mod 10) check."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _looks_like_card(run: str, digits: str) -> bool:
    if luhn_valid(digits):
        return True
    return any(pattern.fullmatch(run) for pattern in _CARD_GROUPS)


def mask_pan(digits: str) -> str:
    """``4111111111111111`` -> ``411111******1111``: first six and last four only."""
    return digits[:6] + MASK_CHAR * (len(digits) - 10) + digits[-4:]


def _mask_run(run: str) -> str | None:
    digits = re.sub(r"\D", "", run)
    if 13 <= len(digits) <= 19 and _looks_like_card(run, digits):
        return mask_pan(digits)
    return None


def _replace(match: re.Match[str]) -> str:
    """Mask the whole run, or else the card-like groups inside a longer run of digit groups."""
    run = match.group(0)
    whole = _mask_run(run)
    if whole is not None:
        return whole
    parts = re.split(r"([ -])", run)  # digit groups at even indexes, separators at odd
    out: list[str] = []
    start = 0
    while start < len(parts):
        for end in range(len(parts), start, -2):
            masked = _mask_run("".join(parts[start:end]))
            if masked is not None:
                out.append(masked)
                out.extend(parts[end : end + 1])
                start = end + 1
                break
        else:
            out.extend(parts[start : start + 2])
            start += 2
    return "".join(out)


def mask_card_numbers(text: str) -> str:
    """The text with every card number in it masked to its first six and last four digits."""
    if not text or sum(char.isdigit() for char in text) < 13:
        return text
    return _CANDIDATE.sub(_replace, text)


def contains_card_number(text: str) -> bool:
    """True when the text holds an unmasked card number."""
    return mask_card_numbers(text) != text
