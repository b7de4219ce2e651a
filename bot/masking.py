"""Card numbers (PANs) masked before a message goes anywhere.

PCI DSS allows at most the first six and the last four digits of a card number to be shown.
:func:`mask_card_numbers` finds card-like digit runs in free text and replaces the middle digits
with ``*``. A run is 13 to 19 digits, however they are written:

* each character is read through NFKC (fullwidth ``４``, circled ``①``, superscripts) and any
  Unicode decimal digit counts as a digit;
* digit groups may be separated by up to :data:`MAX_SEPARATOR_CHARS` separator characters: any
  whitespace (no-break, thin, ideographic spaces, tabs, line breaks), zero-width and other
  format characters (ZWSP, ZWJ, BOM, soft hyphen), combining marks, dots, middle dots, bullets,
  slashes, backslashes, underscores and every dash (hyphen, en and em dash, minus sign), so ``4111 - 1111``, ``4111.1111`` and
  ``4111\u200b1111`` are all one run.

A run is treated as a card number when it passes the Luhn check, or when it is written in the
groups cards are printed in (4-4-4-4, 4-4-4-4-3, 4-6-5): a mistyped card number is still a card
number. Text outside a card number is returned exactly as it was written.

A number split over two messages (``4111 1111`` then ``1111 1111``) is caught by
:mod:`bot.web.card_tail`, which keeps the trailing digits of a conversation's last message
(:func:`trailing_digits`) and masks the continuation (:func:`mask_continuation`).

The gateway applies this to every customer and agent message (text, button payloads and titles,
the bot's replies) before it reaches Rasa (and so Rasa's tracker store and the events database),
a ticket, the console, a stream or a log line.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

MASK_CHAR = "*"
MIN_PAN, MAX_PAN = 13, 19
MAX_SEPARATOR_CHARS = 5
# The card-printed groupings: a run in one of these is masked even when it fails the Luhn check.
_CARD_GROUPS = (
    (4, 4, 4, 4),
    (4, 4, 4, 4, 1),
    (4, 4, 4, 4, 2),
    (4, 4, 4, 4, 3),
    (4, 6, 5),
    (4, 6, 4),
)
# Beyond whitespace, format characters and dashes (Pd): punctuation people put between groups,
# and the dash-like symbols that are not Pd (minus sign, hyphen bullet, modifier minus ...).
_SEPARATOR_PUNCTUATION = frozenset("./\\_-\u2212\u2043\u02d7\u2796\u00b7\u2022\u2027\u2219")
_DIGIT, _SEPARATOR, _OTHER = "d", "s", "o"


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


def mask_pan(digits: str) -> str:
    """``4111111111111111`` -> ``411111******1111``: first six and last four only."""
    return digits[:6] + MASK_CHAR * (len(digits) - 10) + digits[-4:]


def _is_separator_char(char: str) -> bool:
    if char.isspace() or char in _SEPARATOR_PUNCTUATION:
        return True
    category = unicodedata.category(char)
    return category in ("Cf", "Pd", "Zs", "Zl", "Zp", "Mn", "Me", "Cc")


def classify(char: str) -> tuple[str, str]:
    """(kind, ASCII digit or ''): kind is digit, separator or other, read through NFKC."""
    normal = unicodedata.normalize("NFKC", char)
    if len(normal) == 1:
        value = unicodedata.decimal(normal, None)
        if value is not None:
            return _DIGIT, str(value)
    if normal == "" or all(_is_separator_char(c) for c in normal):
        return _SEPARATOR, ""
    return _OTHER, ""


@dataclass
class _Group:
    """A run of consecutive digit characters: [start, end) in the original text, its digits."""

    start: int
    end: int
    digits: str


def _runs(text: str) -> list[list[_Group]]:
    """The digit groups of the text, gathered into runs (groups joined by short separators)."""
    runs: list[list[_Group]] = []
    current: list[_Group] = []
    group: _Group | None = None
    gap = 0  # separator characters since the last digit
    for index, char in enumerate(text):
        kind, digit = classify(char)
        if kind == _DIGIT:
            if group is not None and gap == 0:
                group.end, group.digits = index + 1, group.digits + digit
            else:
                if current and gap > MAX_SEPARATOR_CHARS:
                    runs.append(current)
                    current = []
                group = _Group(index, index + 1, digit)
                current.append(group)
            gap = 0
        elif kind == _SEPARATOR and current:
            gap += 1
            group = None
        else:
            if current:
                runs.append(current)
            current, group, gap = [], None, 0
    if current:
        runs.append(current)
    return runs


def _looks_like_card(groups: list[_Group], digits: str) -> bool:
    if not MIN_PAN <= len(digits) <= MAX_PAN:
        return False
    if luhn_valid(digits):
        return True
    return tuple(len(g.digits) for g in groups) in _CARD_GROUPS


def _card_spans(groups: list[_Group]) -> list[tuple[int, int, str]]:
    """(start, end, digits) of the card numbers in one run: the whole run, else the longest
    card-like stretches of whole groups from left to right."""
    spans: list[tuple[int, int, str]] = []
    start = 0
    while start < len(groups):
        for end in range(len(groups), start, -1):
            part = groups[start:end]
            digits = "".join(g.digits for g in part)
            if _looks_like_card(part, digits):
                spans.append((part[0].start, part[-1].end, digits))
                start = end
                break
        else:
            start += 1
    return spans


def mask_card_numbers(text: str) -> str:
    """The text with every card number in it masked to its first six and last four digits."""
    if not text or sum(char.isdigit() for char in text) < MIN_PAN:
        return text
    out: list[str] = []
    position = 0
    for run in _runs(text):
        for start, end, digits in _card_spans(run):
            out.append(text[position:start])
            out.append(mask_pan(digits))
            position = end
    out.append(text[position:])
    return "".join(out)


def contains_card_number(text: str) -> bool:
    """True when the text holds an unmasked card number."""
    return mask_card_numbers(text) != text


def trailing_digits(text: str) -> str:
    """The digits of the run the text ends with (ASCII), '' when it ends otherwise.

    Separators after the last digit are allowed (``"4111 1111 "``), anything else is not.
    """
    runs = _runs(text)
    if not runs:
        return ""
    last = runs[-1][-1]
    if any(classify(char)[0] != _SEPARATOR for char in text[last.end :]):
        return ""
    if len(text) - last.end > MAX_SEPARATOR_CHARS:
        return ""
    return "".join(g.digits for g in runs[-1])


def _leading_run(text: str) -> list[_Group]:
    """The run the text starts with (after separators only), or []."""
    runs = _runs(text)
    if not runs:
        return []
    first = runs[0][0]
    if any(classify(char)[0] != _SEPARATOR for char in text[: first.start]):
        return []
    return runs[0]


def mask_continuation(tail: str, text: str) -> str:
    """Mask the digits the text starts with when they complete a card number begun in ``tail``.

    ``tail`` holds the trailing digits of the previous message(s) of the same side of the
    conversation. The longest card number (Luhn-valid, 13-19 digits) made of the whole tail and
    whole leading digit groups of the text is looked for; its part in this text is replaced by
    ``*`` entirely, so the earlier part (already stored and relayed) and this part together never
    show more digits than the earlier part did alone.
    """
    if not tail:
        return text
    groups = _leading_run(text)
    for end in range(len(groups), 0, -1):
        digits = tail + "".join(g.digits for g in groups[:end])
        if MIN_PAN <= len(digits) <= MAX_PAN and luhn_valid(digits):
            start, stop = groups[0].start, groups[end - 1].end
            return text[:start] + MASK_CHAR * (len(digits) - len(tail)) + text[stop:]
    return text


def next_tail(tail: str, masked: str) -> str:
    """The trailing digits to keep after a (masked) message: the tail grown by a message that
    is nothing but digits, else the digits the message ends with; at most MAX_PAN - 1."""
    ending = trailing_digits(masked)
    runs = _runs(masked)
    only_digits = (
        len(runs) == 1
        and ending
        and all(classify(char)[0] == _SEPARATOR for char in masked[: runs[0][0].start])
    )
    kept = tail + ending if only_digits else ending
    return kept[-(MAX_PAN - 1) :] if kept else ""
