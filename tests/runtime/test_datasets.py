"""The dataset conversion (`bot.runtime.datasets`): naming, counts, escaping, determinism."""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from rasa.shared.nlu.training_data.loading import load_data

from bot.config import PROJECT_ROOT
from bot.runtime import datasets

SHARED = datasets.DEFAULT_SHARED
TRICKY_TEXTS = {
    "Card_Arrival": [
        'He said "where is it": #1 question?',
        "|starts with a pipe",
        "- starts with a dash",
        "50% off & more: yes, it's 'quoted'",
        "  padded\n\nacross   lines\t ",
        "costs £1, €2 or $3 > nothing",
        "ends with a colon:",
        "* star and ? mark",
    ],
    "reverted_card_payment?": ["Why was my payment reverted?", "why was my payment reverted?"],
}
OOS = {
    "oos_train": ["what's the weather: sunny?", "Why was my payment reverted?", "# hashtag"],
    "oos_val": ["tell me a joke"],
}


def write_shared(root: Path, rows: list[tuple[str, str]]) -> Path:
    (root / "banking77").mkdir(parents=True)
    (root / "clinc150").mkdir()
    with open(root / "banking77" / "train.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        writer.writerows(rows)
    (root / "clinc150" / "out_of_scope.json").write_text(json.dumps(OOS), encoding="utf-8")
    return root


def tricky_rows() -> list[tuple[str, str]]:
    return [(text, label) for label, texts in TRICKY_TEXTS.items() for text in texts]


def examples_by_intent(path: Path) -> dict[str, list[str]]:
    """Examples per intent as Rasa's own reader loads them."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for message in load_data(str(path)).intent_examples:
        grouped[message.get("intent")].append(message.get("text"))
    return dict(grouped)


@pytest.fixture
def converted(tmp_path: Path) -> dict[Path, str]:
    shared = write_shared(tmp_path / "shared", tricky_rows())
    files = datasets.convert(shared, root=tmp_path / "repo")
    datasets.write(files)
    return files


@pytest.mark.parametrize(
    ("label", "intent"),
    [
        ("card_arrival", "card_arrival"),
        ("Refund_not_showing_up", "refund_not_showing_up"),
        ("reverted_card_payment?", "reverted_card_payment"),
    ],
)
def test_intent_name_only_lowercases_and_drops_trailing_question_mark(label, intent):
    assert datasets.intent_name(label) == intent


def test_clean_text_collapses_whitespace_to_one_line():
    assert datasets.clean_text("  a\n\nb   c\t") == "a b c"


def test_tricky_texts_survive_rasa_reader_unchanged(tmp_path, converted):
    loaded = examples_by_intent(tmp_path / "repo" / "data/nlu/banking77.yml")
    expected = {
        datasets.intent_name(label): sorted({datasets.clean_text(t) for t in texts})
        for label, texts in TRICKY_TEXTS.items()
    }
    assert {intent: sorted(texts) for intent, texts in loaded.items()} == expected


def test_out_of_scope_drops_texts_labelled_as_banking(tmp_path, converted):
    loaded = examples_by_intent(tmp_path / "repo" / "data/nlu/out_of_scope.yml")
    assert sorted(loaded["out_of_scope"]) == sorted(["what's the weather: sunny?", "# hashtag"])


def test_out_of_scope_validation_split_stays_outside_training_data(tmp_path, converted):
    paths = {path.relative_to(tmp_path / "repo").as_posix() for path in converted}
    assert "eval/out_of_scope_val.yml" in paths
    loaded = examples_by_intent(tmp_path / "repo" / "eval/out_of_scope_val.yml")
    assert loaded == {"out_of_scope": ["tell me a joke"]}


def test_rules_send_every_intent_and_fallback_to_action_respond(converted):
    rules_path = next(path for path in converted if path.name == "respond.yml")
    rules = yaml.safe_load(converted[rules_path])["rules"]
    mapped = {rule["steps"][0]["intent"]: rule["steps"][1]["action"] for rule in rules}
    expected = {"card_arrival", "reverted_card_payment", "out_of_scope", "nlu_fallback"}
    expected |= set(datasets.CONVERSATION_INTENTS)
    assert set(mapped) == expected
    assert set(mapped.values()) == {"action_respond"}


def test_output_does_not_depend_on_input_order(tmp_path):
    rows = tricky_rows()
    first = datasets.convert(write_shared(tmp_path / "a", rows), root=tmp_path / "out")
    random.Random(7).shuffle(rows)
    second = datasets.convert(write_shared(tmp_path / "b", rows), root=tmp_path / "out")
    assert first == second


def test_multiline_example_is_rejected():
    with pytest.raises(ValueError, match="one trimmed line"):
        datasets.nlu_yaml({"greet": ["two\nlines"]}, source="test")


requires_shared = pytest.mark.skipif(
    not (SHARED / "banking77" / "train.csv").exists(), reason="../shared/datasets not present"
)


@requires_shared
def test_committed_files_match_a_fresh_conversion():
    for path, content in datasets.convert(SHARED).items():
        assert path.read_text(encoding="utf-8") == content, (
            f"{path} is stale: run python -m bot.runtime.datasets"
        )


@requires_shared
def test_committed_banking77_counts_match_the_csv():
    expected: dict[str, set[str]] = defaultdict(set)
    with open(SHARED / "banking77" / "train.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            expected[datasets.intent_name(row["category"])].add(datasets.clean_text(row["text"]))
    categories = json.loads((SHARED / "banking77" / "categories.json").read_text())
    loaded = examples_by_intent(PROJECT_ROOT / "data/nlu/banking77.yml")
    assert set(loaded) == {datasets.intent_name(label) for label in categories}
    assert {intent: len(texts) for intent, texts in loaded.items()} == {
        intent: len(texts) for intent, texts in expected.items()
    }


def test_domain_lists_exactly_the_converted_banking_intents():
    domain = yaml.safe_load((PROJECT_ROOT / "domain/faq.yml").read_text())
    loaded = examples_by_intent(PROJECT_ROOT / "data/nlu/banking77.yml")
    assert sorted(domain["intents"]) == sorted(loaded)


def test_out_of_scope_evaluation_queries_are_not_training_examples():
    training = {
        text
        for path in sorted((PROJECT_ROOT / "data/nlu").glob("*.yml"))
        for texts in examples_by_intent(path).values()
        for text in texts
    }
    held_out = examples_by_intent(PROJECT_ROOT / "eval/out_of_scope_val.yml")["out_of_scope"]
    assert len(held_out) > 0
    assert {text.casefold() for text in held_out}.isdisjoint(t.casefold() for t in training)
