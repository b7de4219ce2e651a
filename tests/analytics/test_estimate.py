"""Estimated satisfaction: calibrated on real ratings, with an honest agreement rate."""

from __future__ import annotations

import random

from bot.analytics.estimate import estimate
from bot.analytics.events import CustomerMessage, HelpAnswer, Rating
from bot.analytics.records import build_records


def conversation(i: int, happy: bool, rated: bool, rng: random.Random) -> list:
    cid = f"c{i:03d}"
    events: list = [CustomerMessage(0, cid, "my card?", "card_arrival", 0.9, sentiment=0.0)]
    if happy:
        events += [
            HelpAnswer(1, cid, True, "card_arrival"),
            CustomerMessage(2, cid, "great thanks", "thanks", 0.9, sentiment=rng.uniform(0.3, 0.9)),
        ]
    else:
        events += [
            HelpAnswer(1, cid, False, "card_arrival"),
            CustomerMessage(2, cid, "useless", "deny", 0.9, sentiment=rng.uniform(-0.9, -0.2)),
        ]
    if rated:
        events.append(Rating(3, cid, rng.choice([4, 5]) if happy else rng.choice([1, 2])))
    return events


def population(n: int, rated_every: int, noise: int = 0):
    rng = random.Random(7)
    events = []
    for i in range(n):
        happy = i % 2 == 0
        events += conversation(i, happy, i % rated_every == 0, rng)
    records = build_records(events)
    # `noise` rated customers answer against their signals
    flipped = [r for r in records if r.rating is not None][:noise]
    for record in flipped:
        record.rating = 6 - record.rating
    return records


def test_estimate_is_calibrated_on_ratings_and_covers_every_conversation():
    records = population(120, rated_every=3, noise=2)
    result = estimate(records)
    assert result.calibrated
    assert len(result.probabilities) == 120
    assert result.agreement.denominator == 40
    assert 0.85 <= result.agreement.rate < 1.0  # the two contrary raters are missed
    unhappy_unrated = next(r for r in records if r.rating is None and r.ended_didnt_help)
    happy_unrated = next(r for r in records if r.rating is None and not r.ended_didnt_help)
    assert result.probabilities[unhappy_unrated.conversation_id] < 0.3
    assert result.probabilities[happy_unrated.conversation_id] > 0.7
    assert 0.4 < result.estimated_satisfied < 0.6


def test_too_few_ratings_fall_back_to_prior_weights_and_say_so():
    records = population(20, rated_every=10)
    result = estimate(records)
    assert not result.calibrated
    assert result.agreement.denominator == 2
    assert len(result.probabilities) == 20
