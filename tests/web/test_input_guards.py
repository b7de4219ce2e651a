"""The gateway's input guards on a real Redis: offered buttons, turn reservations, card tails."""

from __future__ import annotations

from bot.masking import mask_continuation, next_tail, trailing_digits
from bot.web.offers import REQUEST_HUMAN, OfferedButtons
from bot.web.turns import TurnReservations, TurnState

RATING = [{"type": "message", "buttons": [{"title": "5 (great)", "payload": "/csat_rating"}]}]


async def test_the_latest_bot_turn_replaces_the_offered_buttons(redis_client):
    offers = OfferedButtons(redis_client, "t", 60)
    assert await offers.title_of("c", "/csat_rating") is None
    await offers.replace("c", RATING)
    assert await offers.title_of("c", "/csat_rating") == "5 (great)"
    assert 0 < await redis_client.ttl(offers.key("c")) <= 60
    await offers.replace("c", [{"type": "message", "text": "thanks"}])
    assert await offers.title_of("c", "/csat_rating") is None
    assert await offers.title_of("c", REQUEST_HUMAN) == "Talk to a person"
    assert await offers.title_of("other", "/csat_rating") is None


async def test_only_one_caller_reserves_a_client_id(redis_client):
    turns = TurnReservations(redis_client, "t", 60, 600)
    assert await turns.state("c", "m1") is TurnState.absent
    assert await turns.reserve("c", "m1") is True
    assert await turns.reserve("c", "m1") is False
    assert await turns.state("c", "m1") is TurnState.pending
    await turns.finish("c", "m1", TurnState.unknown)
    assert await turns.reserve("c", "m1") is False
    assert await turns.state("c", "m1") is TurnState.unknown
    assert 60 < await redis_client.ttl(turns.key("c", "m1")) <= 600


async def test_a_released_reservation_can_be_taken_again(redis_client):
    turns = TurnReservations(redis_client, "t", 60, 600)
    assert await turns.reserve("c", "m2")
    await turns.finish("c", "m2", TurnState.absent)
    assert await turns.reserve("c", "m2")


def test_trailing_digits_are_those_the_text_ends_with():
    assert trailing_digits("card 4111 1111 ") == "41111111"
    assert trailing_digits("card 4111 1111 thanks") == ""
    assert trailing_digits("411111******1111") == "1111"
    assert next_tail("4111", "1111") == "41111111"
    assert next_tail("4111", "and 1111") == "1111"
    assert next_tail("", "x" + "1" * 30) == "1" * 18


def test_a_continuation_is_masked_only_when_it_completes_a_luhn_valid_number():
    assert mask_continuation("41111111", "1111 1111 ok") == "******** ok"
    assert mask_continuation("41111111", "1111 1112 ok") == "1111 1112 ok"
    assert mask_continuation("41111111", "ok 1111 1111") == "ok 1111 1111"
    assert mask_continuation("", "1111 1111") == "1111 1111"
