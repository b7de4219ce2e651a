"""The NLU benchmark's fixed split and its fallback rule (`bench.nlu`)."""

from __future__ import annotations

from collections import Counter

import pytest
from rasa.nlu.classifiers.fallback_classifier import FallbackClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bench import nlu


@pytest.fixture(scope="module")
def split() -> nlu.Split:
    return nlu.benchmark_split()


def test_split_is_fixed_disjoint_and_stratified(split: nlu.Split) -> None:
    again = nlu.benchmark_split()
    assert again.test == split.test
    assert not set(split.test) & set(split.train)
    banking = nlu.read_examples(nlu.BANKING_FILE)
    assert len(split.test) == pytest.approx(0.2 * len(banking), abs=1)
    per_intent = Counter(intent for _, intent in banking)
    held = Counter(intent for _, intent in split.test)
    assert set(held) == set(per_intent)
    for intent, count in per_intent.items():
        assert held[intent] == pytest.approx(0.2 * count, abs=1)


def test_training_part_keeps_every_other_nlu_file(split: nlu.Split) -> None:
    intents = {intent for _, intent in split.train}
    assert {"out_of_scope", "greet", "request_human"} <= intents
    oos_eval = {text for text, _ in nlu.read_examples(nlu.OOS_EVAL_FILE)}
    assert not oos_eval & {text for text, _ in split.train}


def test_validation_split_is_carved_from_training_only(split: nlu.Split) -> None:
    rest, val_oos = nlu.validation_split(split)
    assert not set(rest.test) & set(split.test)
    assert set(rest.test) <= set(split.train)
    assert val_oos and all(intent == "out_of_scope" for _, intent in val_oos)
    assert not (set(rest.test) | set(val_oos)) & set(rest.train)


@pytest.mark.parametrize(
    "ranking",
    [
        [("card_arrival", 0.9), ("card_delivery_estimate", 0.05)],
        [("card_arrival", 0.45), ("card_delivery_estimate", 0.40)],
        [("card_arrival", 0.35), ("card_delivery_estimate", 0.10)],
        [("card_arrival", 0.62), ("card_delivery_estimate", 0.30)],
        [("card_arrival", 0.99)],
    ],
)
def test_fallback_rule_matches_rasas_fallback_classifier(ranking: list) -> None:
    threshold, ambiguity = 0.4, 0.1
    message = Message(data={TEXT: "x"})
    message.set(INTENT, {"name": ranking[0][0], "confidence": ranking[0][1]})
    message.set(INTENT_RANKING_KEY, [{"name": n, "confidence": c} for n, c in ranking])
    rasa = FallbackClassifier({"threshold": threshold, "ambiguity_threshold": ambiguity})
    rasa.process([message])
    assert nlu.falls_back(ranking, threshold, ambiguity) == (
        message.get(INTENT)["name"] == "nlu_fallback"
    )


def test_thresholds_catch_out_of_scope_within_the_inscope_budget() -> None:
    # 1000 confident correct answers, 10 wrong low-confidence guesses, 4 correct but unsure
    inscope = [([("card_arrival", 0.95), ("card_linking", 0.01)], "card_arrival")] * 1000
    inscope += [([("card_linking", 0.35), ("card_arrival", 0.30)], "card_arrival")] * 10
    inscope += [([("card_arrival", 0.42), ("card_linking", 0.20)], "card_arrival")] * 4
    oos = [[("out_of_scope", 0.9), ("card_arrival", 0.05)]] * 6
    oos += [[("card_arrival", 0.38), ("out_of_scope", 0.30)]] * 4
    chosen = nlu.pick_thresholds(inscope, oos)
    assert chosen["validation_oos_caught_percent"] == 100.0
    assert chosen["validation_wrong_answers_caught_percent"] == 100.0
    assert chosen["validation_inscope_loss_points"] <= nlu.MAX_INSCOPE_LOSS - nlu.SAFETY_MARGIN
    assert 0.38 < chosen["threshold"] <= 0.95 or chosen["ambiguity_threshold"] > 0.08


def test_thresholds_never_exceed_the_loss_budget() -> None:
    # every answer is correct but unsure: any threshold above 0.5 would cost them all
    inscope = [([("card_arrival", 0.5), ("card_linking", 0.45)], "card_arrival")] * 100
    oos = [[("card_arrival", 0.3), ("out_of_scope", 0.2)]]
    chosen = nlu.pick_thresholds(inscope, oos)
    assert chosen["validation_inscope_loss_points"] == 0.0
    assert chosen["threshold"] <= 0.5 and chosen["ambiguity_threshold"] < 0.05


def test_written_training_data_reads_back_verbatim(tmp_path, split: nlu.Split) -> None:
    tricky = [('He said "where is it"?', "card_arrival"), ("50% off: £3 - yes", "fee")]
    examples = split.train[:50] + tricky
    path = tmp_path / "nlu.yml"
    nlu.write_nlu_yaml(examples, path)
    assert sorted(nlu.read_examples(path)) == sorted(examples)


def test_thresholds_keep_the_safety_margin() -> None:
    # 4 correct but unsure answers of 1000 (0.4 points) hide behind a threshold of 0.45: within the
    # bare 0.5 target, not within the budget once the safety margin is taken off
    inscope = [([("card_arrival", 0.95), ("card_linking", 0.01)], "card_arrival")] * 996
    inscope += [([("card_arrival", 0.42), ("card_linking", 0.02)], "card_arrival")] * 4
    oos = [[("card_arrival", 0.40), ("out_of_scope", 0.02)]]
    assert nlu.pick_thresholds(inscope, oos, max_loss=0.5)["validation_oos_caught_percent"] == 100
    chosen = nlu.pick_thresholds(inscope, oos)
    assert chosen["validation_inscope_loss_points"] <= 0.35
    assert chosen["validation_oos_caught_percent"] == 0.0
