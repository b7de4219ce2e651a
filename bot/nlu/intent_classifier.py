"""`SentenceIntentClassifier`: logistic regression over sentence embeddings and TF-IDF n-grams.

Features of a message: the dense sentence features left by the featurizers before it (the
all-MiniLM-L6-v2 embedding from `MiniLMFeaturizer`), scaled by `dense_weight`, next to its own
TF-IDF of word 1-2-grams and character 2-5-grams of the text (sublinear tf, L2-normalised). One
multinomial logistic regression is trained on all of them; `process` sets `intent` and an
`intent_ranking` of calibrated-ish softmax probabilities that `FallbackClassifier` thresholds.

What is persisted is plain data (no pickles): the n-gram vocabularies and idf weights as JSON,
the weights, biases and intent names as a numpy archive.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.featurizers.featurizer import Featurizer
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.npz"
VOCABULARY_FILE = "ngrams.json"


def _vectorizers(config: dict[str, Any]) -> dict[str, TfidfVectorizer]:
    return {
        "word": TfidfVectorizer(
            ngram_range=tuple(config["word_ngrams"]), sublinear_tf=True, lowercase=True
        ),
        "char": TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=tuple(config["char_ngrams"]),
            sublinear_tf=True,
            lowercase=True,
            min_df=config["char_min_df"],
        ),
    }


def _restored_vectorizer(template: TfidfVectorizer, state: dict[str, Any]) -> TfidfVectorizer:
    vectorizer = TfidfVectorizer(**{**template.get_params(), "vocabulary": state["vocabulary"]})
    vectorizer.idf_ = np.asarray(state["idf"], dtype=np.float64)
    return vectorizer


@dataclass
class LinearModel:
    """Softmax regression weights: scores = features @ weights.T + bias."""

    weights: np.ndarray  # (intents, features) float32
    bias: np.ndarray  # (intents,)
    intents: np.ndarray  # (intents,) str

    def probabilities(self, features: sp.csr_matrix) -> np.ndarray:
        scores = np.asarray(features @ self.weights.T) + self.bias
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class SentenceIntentClassifier(IntentClassifier, GraphComponent):
    """Intent classifier: logistic regression on [sentence embedding, TF-IDF word + char]."""

    @classmethod
    def required_components(cls) -> list[type]:
        return [Featurizer]

    @staticmethod
    def required_packages() -> list[str]:
        return ["sklearn"]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            "C": 10.0,
            "max_iter": 3000,
            "tol": 1e-3,
            "dense_weight": 1.5,
            "word_ngrams": [1, 2],
            "char_ngrams": [2, 5],
            "char_min_df": 2,
            "ranking_length": 10,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        vectorizers: dict[str, TfidfVectorizer] | None = None,
        model: LinearModel | None = None,
    ) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self._vectorizers = vectorizers or _vectorizers(self.config)
        self._model = model

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> SentenceIntentClassifier:
        return cls(config, model_storage, resource)

    # features -------------------------------------------------------------------------------

    def _dense(self, messages: list[Message]) -> sp.csr_matrix | None:
        rows = []
        for message in messages:
            sentence = message.get_dense_features(TEXT)[1]
            if sentence is None:
                return None
            rows.append(np.asarray(sentence.features, dtype=np.float32).reshape(-1))
        return sp.csr_matrix(np.vstack(rows) * self.config["dense_weight"])

    def _features(self, messages: list[Message]) -> sp.csr_matrix:
        texts = [message.get(TEXT) or "" for message in messages]
        blocks = [vectorizer.transform(texts) for vectorizer in self._vectorizers.values()]
        dense = self._dense(messages)
        if dense is not None:
            blocks.append(dense)
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    # training -------------------------------------------------------------------------------

    def train(self, training_data: TrainingData) -> Resource:
        examples = [m for m in training_data.intent_examples if m.get(INTENT) and m.get(TEXT)]
        if not examples:
            logger.debug("No intent examples: %s is left untrained.", type(self).__name__)
            return self._resource
        for vectorizer in self._vectorizers.values():
            vectorizer.fit([m.get(TEXT) for m in examples])
        regression = LogisticRegression(
            C=self.config["C"], max_iter=self.config["max_iter"], tol=self.config["tol"]
        )
        regression.fit(self._features(examples), [m.get(INTENT) for m in examples])
        self._model = LinearModel(
            weights=regression.coef_.astype(np.float32),
            bias=regression.intercept_.astype(np.float32),
            intents=np.asarray(regression.classes_, dtype=str),
        )
        self.persist()
        return self._resource

    # inference ------------------------------------------------------------------------------

    def process(self, messages: list[Message]) -> list[Message]:
        if self._model is None or not messages:
            return messages
        probabilities = self._model.probabilities(self._features(messages))
        for message, row in zip(messages, probabilities, strict=True):
            order = np.argsort(-row, kind="stable")[: self.config["ranking_length"] or None]
            ranking = [
                {"name": str(self._model.intents[i]), "confidence": float(row[i])} for i in order
            ]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

    # persistence ----------------------------------------------------------------------------

    def persist(self) -> None:
        if self._model is None:
            return
        with self._model_storage.write_to(self._resource) as directory:
            np.savez_compressed(
                directory / WEIGHTS_FILE,
                weights=self._model.weights,
                bias=self._model.bias,
                intents=self._model.intents,
            )
            state = {
                name: {
                    "vocabulary": {k: int(v) for k, v in vectorizer.vocabulary_.items()},
                    "idf": vectorizer.idf_.tolist(),
                }
                for name, vectorizer in self._vectorizers.items()
            }
            (directory / VOCABULARY_FILE).write_text(json.dumps(state))

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> SentenceIntentClassifier:
        try:
            with model_storage.read_from(resource) as directory:
                arrays = np.load(directory / WEIGHTS_FILE, allow_pickle=False)
                model = LinearModel(arrays["weights"], arrays["bias"], arrays["intents"])
                state = json.loads((directory / VOCABULARY_FILE).read_text())
        except (ValueError, FileNotFoundError):
            logger.debug("No trained %s in resource %s.", cls.__name__, resource.name)
            return cls.create(config, model_storage, resource, execution_context)
        templates = _vectorizers({**cls.get_default_config(), **config})
        vectorizers = {
            name: _restored_vectorizer(templates[name], state[name]) for name in templates
        }
        return cls(config, model_storage, resource, vectorizers, model)
