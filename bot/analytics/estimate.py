"""Estimated satisfaction for every conversation, calibrated against the real ratings.

Surveys cover few conversations, and not at random. Every conversation has signals, though, so
each gets an estimated probability that its customer was satisfied (would rate 4-5) from:
final and lowest sentiment of the customer's typed messages, "didn't help" answers, fallbacks,
whether it was handed off, whether the customer left mid-problem or abandoned the queue, the wait
for a first agent reply, and its length.

Calibration: a logistic regression (scikit-learn, L2) is fitted on the rated conversations
(satisfied = rating >= 4). With fewer than :data:`MIN_RATINGS` ratings, or only one kind, fixed
prior weights are used instead and the result says ``calibrated: false``.

Agreement rate: the share of rated conversations whose estimate (satisfied when p >= 0.5)
matches the real rating, each judged by a model that did not see it (k-fold cross-validation,
k <= 5), so the figure is not flattered by fitting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.analytics.measures import SATISFIED_RATING, Ratio
from bot.analytics.records import ConversationRecord

MIN_RATINGS = 10
FEATURES = (
    "final_sentiment",
    "lowest_sentiment",
    "didnt_help",
    "fallbacks",
    "handed_off",
    "left_mid_problem",
    "wait_minutes",
    "turns",
)
# Prior weights (before any ratings): an intercept, then one per feature, in FEATURES order.
PRIOR = (1.2, 1.5, 1.0, -1.2, -0.6, -0.3, -2.5, -0.15, -0.05)


def features(record: ConversationRecord) -> list[float]:
    """The signals of one conversation, in :data:`FEATURES` order."""
    scores = record.sentiments
    waits = [t.first_reply_seconds for t in record.tickets if t.first_reply_seconds is not None]
    return [
        scores[-1] if scores else 0.0,
        min(scores) if scores else 0.0,
        float(record.didnt_help),
        float(record.fallbacks),
        float(record.handoff_requested),
        float(record.left_mid_problem),
        min(waits) / 60 if waits else 0.0,
        float(len(record.messages)),
    ]


def _prior(x: list[float]) -> float:
    z = PRIOR[0] + sum(w * v for w, v in zip(PRIOR[1:], x, strict=True))
    return 1 / (1 + math.exp(-z))


@dataclass(frozen=True)
class Estimate:
    """Estimated satisfaction of a set of conversations."""

    probabilities: dict[str, float]  # conversation id -> P(satisfied)
    calibrated: bool
    agreement: Ratio  # rated conversations whose estimate matched the rating / rated

    @property
    def estimated_satisfied(self) -> float | None:
        """Expected share of satisfied customers over every conversation."""
        values = list(self.probabilities.values())
        return sum(values) / len(values) if values else None

    def as_dict(self) -> dict:
        share = self.estimated_satisfied
        return {
            "calibrated": self.calibrated,
            "conversations": len(self.probabilities),
            "estimated_satisfied": None if share is None else round(share, 4),
            "agreement": self.agreement.as_dict(),
        }


def _satisfied(record: ConversationRecord) -> int:
    return int((record.rating or 0) >= SATISFIED_RATING)


def _model():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))


def _cross_validated(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = max(2, min(5, int(np.bincount(y).min())))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    return cross_val_predict(_model(), x, y, cv=splitter, method="predict_proba")[:, 1]


def estimate(
    records: Sequence[ConversationRecord], training: Sequence[ConversationRecord] | None = None
) -> Estimate:
    """Estimated satisfaction for every record, calibrated on the rated ones of ``training``
    (default: the records themselves)."""
    training = list(records if training is None else training)
    rated = [r for r in training if r.rating is not None]
    labels = np.array([_satisfied(r) for r in rated], dtype=int)
    x_all = [features(r) for r in records]
    usable = len(rated) >= MIN_RATINGS and len(set(labels.tolist())) == 2
    if not usable or int(np.bincount(labels).min()) < 2:
        probabilities = {r.conversation_id: _prior(x) for r, x in zip(records, x_all, strict=True)}
        hits = sum(
            (_prior(features(r)) >= 0.5) == bool(y) for r, y in zip(rated, labels, strict=True)
        )
        return Estimate(probabilities, False, Ratio(int(hits), len(rated)))
    x_rated = np.array([features(r) for r in rated])
    held_out = _cross_validated(x_rated, labels)
    hits = int(((held_out >= 0.5).astype(int) == labels).sum())
    model = _model().fit(x_rated, labels)
    predicted = model.predict_proba(np.array(x_all))[:, 1] if x_all else []
    probabilities = {r.conversation_id: float(p) for r, p in zip(records, predicted, strict=True)}
    return Estimate(probabilities, True, Ratio(hits, len(rated)))
