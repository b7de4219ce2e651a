"""Input checks at the gateway's edge: safe JSON, stream ids within 64 bits, ids that cannot
name another key."""

from __future__ import annotations

import pytest

from bot.web.errors import ApiError
from bot.web.inputs import MAX_DEPTH, loads, valid_event_id, valid_id


@pytest.mark.parametrize(
    "text",
    [
        "[" * 50_000,
        "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
        '{"a": NaN}',
        '"\\udc00"',
        b"\xff",
        '{"x": Infinity}',
        "{",
    ],
)
def test_hostile_json_is_a_400(text):
    with pytest.raises(ApiError) as refused:
        loads(text)
    assert refused.value.status == 400


def test_json_at_the_depth_limit_and_escaped_pairs_are_fine():
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert loads('{"t": "\\ud83d\\ude00"}') == {"t": "\U0001f600"}


@pytest.mark.parametrize(
    "value, ok",
    [
        ("0-0", True),
        ("1732850000000-12", True),
        ("18446744073709551615-18446744073709551615", True),
        ("18446744073709551616-0", False),
        ("1-99999999999999999999", False),
        ("1", False),
        ("-1-0", False),
        (5, False),
        ("1-0 ", False),
    ],
)
def test_event_ids_must_fit_in_64_bits(value, ok):
    assert valid_event_id(value) is ok


@pytest.mark.parametrize(
    "value, ok",
    [
        ("T1", True),
        ("web-0123abcd", True),
        ("T1:msgs", False),
        ("a b", False),
        ("x*", False),
        ("{tag}", False),
        ("", False),
        ("a" * 129, False),
        (None, False),
    ],
)
def test_ids_cannot_carry_a_key_suffix(value, ok):
    assert valid_id(value) is ok
