"""What the project's spaCy pipeline (`python -m bot.nlu.spacy_model build`) extracts."""

from pathlib import Path

import pytest
import spacy
from spacy.language import Language

from bot.nlu import spacy_model


@pytest.fixture(scope="module")
def nlp(tmp_path_factory: pytest.TempPathFactory) -> Language:
    out = tmp_path_factory.mktemp("spacy") / "en_payments"
    assert spacy_model.build(out) is True
    return spacy.load(out)


def entities(nlp: Language, text: str) -> list[tuple[str, str]]:
    return [(ent.text, ent.label_) for ent in nlp(text).ents]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I sent £25.50 to my friend", [("£25.50", "AMOUNT")]),
        ("they charged me $3k", [("$3k", "AMOUNT")]),
        ("I want to exchange 100 euros", [("100 euros", "AMOUNT")]),
        ("a top-up of €10,000.00", [("€10,000.00", "AMOUNT")]),
        ("top up 25GBP", [("25GBP", "AMOUNT")]),
        ("USD 40 went missing", [("USD 40", "AMOUNT")]),
        ("I topped up 20 quid", [("20 quid", "AMOUNT")]),
        ("paid 40 us dollars", [("40 us dollars", "AMOUNT")]),
        ("what is the rate from EUR to dollars", [("EUR", "CURRENCY"), ("dollars", "CURRENCY")]),
        ("can I hold US dollars", [("US dollars", "CURRENCY")]),
        ("do you support pound sterling", [("pound sterling", "CURRENCY")]),
        ("is € accepted", [("€", "CURRENCY")]),
        ("the payment I made yesterday", [("yesterday", "DATE")]),
        ("it was charged on 2024-03-12", [("2024-03-12", "DATE")]),
        ("on 12/03/2024", [("12/03/2024", "DATE")]),
        ("since 12 March", [("12 March", "DATE")]),
        ("since the 3rd of May 2024", [("3rd of May 2024", "DATE")]),
        ("on March 12th, 2024", [("March 12th, 2024", "DATE")]),
        ("the transfer from last Friday", [("last Friday", "DATE")]),
        ("I ordered it 3 days ago", [("3 days ago", "DATE")]),
        ("sometime last week", [("last week", "DATE")]),
        ("my card ending 1234 was declined", [("card ending 1234", "CARD_LAST4")]),
        ("the visa ending in 9876", [("visa ending in 9876", "CARD_LAST4")]),
        ("last four digits 4321", [("last four digits 4321", "CARD_LAST4")]),
        ("the last 4 digits are 0042", [("last 4 digits are 0042", "CARD_LAST4")]),
        ("card number **** **** **** 1234", [("**** **** **** 1234", "CARD_LAST4")]),
        ("the card xxxx-xxxx-xxxx-9876", [("xxxx-xxxx-xxxx-9876", "CARD_LAST4")]),
        ("payment TX-8F3K2L9Q failed", [("TX-8F3K2L9Q", "TRANSACTION_REF")]),
        ("ref tx-8f3k2l9q", [("tx-8f3k2l9q", "TRANSACTION_REF")]),
        ("reference number 12345678", [("reference number 12345678", "TRANSACTION_REF")]),
        ("email me at jo.doe@example.co.uk", [("jo.doe@example.co.uk", "EMAIL")]),
        (
            "£25 left my card ending 1234 yesterday, ref TX-AB12CD34, mail ann@pennant.example",
            [
                ("£25", "AMOUNT"),
                ("card ending 1234", "CARD_LAST4"),
                ("yesterday", "DATE"),
                ("TX-AB12CD34", "TRANSACTION_REF"),
                ("ann@pennant.example", "EMAIL"),
            ],
        ),
    ],
)
def test_extracts_payment_entities(nlp: Language, text: str, expected: list) -> None:
    assert entities(nlp, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "my card still hasn't arrived",
        "I have 4 cards and 1234 apples",  # a number is no amount without a currency
        "my pin is 1234",  # four digits without card context
        "may I top up by card",  # "may" is no date without a day
        "I am 25 years old",
        "a - 2020",
        "TX-123 is too short for a reference",
        "ref 1234",  # references have eight digits
        "the rate is good",
        "contact support at pennant",
    ],
)
def test_extracts_nothing_from_plain_text(nlp: Language, text: str) -> None:
    assert entities(nlp, text) == []


def test_pipeline_is_a_blank_tokenizer_with_rules_and_no_vectors(nlp: Language) -> None:
    assert nlp.pipe_names == ["entity_ruler"]
    assert nlp.vocab.vectors.shape[0] == 0


def test_build_skips_when_up_to_date_and_rebuilds_when_forced(tmp_path: Path) -> None:
    out = tmp_path / "en_payments"
    assert spacy_model.build(out) is True
    assert spacy_model.build(out) is False
    (out / spacy_model.STAMP_FILE).write_text("stale\n")
    assert spacy_model.build(out) is True
    assert spacy_model.build(out, force=True) is True
    assert spacy_model.is_up_to_date(out)
