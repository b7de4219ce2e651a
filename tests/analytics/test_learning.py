"""Fallback and handoff messages are exported as Rasa NLU training candidates for review."""

from __future__ import annotations

from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

from bot.analytics.learning import candidates, to_yaml
from bot.analytics.records import build_records

from .scenario import scenario


def test_candidates_are_fallbacks_and_handoff_triggers_with_disposition_and_topic():
    items = candidates(build_records(scenario()))
    by_text = {c.text: c for c in items}
    assert [c.text for c in items] == [
        "hmm my thing",
        "someone used my card",
        "agent please",
        "transfer thing",
        "the transfer",
    ]
    assert by_text["hmm my thing"].reason == "fallback"
    assert by_text["hmm my thing"].suggested_intent == "card_arrival"
    card = by_text["someone used my card"]
    assert (card.reason, card.topic, card.disposition) == ("handoff", "cards", "card_blocked")
    assert card.reason_codes == ("sensitive_topic",)
    assert by_text["agent please"].suggested_intent == "needs_review"
    # H's handoff came after "/affirm" (a button): its trigger is the last typed message,
    # already exported as a fallback, so it appears once.
    assert by_text["the transfer"].reason == "fallback"
    assert by_text["the transfer"].disposition == "answered"


def test_exported_yaml_loads_with_rasas_reader_and_keeps_the_metadata():
    text = to_yaml(candidates(build_records(scenario())))
    data = RasaYAMLReader().reads(text)
    examples = {m.get("text"): m for m in data.intent_examples}
    assert set(examples) >= {"hmm my thing", "someone used my card", "transfer thing"}
    assert examples["someone used my card"].get("intent") == "compromised_card"
    metadata = examples["someone used my card"].get("metadata")["example"]
    assert metadata["disposition"] == "card_blocked" and metadata["topic"] == "cards"
