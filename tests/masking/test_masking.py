"""Card numbers are masked to at most the first six and last four digits."""

from __future__ import annotations

import re

import pytest

from bot.masking import contains_card_number, luhn_valid, mask_card_numbers, mask_pan

# Luhn-valid test numbers of the card schemes (public test PANs).
VISA = "4111111111111111"
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"
VISA_19 = "4000000000000000006"  # 19 digits, Luhn-valid


@pytest.mark.parametrize("pan", [VISA, MASTERCARD, AMEX, VISA_19])
def test_the_test_numbers_are_luhn_valid(pan):
    assert luhn_valid(pan)


@pytest.mark.parametrize(
    "text, expected",
    [
        (f"my card is {VISA}", "my card is 411111******1111"),
        ("card 4111 1111 1111 1111 please", "card 411111******1111 please"),
        ("card 4111-1111-1111-1111.", "card 411111******1111."),
        ("amex 3782 822463 10005", "amex 378282*****0005"),
        (f"two: {MASTERCARD} and {AMEX}", "two: 555555******4444 and 378282*****0005"),
        (f"{VISA_19}", "400000*********0006"),
        ("card 4111 1111 1111 1111 exp 2027", "card 411111******1111 exp 2027"),
        # A mistyped number in the printed 4-4-4-4 grouping is still masked.
        ("4111 1111 1111 1112", "411111******1112"),
    ],
)
def test_card_numbers_are_masked_to_first_six_and_last_four(text, expected):
    assert mask_card_numbers(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "my order 1234567890123 arrived",  # 13 digits, not Luhn-valid, not card-grouped
        "call 0044 20 7946 0958",
        "transfer of 1000000 on 2026-11-29 at 12:30",
        "reference 12345",
        "",
    ],
)
def test_other_numbers_are_left_alone(text):
    assert mask_card_numbers(text) == text


def test_a_masked_number_keeps_no_more_than_ten_digits():
    for pan in (VISA, MASTERCARD, AMEX, VISA_19):
        masked = mask_pan(pan)
        assert len(re.sub(r"\D", "", masked)) <= 10
        assert masked.startswith(pan[:6]) and masked.endswith(pan[-4:])
        assert not contains_card_number(masked)


def test_masking_is_idempotent():
    once = mask_card_numbers(f"card {VISA}")
    assert mask_card_numbers(once) == once
