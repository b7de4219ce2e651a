"""Familiarity of a message (`bot.nlu.familiarity`) and its place in the classifier's output."""

from __future__ import annotations

import numpy as np
import pytest
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource

from bot.nlu.familiarity import ExampleIndex, cosine, pack, unpack
from bot.nlu.intent_classifier import SentenceIntentClassifier
from bot.nlu.sentence_encoder import shared_encoder
from tests.nlu.test_components import context, parse, small_data, storage, trained  # noqa: F401


def test_packed_embedding_round_trips_within_quantisation_error():
    vector = shared_encoder().encode(["where is my card"])[0]
    packed = pack(vector)
    assert len(packed) == 512
    restored = unpack(packed)
    assert restored is not None
    assert cosine(vector, restored) >= 0.995


@pytest.mark.parametrize("bad", [None, 3, "", "!" * 512, "A" * 511, {"a": 1}])
def test_unpack_refuses_anything_but_a_packed_embedding(bad):
    assert unpack(bad) is None


def test_score_is_the_mean_of_the_nearest_examples_of_the_intent():
    vectors = np.eye(4, dtype=np.float32)
    index = ExampleIndex.fit(vectors, ["a", "a", "b", "out_of_scope"])
    assert list(index.intents) == ["a", "b"]  # out of scope is never a familiar answer
    query = np.asarray([1.0, 0.0, 0.0, 0.0], dtype=np.float32)
    assert index.score(query, "a", k=2).score == pytest.approx(0.5)
    assert index.score(query, "a", k=1).score == pytest.approx(1.0)
    assert index.score(query, "b").score == pytest.approx(0.0)
    assert index.score(query, "out_of_scope").score is None
    assert index.score(query, "b").nearest_intent == "a"  # the closest centroid
    assert index.score(query, "b").nearest == pytest.approx(2**-0.5, abs=1e-4)


def test_classifier_output_carries_familiarity_and_embedding(storage, trained):  # noqa: F811
    classifier, _ = trained
    message = parse(storage, classifier, "my new card still hasn't come in the post")
    familiarity = message.get("familiarity")
    assert familiarity["intent"] == message.get("intent")["name"] == "card_arrival"
    assert familiarity["score"] > 0.6
    assert unpack(message.get("embedding")) is not None
    assert "familiarity" in message.output_properties and "embedding" in message.output_properties


def test_an_unfamiliar_message_scores_lower_than_a_familiar_one(storage, trained):  # noqa: F811
    classifier, _ = trained
    familiar = parse(storage, classifier, "my top up didn't go through")
    unfamiliar = parse(
        storage, classifier, "a man i met online wants me to top up a card and send him the code"
    )
    assert unfamiliar.get("familiarity")["score"] < familiar.get("familiarity")["score"] - 0.15


def test_loaded_classifier_keeps_the_index(storage: LocalModelStorage, trained):  # noqa: F811
    classifier, resource = trained
    loaded = SentenceIntentClassifier.load({}, storage, resource, context("classifier"))
    text = "exchange rates?"
    before = parse(storage, classifier, text).get("familiarity")
    after = parse(storage, loaded, text).get("familiarity")
    assert after["intent"] == before["intent"]
    assert after["score"] == pytest.approx(before["score"], abs=2e-3)  # stored as float16


def test_untrained_classifier_adds_no_familiarity(storage: LocalModelStorage):  # noqa: F811
    classifier = SentenceIntentClassifier.create({}, storage, Resource("none"), context("c"))
    assert parse(storage, classifier, "hello").get("familiarity") is None
