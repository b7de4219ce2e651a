"""How familiar a message is: its MiniLM embedding against the training examples of an intent.

A softmax is sure of itself far from its training data. `ExampleIndex` keeps the unit-length
sentence embeddings of the training examples by intent (stored in the trained model by
`SentenceIntentClassifier`, nothing downloaded) and scores a message by the mean cosine similarity
to the `K` nearest training examples of the intent the classifier predicted. A low score means the
message is unlike anything the bot was taught to answer with that intent, however confident the
classifier is; the escalation policy (`failed_turns.unfamiliar_below`, calibrated by
`python -m bench.familiarity`) then asks instead of answering.

The parse result carries `familiarity` ({"intent", "score", "nearest_intent", "nearest"}) and a
compact copy of the message embedding, `embedding` (`pack`: int8, base64, 512 characters), so the
action server can compare a message with the customer's earlier ones without running the encoder.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import numpy as np

K = 3
DIMENSION = 384
PACKED_LENGTH = 4 * ((DIMENSION + 2) // 3)  # base64 characters of DIMENSION bytes
NOT_SCORED = frozenset({"out_of_scope", "nlu_fallback"})


def pack(vector: np.ndarray) -> str:
    """A unit vector as int8 (x127) in base64: 512 characters for 384 dimensions."""
    quantised = np.clip(np.rint(np.asarray(vector, dtype=np.float32) * 127.0), -127, 127)
    return base64.b64encode(quantised.astype(np.int8).tobytes()).decode("ascii")


def unpack(text: object) -> np.ndarray | None:
    """The unit vector `pack` wrote, or None for anything else (a tracker can be forged)."""
    if not isinstance(text, str) or len(text) != PACKED_LENGTH:
        return None
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    if len(raw) != DIMENSION:
        return None
    vector = np.frombuffer(raw, dtype=np.int8).astype(np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else None


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two unit vectors, rounded to 4 places."""
    return round(float(np.dot(a, b)), 4)


@dataclass(frozen=True)
class Familiarity:
    """How close a message is to the training examples of its predicted intent."""

    intent: str
    score: float | None  # mean cosine to the K nearest examples of `intent`; None if not scored
    nearest_intent: str | None  # the intent whose examples' centroid is closest
    nearest: float  # the cosine to that (unit-length) centroid

    def as_dict(self) -> dict[str, object]:
        return {
            "intent": self.intent,
            "score": self.score,
            "nearest_intent": self.nearest_intent,
            "nearest": self.nearest,
        }


class ExampleIndex:
    """Training embeddings by intent, for nearest-neighbour familiarity scores."""

    def __init__(self, vectors: np.ndarray, labels: np.ndarray, intents: np.ndarray) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # (examples, DIMENSION)
        self.labels = np.asarray(labels, dtype=np.int32)  # index into intents, per example
        self.intents = np.asarray(intents, dtype=str)
        # per intent, its examples as one contiguous block: a score reads ~100 rows, not all
        self._blocks = {
            str(name): np.ascontiguousarray(self.vectors[self.labels == i])
            for i, name in enumerate(self.intents)
        }
        centroids = np.asarray(
            [self._blocks[str(n)].mean(axis=0) for n in self.intents], dtype=np.float32
        ).reshape(len(self.intents), -1)
        norms = np.linalg.norm(centroids, axis=1, keepdims=True)
        self._centroids = centroids / np.where(norms > 0, norms, 1.0)

    @classmethod
    def fit(cls, vectors: np.ndarray, intents: list[str]) -> ExampleIndex:
        """The index of the examples whose intent is answerable (not out of scope)."""
        keep = [i for i, name in enumerate(intents) if name not in NOT_SCORED]
        names = sorted({intents[i] for i in keep})
        position = {name: i for i, name in enumerate(names)}
        labels = np.asarray([position[intents[i]] for i in keep], dtype=np.int32)
        return cls(np.asarray(vectors)[keep], labels, np.asarray(names, dtype=str))

    def arrays(self, prefix: str = "index") -> dict[str, np.ndarray]:
        """What to persist (float16 vectors: half the size, scores move by < 0.001)."""
        return {
            f"{prefix}_vectors": self.vectors.astype(np.float16),
            f"{prefix}_labels": self.labels,
            f"{prefix}_intents": self.intents,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "index") -> ExampleIndex:
        return cls(
            arrays[f"{prefix}_vectors"].astype(np.float32),
            arrays[f"{prefix}_labels"],
            arrays[f"{prefix}_intents"],
        )

    def score(self, vector: np.ndarray, intent: str, k: int = K) -> Familiarity:
        """Familiarity of `vector` for `intent` (score None for an intent not in the index)."""
        if not len(self.intents):
            return Familiarity(intent, None, None, 0.0)
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        to_centroids = self._centroids @ query
        best = int(np.argmax(to_centroids))
        block = self._blocks.get(intent)
        value = None
        if block is not None and len(block):
            own = block @ query
            top = own if len(own) <= k else np.partition(own, len(own) - k)[-k:]
            value = round(float(top.mean()), 4)
        return Familiarity(
            intent, value, str(self.intents[best]), round(float(to_centroids[best]), 4)
        )
