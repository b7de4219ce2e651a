"""The closest routine topics to offer when the assistant is not sure what was asked.

Taken from the NLU intent ranking: the best-ranked intents that have an answer, each as a button
whose title is the answer's short topic and whose payload asks that intent directly.
"""

from __future__ import annotations

from collections.abc import Iterable

from actions.responses import Button, Responses

MAX_TOPICS = 3
MIN_TOPIC_CONFIDENCE = 0.05


def closest_topics(
    ranking: Iterable[tuple[str, float]],
    responses: Responses,
    limit: int = MAX_TOPICS,
    min_confidence: float = MIN_TOPIC_CONFIDENCE,
) -> tuple[Button, ...]:
    """Up to `limit` routine topics from the ranking, best first, above `min_confidence`."""
    buttons: list[Button] = []
    for intent, confidence in sorted(ranking, key=lambda item: -item[1]):
        topic = responses.topic(intent)
        if topic is None or confidence < min_confidence:
            continue
        buttons.append(Button(title=topic, payload=f"/{intent}"))
        if len(buttons) == limit:
            break
    return tuple(buttons)
