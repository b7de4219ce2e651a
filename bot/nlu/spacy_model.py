"""The project's own spaCy pipeline `en_payments`: a blank English tokenizer plus entity rules.

The official pretrained pipelines cannot be downloaded here, so the pipeline is built from the
rules in this module: `python -m bot.nlu.spacy_model build [--out PATH]` writes it (default
`.cache/spacy/en_payments`, which `config.yml` loads through Rasa's `SpacyNLP`) and skips the
work when the pipeline on disk was built from the same rules. Entities:

- AMOUNT: a number with a currency ("£25.50", "$3k", "100 euros", "25GBP", "USD 40");
- CURRENCY: a currency on its own ("GBP", "euros", "$", "US dollars");
- DATE: "yesterday", "last Friday", "12 March", "March 12th 2024", "2024-03-12", "12/03/2024",
  "3 days ago", "last week";
- CARD_LAST4: "card ending 1234", "ending in 1234", "last four digits 1234", "last 4 digits are 1234";
- TRANSACTION_REF: "TX-" and eight letters or digits ("TX-8F3K2L9Q"), or "ref"/"reference" and
  eight digits ("ref 12345678");
- EMAIL: an email address.

The pipeline has no word vectors; nothing in `config.yml` needs them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spacy.language import Language

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = PROJECT_ROOT / ".cache" / "spacy" / "en_payments"
STAMP_FILE = "rules.sha256"
Pattern = dict[str, Any]

CURRENCY_CODES = ["gbp", "eur", "usd", "chf", "jpy", "aud", "cad", "pln", "sek", "nok", "dkk"]
CURRENCY_WORDS = [
    "pound", "pounds", "quid", "euro", "euros", "dollar", "dollars", "yen", "franc", "francs",
    "sterling", "zloty", "krona", "kronor", "krone",
]  # fmt: skip
CURRENCY_SYMBOLS = ["£", "€", "$", "¥"]
MONTHS = [
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec",
]  # fmt: skip
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
RELATIVE_DAYS = ["today", "yesterday", "tomorrow", "tonight"]
PERIODS = ["day", "days", "week", "weeks", "month", "months", "year", "years"]

NUMBER = r"^\d{1,3}(,\d{3})*(\.\d{1,2})?$|^\d+(\.\d{1,2})?$"
NUMBER_K = r"^\d+(\.\d+)?[km]$"
NUMBER_WITH_CODE = r"^\d+(\.\d{1,2})?(" + "|".join(CURRENCY_CODES) + r")$"
DAY_OF_MONTH = r"^([1-9]|[12]\d|3[01])(st|nd|rd|th)?$"
YEAR = r"^(19|20)\d{2}$"
NUMERIC_DATE = r"^\d{1,2}[/.]\d{1,2}[/.](\d{2}|\d{4})$"
LAST4 = r"^\d{4}$"


def _currency() -> list[Pattern]:
    return [
        {"LOWER": {"IN": CURRENCY_CODES + CURRENCY_WORDS}},
        {"TEXT": {"IN": CURRENCY_SYMBOLS}},
    ]


def amount_patterns() -> list[list[Pattern]]:
    number = {"LOWER": {"REGEX": f"{NUMBER}|{NUMBER_K}"}}
    symbol = {"TEXT": {"IN": CURRENCY_SYMBOLS}}
    code_or_word = {"LOWER": {"IN": CURRENCY_CODES + CURRENCY_WORDS}}
    dollars = {"LOWER": {"IN": ["dollar", "dollars"]}}
    return [
        [symbol, number],
        [number, code_or_word],
        [number, {"LOWER": {"IN": ["us", "u.s."]}}, dollars],
        [{"LOWER": {"IN": CURRENCY_CODES}}, number],
        [{"LOWER": {"REGEX": NUMBER_WITH_CODE}}],
    ]


def currency_patterns() -> list[list[Pattern]]:
    return [
        [{"LOWER": {"IN": ["us", "u.s.", "american", "australian", "canadian"]}},
         {"LOWER": {"IN": ["dollar", "dollars"]}}],
        [{"LOWER": "pound"}, {"LOWER": "sterling"}],
    ] + [[p] for p in _currency()]  # fmt: skip


def date_patterns() -> list[list[Pattern]]:
    day = {"LOWER": {"REGEX": DAY_OF_MONTH}}
    month = {"LOWER": {"IN": MONTHS}}
    year = {"TEXT": {"REGEX": YEAR}, "OP": "?"}
    comma = {"TEXT": ",", "OP": "?"}
    of = {"LOWER": "of", "OP": "?"}
    digits = {"TEXT": {"REGEX": r"^\d{2}$"}}
    return [
        [{"LOWER": {"IN": RELATIVE_DAYS}}],
        [{"LOWER": {"IN": ["last", "this", "next", "past"]}}, {"LOWER": {"IN": WEEKDAYS + PERIODS[::2]}}],
        [{"LOWER": {"IN": WEEKDAYS}}],
        [{"LOWER": {"IN": ["the", "a"]}, "OP": "?"}, {"LOWER": "day"}, {"LOWER": "before"}, {"LOWER": "yesterday"}],
        [{"LIKE_NUM": True}, {"LOWER": {"IN": PERIODS}}, {"LOWER": "ago"}],
        [{"LOWER": {"IN": ["a", "an"]}}, {"LOWER": {"IN": PERIODS[::2]}}, {"LOWER": "ago"}],
        [day, of, month, comma, year],
        [month, day, comma, year],
        [{"TEXT": {"REGEX": NUMERIC_DATE}}],
        [{"TEXT": {"REGEX": YEAR}}, {"TEXT": "-"}, digits, {"TEXT": "-"}, digits],
    ]  # fmt: skip


def card_last4_patterns() -> list[list[Pattern]]:
    digits = {"TEXT": {"REGEX": LAST4}}
    card = {"LOWER": {"IN": ["card", "visa", "mastercard", "debit", "credit"]}}
    linking = {"LOWER": {"IN": ["in", "with", "is", "are", "being", ":", "-"]}, "OP": "*"}
    last = {"LOWER": {"IN": ["last", "final"]}}
    four = {"LOWER": {"IN": ["four", "4"]}}
    return [
        [card, {"LOWER": {"IN": ["ending", "ends", "ended"]}}, linking, digits],
        [{"LOWER": {"IN": ["ending", "ends"]}}, linking, digits],
        [last, four, {"LOWER": {"IN": ["digits", "numbers", "digit"]}, "OP": "?"}, linking, digits],
        [{"TEXT": {"REGEX": r"^[xX*•]+$"}}, {"TEXT": {"REGEX": r"^[xX*•-]+$"}, "OP": "*"},
         {"TEXT": {"REGEX": r"^([xX*•]+-)?\d{4}$"}}],
    ]  # fmt: skip


def transaction_ref_patterns() -> list[list[Pattern]]:
    return [
        [{"TEXT": {"REGEX": r"^(?i:tx)-[A-Za-z0-9]{8}$"}}],
        [{"LOWER": "tx"}, {"TEXT": "-"}, {"TEXT": {"REGEX": r"^[A-Za-z0-9]{8}$"}}],  # "TX-AB..." splits
        [{"LOWER": {"IN": ["ref", "ref.", "reference", "ref:", "reference:"]}},
         {"LOWER": {"IN": ["no", "no.", "number", ":", "#", "is"]}, "OP": "*"},
         {"TEXT": {"REGEX": r"^#?\d{8}$"}}],
    ]  # fmt: skip


def email_patterns() -> list[list[Pattern]]:
    return [[{"LIKE_EMAIL": True}]]


def entity_patterns() -> list[dict[str, Any]]:
    """Every rule of the entity ruler, as spaCy pattern dicts (label + token pattern)."""
    groups = {
        "AMOUNT": amount_patterns(),
        "CURRENCY": currency_patterns(),
        "DATE": date_patterns(),
        "CARD_LAST4": card_last4_patterns(),
        "TRANSACTION_REF": transaction_ref_patterns(),
        "EMAIL": email_patterns(),
    }
    return [
        {"label": label, "pattern": pattern}
        for label, patterns in groups.items()
        for pattern in patterns
    ]


def build_pipeline() -> Language:
    """A fresh in-memory `en_payments` pipeline (blank English tokenizer + entity ruler)."""
    import spacy  # imported here: spaCy pulls in TensorFlow, an up-to-date check needs neither

    nlp = spacy.blank("en")
    nlp.meta.update(
        name="payments",
        version="1.0.0",
        description="Blank English tokenizer with entity rules for payments support messages.",
        license="MIT",
    )
    ruler = nlp.add_pipe("entity_ruler", config={"overwrite_ents": True})
    ruler.add_patterns(entity_patterns())
    return nlp


def rules_fingerprint() -> str:
    """Hash of the rules and of spaCy's version: the built pipeline is stale when it changes."""
    payload = json.dumps({"spacy": version("spacy"), "patterns": entity_patterns()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def is_up_to_date(out: Path) -> bool:
    stamp = out / STAMP_FILE
    return stamp.is_file() and stamp.read_text().strip() == rules_fingerprint()


def build(out: Path = DEFAULT_OUTPUT, *, force: bool = False) -> bool:
    """Write the pipeline to `out` unless it is already built from the same rules.

    Returns True when it (re)built the pipeline.
    """
    if not force and is_up_to_date(out):
        return False
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    build_pipeline().to_disk(tmp)
    (tmp / STAMP_FILE).write_text(rules_fingerprint() + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.nlu.spacy_model", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="build the en_payments pipeline (if stale)")
    build_cmd.add_argument("--out", type=Path, default=DEFAULT_OUTPUT)
    build_cmd.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    built = build(args.out, force=args.force)
    print(f"{'built' if built else 'up to date'}: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
