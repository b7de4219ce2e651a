"""The validators actions apply to what they read from the tracker."""

from __future__ import annotations

import math

import pytest

from actions import validation


@pytest.mark.parametrize("value, expected", [(1, 1), (5, 5), ("3", 3), (" 4 ", 4)])
def test_a_rating_from_one_to_five_is_accepted(value, expected):
    assert validation.csat_score(value) == expected


@pytest.mark.parametrize(
    "value", ["", "12345", 12345, 0, 6, -1, "0", "6", "1.5", 2.0, True, None, [3], {"v": 3}, "٣"]
)
def test_an_empty_or_out_of_range_rating_is_refused(value):
    assert validation.csat_score(value) is None


@pytest.mark.parametrize("value", ["ada@example.com", " ada.lovelace+tag@mail.example.co.uk "])
def test_a_plain_email_is_accepted_stripped(value):
    assert validation.email(value) == value.strip()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "ada",
        "ada@",
        "@example.com",
        "ada@example",
        "ada@@example.com",
        "ada @example.com",
        "ada@exa mple.com",
        "ada@example.com\nBcc: eve@example.com",
        "a" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
        None,
        42,
    ],
)
def test_a_malformed_or_oversized_email_is_refused(value):
    assert validation.email(value) is None


def test_free_text_is_cut_stripped_and_loses_control_characters():
    assert validation.free_text("  hi\x00 there\x1b\n ok\t ") == "hi there\n ok"
    assert validation.free_text("x" * 5000) == "x" * validation.MAX_FREE_TEXT
    assert validation.free_text("abcdef", limit=3) == "abc"
    assert validation.free_text(["not", "text"]) == ""
    assert validation.free_text(None) == ""


@pytest.mark.parametrize("value", ["T1", "web-0a1b", "ticket_9.x:y"])
def test_identifiers_are_accepted(value):
    assert validation.identifier(value) == value


@pytest.mark.parametrize("value", ["", "a b", "T1\n", "x" * 65, 7, None, "../etc"])
def test_bad_identifiers_are_refused(value):
    assert validation.identifier(value) is None


def test_rating_ids_are_32_lowercase_hex_digits():
    assert validation.rating_id("0" * 32) == "0" * 32
    assert validation.rating_id("A" * 32) is None
    assert validation.rating_id("0" * 31) is None


def test_an_unknown_mode_is_bot():
    assert [validation.conversation_mode(m) for m in ("bot", "waiting", "agent")] == [
        "bot",
        "waiting",
        "agent",
    ]
    assert validation.conversation_mode("admin") == "bot"
    assert validation.conversation_mode(None) == "bot"


def test_only_domain_intents_are_kept():
    assert validation.intent_name("greet", {"greet"}) == "greet"
    assert validation.intent_name("restart", {"greet"}) == ""
    assert validation.intent_name(None, {"greet"}) == ""


@pytest.mark.parametrize(
    "value, expected", [(0.5, 0.5), (1, 1.0), (1.5, 0.0), (-0.1, 0.0), (math.nan, 0.0), ("1", 0.0)]
)
def test_confidences_outside_zero_to_one_are_zero(value, expected):
    assert validation.confidence(value) == expected


def test_only_the_boolean_true_is_a_true_flag():
    assert validation.flag(True) is True
    assert not any(validation.flag(v) for v in ("yes", "true", 1, "False", None))


def test_string_lists_keep_short_strings_only():
    assert validation.string_list(["a", 3, "", "b" * 100, "c"]) == ["a", "c"]
    assert validation.string_list("abc") == []
    assert len(validation.string_list(["x"] * 50)) == 20


def test_customer_metadata_is_validated_field_by_field():
    info = validation.customer_info(
        {"customer": {"id": "cust-9", "display_name": " Ada\nLovelace ", "verified": True}}
    )
    assert info == validation.CustomerInfo("cust-9", "Ada Lovelace", True)
    forged = validation.customer_info(
        {"customer_id": "x y", "customer_name": "J" * 500, "verified": "yes"}
    )
    assert forged.customer_id is None
    assert len(forged.display_name) == validation.MAX_NAME
    assert forged.verified is False
    assert validation.customer_info("not a dict") == validation.CustomerInfo(None, "", False)
