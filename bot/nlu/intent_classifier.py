"""`SentenceIntentClassifier`: logistic regressions over sentence embeddings and TF-IDF n-grams.

Two multinomial logistic regressions are trained on the intent examples: one on the dense
sentence features left by the featurizers before it (the all-MiniLM-L6-v2 embedding from
`MiniLMFeaturizer`), one on its own TF-IDF of word 1-2-grams and character 2-5-grams of the text
(sublinear tf, L2-normalised). The intent probabilities are their weighted mean (`dense_share`
for the embedding model), which measured better and trains faster than one regression on the
concatenated features. `process` sets `intent` and an `intent_ranking` of these probabilities,
which `FallbackClassifier` then thresholds. It also keeps the training embeddings by intent
(`bot.nlu.familiarity.ExampleIndex`) and adds to the parse result how familiar the message is to
the examples of its top intent (`familiarity`) and a compact copy of its embedding (`embedding`).

What is persisted is plain data (no pickles): the n-gram vocabularies and idf weights as JSON,
the weights, biases and intent names as a numpy archive.
"""

from __future__ import annotations

import json
import logging
import math
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
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from bot.nlu.familiarity import ExampleIndex, pack

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


def tfidf(vectorizer: TfidfVectorizer, texts: list[str]) -> sp.csr_matrix:
    """``vectorizer.transform(texts)``, the same matrix computed the same way, without the check
    of scikit-learn's ``TfidfTransformer.transform`` that the idf is fitted: it reads the
    ``idf_`` property, which sums the whole (n-grams x n-grams) idf diagonal matrix on every
    call, ~60 % of a message's TF-IDF time (issue 11). Counts, sublinear tf, idf and L2 norm are
    scikit-learn's own steps (``tests/nlu`` compares the two on the training examples)."""
    counts = CountVectorizer.transform(vectorizer, texts)
    transformer = vectorizer._tfidf
    if counts.format != "csr" or counts.dtype != np.float64:
        return vectorizer.transform(texts)
    if transformer.sublinear_tf:
        np.log(counts.data, counts.data)
        counts.data += 1
    if transformer.use_idf:
        counts = counts * transformer._idf_diag
    if transformer.norm:
        counts = normalize(counts, norm=transformer.norm, copy=False)
    return counts


class OneText:
    """``tfidf(vectorizer, [text])`` for one text, the served case, without building the
    intermediate scipy matrices: the same counts (the vectorizer's own analyzer and
    vocabulary, indices ascending), then scikit-learn's steps on that row's values in the same
    order (``log`` + 1, times the idf, divided by the square root of the sum of squares summed
    one after the other as scikit-learn's ``inplace_csr_row_normalize_l2`` does), so the values
    are the same to the bit (``tests/nlu`` compares them on every training example). ``None``
    from :meth:`of` when the vectorizer has other settings: then ``tfidf`` is used."""

    def __init__(self, vectorizer: TfidfVectorizer) -> None:
        self.analyze = vectorizer.build_analyzer()
        vocabulary = getattr(vectorizer, "vocabulary_", None)
        self.vocabulary: dict[str, int] = (
            vocabulary if vocabulary is not None else vectorizer.get_params()["vocabulary"]
        )
        self.idf = np.asarray(vectorizer.idf_, dtype=np.float64)  # read once: a costly property
        self.width = len(self.idf)

    @classmethod
    def of(cls, vectorizer: TfidfVectorizer) -> OneText | None:
        transformer = getattr(vectorizer, "_tfidf", None)
        if (
            transformer is None
            or vectorizer.binary
            or vectorizer.dtype is not np.float64
            or not transformer.sublinear_tf
            or not transformer.use_idf
            or transformer.norm != "l2"
        ):
            return None
        return cls(vectorizer)

    def row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(column indices ascending as int32, float64 values) of the text's TF-IDF row."""
        counts: dict[int, int] = {}
        vocabulary = self.vocabulary
        for feature in self.analyze(text):
            index = vocabulary.get(feature)
            if index is not None:
                counts[index] = counts.get(index, 0) + 1
        indices = np.fromiter(sorted(counts), dtype=np.int32, count=len(counts))
        data = np.fromiter((counts[i] for i in indices.tolist()), np.float64, len(counts))
        np.log(data, data)  # sublinear tf
        data += 1
        data *= self.idf[indices]
        total = 0.0
        for value in data.tolist():  # sequential, as scikit-learn's l2 row normalisation
            total += value * value
        if total != 0.0:
            data /= math.sqrt(total)
        return indices, data


@dataclass
class LinearModel:
    """Softmax regression weights: scores = features @ weights.T + bias."""

    weights: np.ndarray  # (intents, features) float32
    bias: np.ndarray  # (intents,)
    intents: np.ndarray  # (intents,) str

    def __post_init__(self) -> None:
        # (features, intents), contiguous: a sparse product with a transposed view would copy
        # the whole matrix on every parse.
        self._weights_t = np.ascontiguousarray(self.weights.T)

    def probabilities(self, features: np.ndarray | sp.csr_matrix) -> np.ndarray:
        scores = np.asarray(features @ self._weights_t) + self.bias
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)


def _hstacked_row(singles: list[OneText], text: str) -> sp.csr_matrix:
    """``sp.hstack`` of the text's one-row TF-IDF blocks (:meth:`OneText.row`) as float32 CSR:
    the blocks' columns one after the other, each offset by the widths before it, values cast
    to float32, as ``sp.hstack(blocks, format="csr", dtype=np.float32)`` gives them."""
    indices, values, offset = [], [], 0
    for single in singles:
        columns, data = single.row(text)
        indices.append(columns + offset if offset else columns)
        values.append(data.astype(np.float32))
        offset += single.width
    joined = np.concatenate(indices).astype(np.int32, copy=False)
    indptr = np.array([0, len(joined)], dtype=np.int32)
    return sp.csr_matrix((np.concatenate(values), joined, indptr), shape=(1, offset))


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class SentenceIntentClassifier(IntentClassifier, GraphComponent):
    """Intent classifier: logistic regressions on sentence embeddings and TF-IDF n-grams."""

    @classmethod
    def required_components(cls) -> list[type]:
        return [Featurizer]

    @staticmethod
    def required_packages() -> list[str]:
        return ["sklearn"]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            "dense_C": 10.0,
            "sparse_C": 10.0,
            "dense_share": 0.6,
            "max_iter": 2000,
            "tol": 1e-4,
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
        models: dict[str, LinearModel] | None = None,
        index: ExampleIndex | None = None,
    ) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self._vectorizers = vectorizers or _vectorizers(self.config)
        self._models = models or {}
        self._index = index
        self._single: list[OneText] | None = None  # the served one-message TF-IDF
        self._single_ok = False

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

    def _dense(self, messages: list[Message]) -> np.ndarray | None:
        rows = []
        for message in messages:
            sentence = message.get_dense_features(TEXT)[1]
            if sentence is None:
                return None
            rows.append(np.asarray(sentence.features, dtype=np.float32).reshape(-1))
        return np.vstack(rows)

    def _sparse(self, messages: list[Message]) -> sp.csr_matrix:
        texts = [message.get(TEXT) or "" for message in messages]
        if len(texts) == 1 and (one := self._one_text()) is not None:
            return _hstacked_row(one, texts[0])
        blocks = [tfidf(vectorizer, texts) for vectorizer in self._vectorizers.values()]
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def _one_text(self) -> list[OneText] | None:
        """The one-text TF-IDF of each vectorizer (built on first use), None when one has
        settings :class:`OneText` does not handle."""
        if self._single is None:
            single = [OneText.of(vectorizer) for vectorizer in self._vectorizers.values()]
            self._single = [one for one in single if one is not None]
            self._single_ok = len(self._single) == len(single)
        return self._single if self._single_ok else None

    # training -------------------------------------------------------------------------------

    def _fit(
        self, features: np.ndarray | sp.csr_matrix, intents: list[str], c: float
    ) -> LinearModel:
        regression = LogisticRegression(
            C=c, max_iter=self.config["max_iter"], tol=self.config["tol"]
        )
        regression.fit(features, intents)
        return LinearModel(
            weights=regression.coef_.astype(np.float32),
            bias=regression.intercept_.astype(np.float32),
            intents=np.asarray(regression.classes_, dtype=str),
        )

    def train(self, training_data: TrainingData) -> Resource:
        examples = [m for m in training_data.intent_examples if m.get(INTENT) and m.get(TEXT)]
        if not examples:
            logger.debug("No intent examples: %s is left untrained.", type(self).__name__)
            return self._resource
        intents = [m.get(INTENT) for m in examples]
        for vectorizer in self._vectorizers.values():
            vectorizer.fit([m.get(TEXT) for m in examples])
        self._single = None  # the one-text TF-IDF is rebuilt from the refitted vectorizers
        self._models = {
            "sparse": self._fit(self._sparse(examples), intents, self.config["sparse_C"])
        }
        dense = self._dense(examples)
        if dense is not None:
            self._models["dense"] = self._fit(dense, intents, self.config["dense_C"])
            self._index = ExampleIndex.fit(dense, intents)
        self.persist()
        return self._resource

    # inference ------------------------------------------------------------------------------

    def probabilities(
        self, messages: list[Message], dense: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(intents, probabilities per message): the weighted mean of the two regressions.
        ``dense``: the messages' dense features when the caller already read them."""
        sparse = self._models["sparse"]
        result = sparse.probabilities(self._sparse(messages))
        dense_features = None
        if "dense" in self._models:
            dense_features = dense if dense is not None else self._dense(messages)
        if dense_features is not None:
            share = self.config["dense_share"]
            result = (1 - share) * result + share * self._models["dense"].probabilities(
                dense_features
            )
        return sparse.intents, result

    def process(self, messages: list[Message]) -> list[Message]:
        if not self._models or not messages:
            return messages
        wanted = self._index is not None or "dense" in self._models
        dense = self._dense(messages) if wanted else None  # read once (a deep copy each read)
        intents, probabilities = self.probabilities(messages, dense)
        for number, (message, row) in enumerate(zip(messages, probabilities, strict=True)):
            order = np.argsort(-row, kind="stable")[: self.config["ranking_length"] or None]
            ranking = [{"name": str(intents[i]), "confidence": float(row[i])} for i in order]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
            if dense is not None and self._index is not None:
                vector = dense[number]
                familiarity = self._index.score(vector, ranking[0]["name"])
                message.set("familiarity", familiarity.as_dict(), add_to_output=True)
                message.set("embedding", pack(vector), add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

    # persistence ----------------------------------------------------------------------------

    def persist(self) -> None:
        if not self._models:
            return
        with self._model_storage.write_to(self._resource) as directory:
            arrays = {
                f"{name}_{part}": getattr(model, part)
                for name, model in self._models.items()
                for part in ("weights", "bias", "intents")
            }
            if self._index is not None:
                arrays.update(self._index.arrays())
            np.savez_compressed(directory / WEIGHTS_FILE, **arrays)
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
                arrays = dict(np.load(directory / WEIGHTS_FILE, allow_pickle=False))
                state = json.loads((directory / VOCABULARY_FILE).read_text())
        except (ValueError, FileNotFoundError):
            logger.debug("No trained %s in resource %s.", cls.__name__, resource.name)
            return cls.create(config, model_storage, resource, execution_context)
        models = {
            name: LinearModel(
                arrays[f"{name}_weights"], arrays[f"{name}_bias"], arrays[f"{name}_intents"]
            )
            for name in ("sparse", "dense")
            if f"{name}_weights" in arrays
        }
        templates = _vectorizers({**cls.get_default_config(), **config})
        vectorizers = {
            name: _restored_vectorizer(templates[name], state[name]) for name in templates
        }
        index = ExampleIndex.from_arrays(arrays) if "index_vectors" in arrays else None
        return cls(config, model_storage, resource, vectorizers, models, index)
