"""Finding 4: card numbers are masked however they are written, across consecutive messages, and
never reach Rasa's tracker, the events database or Redis (real stack)."""

from __future__ import annotations

import pytest

from bot.analytics.event_sink import wait_drained
from bot.masking import mask_card_numbers
from bot.web.card_tail import CardMasker
from tests.security.helpers import (
    Customer,
    leaks,
    luhn_complete,
    redis_dump,
    sqlite_dump,
)

VISA = luhn_complete("453914880343646")  # 16 digits
AMEX = luhn_complete("37144963539843")  # 15 digits
LONG = luhn_complete("622126000000000000")  # 19 digits
SHORT = luhn_complete("422222222222")  # 13 digits


def fours(pan: str, sep: str) -> str:
    return sep.join(pan[i : i + 4] for i in range(0, len(pan), 4))


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in text)


def arabic_indic(text: str) -> str:
    return "".join(chr(0x0660 + int(c)) if c.isdigit() else c for c in text)


def math_bold(text: str) -> str:
    return "".join(chr(0x1D7CE + int(c)) if c.isdigit() else c for c in text)


SEPARATORS = {
    "space": " ",
    "dash": "-",
    "dot": ".",
    "slash": "/",
    "backslash": "\\",
    "underscore": "_",
    "double space": "  ",
    "no-break space": "\u00a0",
    "narrow no-break space": "\u202f",
    "thin space": "\u2009",
    "en space": "\u2002",
    "em space": "\u2003",
    "figure space": "\u2007",
    "ideographic space": "\u3000",
    "zero-width space": "\u200b",
    "zero-width non-joiner": "\u200c",
    "zero-width joiner": "\u200d",
    "word joiner": "\u2060",
    "byte order mark": "\ufeff",
    "soft hyphen": "\u00ad",
    "tab": "\t",
    "line feed": "\n",
    "crlf": "\r\n",
    "line separator": "\u2028",
    "en dash": "\u2013",
    "em dash": "\u2014",
    "minus sign": "\u2212",
    "hyphen": "\u2010",
    "non-breaking hyphen": "\u2011",
    "fullwidth hyphen": "\uff0d",
    "spaced dash": " - ",
    "spaced en dash": " \u2013 ",
    "spaced slash": " / ",
    "spaced dot": " . ",
    "dash and space": "- ",
}
CORPUS = {f"groups of four, {name}": fours(VISA, sep) for name, sep in SEPARATORS.items()}
CORPUS |= {
    "plain digits": VISA,
    "mixed separators": f"{VISA[:4]} {VISA[4:8]}-{VISA[8:12]}.{VISA[12:]}",
    "single digits spaced": " ".join(VISA),
    "pairs": " ".join(VISA[i : i + 2] for i in range(0, 16, 2)),
    "amex 4-6-5 spaces": f"{AMEX[:4]} {AMEX[4:10]} {AMEX[10:]}",
    "amex 4-6-5 dashes": f"{AMEX[:4]}-{AMEX[4:10]}-{AMEX[10:]}",
    "19 digits": LONG,
    "19 digits grouped": fours(LONG, " "),
    "13 digits": SHORT,
    "fullwidth digits": fullwidth(VISA),
    "fullwidth digits and spaces": fullwidth(fours(VISA, "\u3000")),
    "arabic-indic digits": arabic_indic(fours(VISA, " ")),
    "mathematical bold digits": math_bold(VISA),
    "in a sentence": f"my card is {fours(VISA, ' ')}, can you check it?",
    "glued to words": f"card{VISA}please",
    "in parentheses": f"({fours(VISA, '-')})",
    "in json": f'{{"card": "{VISA}"}}',
    "followed by an expiry": f"{fours(VISA, ' ')} 12/27 cvc 123",
    "two cards": f"{VISA} and {AMEX}",
    "after a label and colon": f"PAN:{fours(VISA, '.')}",
}


def test_the_corpus_has_at_least_forty_formats():
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("text", CORPUS.values(), ids=CORPUS.keys())
def test_a_card_number_in_any_format_is_masked(text):
    masked = mask_card_numbers(text)
    assert leaks(masked, [VISA, AMEX, LONG, SHORT]) == []
    assert "*" in masked


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567890123 arrived",
        "call +44 20 7946 0958 or 0800 123 456",
        "paid 1.000.000 on 2026-11-29 at 12:30, ref 12345",
        "IBAN GB29 NWBK 6016 1331 9268 19",
    ],
)
def test_numbers_that_are_not_cards_are_left_alone(text):
    assert mask_card_numbers(text) == text


async def test_a_number_split_over_two_messages_never_exists_in_one_place(redis_client):
    cards = CardMasker(redis_client, "sec", 600)
    first = await cards.mask("c1", "customer", f"my card is {VISA[:4]} {VISA[4:8]}")
    second = await cards.mask("c1", "customer", f"{VISA[8:12]} {VISA[12:]} thanks")
    assert first == f"my card is {VISA[:4]} {VISA[4:8]}"  # no card on its own: kept
    assert second == "******** thanks"
    assert VISA not in "".join(
        c
        for c in first + second + " ".join(await redis_client.mget(await redis_client.keys("*")))
        if c.isdigit()
    )


async def test_a_number_typed_four_digits_per_message_is_masked_at_the_last(redis_client):
    cards = CardMasker(redis_client, "sec", 600)
    sent = [await cards.mask("c2", "agent", VISA[i : i + 4]) for i in range(0, 16, 4)]
    assert sent[:3] == [VISA[0:4], VISA[4:8], VISA[8:12]]
    assert sent[3] == "****"


async def test_sides_and_conversations_keep_their_own_tail(redis_client):
    cards = CardMasker(redis_client, "sec", 600)
    await cards.mask("c3", "customer", VISA[:8])
    assert await cards.mask("c3", "agent", VISA[8:]) == VISA[8:]
    assert await cards.mask("c4", "customer", VISA[8:]) == VISA[8:]
    assert await cards.mask("c3", "customer", VISA[8:]) == "********"


@pytest.mark.model
async def test_no_card_number_reaches_rasa_redis_or_the_events_database(http, stack, redis):
    pans = [luhn_complete(f"4{index:02d}8201234567" + "00") for index in range(12)]
    formats = [
        lambda p: p,
        lambda p: fours(p, " "),
        lambda p: fours(p, "."),
        lambda p: fours(p, "\u00a0"),
        lambda p: fours(p, "\u200b"),
        lambda p: fours(p, " - "),
        lambda p: fours(p, "\u2013"),
        lambda p: fours(p, "/"),
        lambda p: fullwidth(p),
        lambda p: fours(p, "\t"),
    ]
    customer = await Customer.start(http, stack)
    for pan, shape in zip(pans, formats, strict=False):
        await customer.say(f"my card {shape(pan)} was charged twice")
    split = pans[10]
    await customer.say(f"the other card is {split[:4]} {split[4:8]}")
    await customer.say(f"{split[8:12]} {split[12:]}")
    forged = pans[11]
    status, _body, _ = await customer.send({"payload": f'/inform{{"card": "{forged}"}}'})
    assert status == 400
    status, _body, _ = await customer.send(
        {"payload": "/request_human", "title": fours(forged, " ")}
    )
    assert status == 200

    places = {
        "tracker": [str(await customer.tracker())],
        "history": [str(await customer.history())],
    }
    places["redis"] = list((await redis_dump(redis)).values())
    await wait_drained(redis, stack.namespace)  # the event sink has stored Rasa's events
    assert stack.events_db is not None and stack.events_db.exists()
    places["events db"] = sqlite_dump(stack.events_db)
    assert any(customer.conversation_id in row for row in places["events db"])
    for place, texts in places.items():
        found = [(text[:120], leaks(text, pans)) for text in texts if leaks(text, pans)]
        assert found == [], f"card numbers in {place}"
