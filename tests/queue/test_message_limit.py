"""The one message limit (bot.queue.validate): characters, and a byte cap every text within the
character limit fits, so no text is taken by one check and refused by the other."""

from __future__ import annotations

import pytest

from bot.queue import InvalidInput, MessageTooLarge
from bot.queue.validate import MAX_MESSAGE_BYTES, MAX_MESSAGE_CHARS, check_message_text
from bot.web.conversations import MAX_TEXT_CHARS


@pytest.mark.parametrize(
    "char", ["x", "é", "€", "💳"], ids=["1-byte", "2-byte", "3-byte", "4-byte"]
)
def test_any_text_within_the_character_limit_is_within_the_byte_cap(char):
    assert check_message_text(char * MAX_MESSAGE_CHARS) == char * MAX_MESSAGE_CHARS
    with pytest.raises(MessageTooLarge, match=f"the limit is {MAX_MESSAGE_CHARS} characters"):
        check_message_text(char * (MAX_MESSAGE_CHARS + 1))


def test_a_smaller_byte_cap_is_still_enforced():
    with pytest.raises(MessageTooLarge, match="the limit is 10 bytes"):
        check_message_text("€" * 4, max_bytes=10)


@pytest.mark.parametrize("text", ["", "   ", None, 5, "\ud800 lone surrogate"])
def test_empty_or_malformed_text_is_invalid(text):
    with pytest.raises(InvalidInput):
        check_message_text(text)


def test_the_gateway_uses_the_same_limit():
    assert MAX_TEXT_CHARS == MAX_MESSAGE_CHARS
    assert MAX_MESSAGE_BYTES == 4 * MAX_MESSAGE_CHARS
