"""The NLU graph components through Rasa's own types: featurizer, classifier, persistence."""

from __future__ import annotations

import random

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.loading import load_data
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.config import PROJECT_ROOT
from bot.nlu import intent_classifier
from bot.nlu.intent_classifier import SentenceIntentClassifier
from bot.nlu.sentence_encoder import DIMENSION
from bot.nlu.sentence_featurizer import MiniLMFeaturizer

INTENTS = ("card_arrival", "exchange_rate", "lost_or_stolen_card", "top_up_failed")
PER_INTENT = 25


@pytest.fixture(scope="module")
def small_data() -> TrainingData:
    """A few real Banking77 intents and real out-of-scope examples, a fixed sample of each."""
    full = load_data(str(PROJECT_ROOT / "data" / "nlu"))
    keep: list[Message] = []
    for intent in (*INTENTS, "out_of_scope"):
        examples = [m for m in full.intent_examples if m.get(INTENT) == intent]
        keep += random.Random(7).sample(examples, PER_INTENT)
    return TrainingData(training_examples=keep)


def context(name: str) -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), node_name=name)


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> LocalModelStorage:
    return LocalModelStorage(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def trained(
    storage: LocalModelStorage, small_data: TrainingData
) -> tuple[SentenceIntentClassifier, Resource]:
    return train_classifier(storage, small_data)


def featurizer(storage: LocalModelStorage) -> MiniLMFeaturizer:
    return MiniLMFeaturizer.create(
        {**MiniLMFeaturizer.get_default_config(), "alias": "minilm"},
        storage,
        Resource("minilm"),
        context("minilm"),
    )


def train_classifier(
    storage: LocalModelStorage, data: TrainingData
) -> tuple[SentenceIntentClassifier, Resource]:
    resource = Resource("classifier")
    classifier = SentenceIntentClassifier.create({}, storage, resource, context("classifier"))
    featurizer(storage).process_training_data(data)
    classifier.train(data)
    return classifier, resource


def parse(storage: LocalModelStorage, classifier, text: str) -> Message:
    message = Message(data={TEXT: text})
    featurizer(storage).process([message])
    classifier.process([message])
    return message


def test_featurizer_adds_one_unit_sentence_feature(storage: LocalModelStorage) -> None:
    message = Message(data={TEXT: "where is my card"})
    featurizer(storage).process([message])
    sequence, sentence = message.get_dense_features(TEXT)
    assert sequence is None
    assert sentence.features.shape == (1, DIMENSION)
    assert np.linalg.norm(sentence.features) == pytest.approx(1.0, abs=1e-5)


def test_featurizer_skips_messages_without_text(storage: LocalModelStorage) -> None:
    message = Message(data={INTENT: "greet"})
    featurizer(storage).process([message])
    assert message.get_dense_features(TEXT) == (None, None)


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("my new card still hasn't come in the post", "card_arrival"),
        ("what rate do you use to convert pounds to euros", "exchange_rate"),
        ("someone stole my card, block it please", "lost_or_stolen_card"),
        ("my top up didn't go through", "top_up_failed"),
        ("what's the weather in Paris", "out_of_scope"),
    ],
)
def test_classifier_predicts_unseen_phrasings(
    storage: LocalModelStorage, trained: tuple, text: str, intent: str
) -> None:
    classifier, _ = trained
    message = parse(storage, classifier, text)
    assert message.get(INTENT)["name"] == intent


def test_ranking_is_sorted_probabilities_headed_by_the_intent(
    storage: LocalModelStorage, trained: tuple
) -> None:
    classifier, _ = trained
    message = parse(storage, classifier, "how long does card delivery take")
    ranking = message.get(INTENT_RANKING_KEY)
    confidences = [entry["confidence"] for entry in ranking]
    assert ranking[0] == message.get(INTENT)
    assert confidences == sorted(confidences, reverse=True)
    assert len(ranking) == len(INTENTS) + 1  # fewer intents than ranking_length
    assert sum(confidences) == pytest.approx(1.0, abs=1e-5)
    assert {entry["name"] for entry in ranking} == {*INTENTS, "out_of_scope"}


def test_loaded_classifier_predicts_exactly_what_the_trained_one_did(
    storage: LocalModelStorage, trained: tuple
) -> None:
    classifier, resource = trained
    loaded = SentenceIntentClassifier.load({}, storage, resource, context("classifier"))
    for text in ("card not here yet", "exchange rates?", "tell me a joke"):
        before = parse(storage, classifier, text).get(INTENT_RANKING_KEY)
        after = parse(storage, loaded, text).get(INTENT_RANKING_KEY)
        assert [e["name"] for e in after] == [e["name"] for e in before]
        np.testing.assert_allclose(
            [e["confidence"] for e in after], [e["confidence"] for e in before], rtol=1e-5
        )


def test_untrained_classifier_leaves_messages_alone(storage: LocalModelStorage) -> None:
    classifier = SentenceIntentClassifier.create({}, storage, Resource("empty"), context("c"))
    message = parse(storage, classifier, "hello")
    assert message.get(INTENT) is None


def test_tfidf_is_scikit_learns_transform_exactly_fitted_and_restored() -> None:
    """The classifier's TF-IDF (without scikit-learn's costly fitted check) gives the very matrix
    `TfidfVectorizer.transform` gives: same values to the bit, same indices, on every training
    example, unknown words and an empty text, for a fitted and a persisted-then-restored one."""
    full = load_data(str(PROJECT_ROOT / "data" / "nlu"))
    texts = [m.get(TEXT) for m in full.intent_examples if m.get(TEXT)]
    fit_on = random.Random(3).sample(texts, 3000)
    checks = texts + ["", "zzqx unknownword", "£25.50 on 12/03/2024 ref 12345678"]
    classifier_config = SentenceIntentClassifier.get_default_config()
    fitted = intent_classifier._vectorizers(classifier_config)
    for name, vectorizer in fitted.items():
        vectorizer.fit(fit_on)
        state = {"vocabulary": vectorizer.vocabulary_, "idf": vectorizer.idf_.tolist()}
        restored = intent_classifier._restored_vectorizer(vectorizer, state)
        for candidate in (vectorizer, restored):
            for start in range(0, len(checks), 500):
                chunk = checks[start : start + 500]
                ours, theirs = intent_classifier.tfidf(candidate, chunk), candidate.transform(chunk)
                assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, name
                assert np.array_equal(ours.indptr, theirs.indptr), name
                assert np.array_equal(ours.indices, theirs.indices), name
                assert np.array_equal(ours.data, theirs.data), name


def test_one_text_tfidf_is_scikit_learns_hstacked_transform_exactly() -> None:
    """The served path (one message: `OneText` rows joined by `_hstacked_row`) gives the very
    float32 CSR row `sp.hstack` of the vectorizers' `transform` gives: same indices and values to
    the bit, on every training example, unknown words, non-ASCII text and an empty text, for fitted
    and persisted-then-restored vectorizers; and the classifier takes that path for one message."""
    import scipy.sparse as sp

    full = load_data(str(PROJECT_ROOT / "data" / "nlu"))
    texts = [m.get(TEXT) for m in full.intent_examples if m.get(TEXT)]
    fit_on = random.Random(3).sample(texts, 3000)
    checks = texts + ["", "zzqx unknownword", "£25.50 on 12/03/2024 ref 12345678", "ÉTÉ café"]
    fitted = intent_classifier._vectorizers(SentenceIntentClassifier.get_default_config())
    restored = {}
    for name, vectorizer in fitted.items():
        vectorizer.fit(fit_on)
        state = {"vocabulary": vectorizer.vocabulary_, "idf": vectorizer.idf_.tolist()}
        restored[name] = intent_classifier._restored_vectorizer(vectorizer, state)
    for vectorizers in (fitted, restored):
        singles = [intent_classifier.OneText.of(v) for v in vectorizers.values()]
        assert all(single is not None for single in singles)
        for text in checks:
            theirs = sp.hstack(
                [v.transform([text]) for v in vectorizers.values()], format="csr", dtype=np.float32
            )
            ours = intent_classifier._hstacked_row(singles, text)  # type: ignore[arg-type]
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, text
            assert np.array_equal(ours.indptr, theirs.indptr), text
            assert np.array_equal(ours.indices, theirs.indices), text
            assert np.array_equal(ours.data, theirs.data), text
    classifier = SentenceIntentClassifier({}, None, None, vectorizers=restored)  # type: ignore[arg-type]
    one = classifier._sparse([Message(data={TEXT: checks[0]})])
    assert classifier._single_ok and one.shape[0] == 1
    binary = intent_classifier._vectorizers(SentenceIntentClassifier.get_default_config())["word"]
    binary.set_params(binary=True)
    assert intent_classifier.OneText.of(binary) is None  # other settings: scikit-learn's path


def test_one_text_tfidf_is_rebuilt_when_the_classifier_is_trained_again() -> None:
    """A classifier that served one message and is then trained on other data computes the next
    message's TF-IDF row from the refitted vectorizers, not from the first fit's vocabulary."""
    first = TrainingData(
        [Message(data={TEXT: t, INTENT: i}) for t, i in [("card lost", "a"), ("top up", "b")]]
    )
    second = TrainingData(
        [Message(data={TEXT: t, INTENT: i}) for t, i in [("refund late", "c"), ("fee high", "d")]]
    )
    config = {**SentenceIntentClassifier.get_default_config(), "char_min_df": 1}
    classifier = SentenceIntentClassifier(config, None, None)  # type: ignore[arg-type]
    classifier.persist = lambda: None  # type: ignore[method-assign]
    classifier.train(first)
    classifier._sparse([Message(data={TEXT: "card"})])  # builds the one-text rows
    classifier.train(second)
    vectorizers = classifier._vectorizers.values()
    import scipy.sparse as sp

    theirs = sp.hstack([v.transform(["refund"]) for v in vectorizers], format="csr")
    ours = classifier._sparse([Message(data={TEXT: "refund"})])
    assert ours.shape == theirs.shape
    assert np.allclose(ours.toarray(), theirs.toarray())
