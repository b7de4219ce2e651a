"""The consistent-hash ring that keeps each conversation on one Rasa replica
(bot/web/rasa_ring.py): spread, stability when a replica is added, failover order, and the
per-replica cooldown."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from bot.config import Settings
from bot.web.rasa_ring import HashRing, ReplicaHealth, stable_hash

REPLICAS = ["http://10.0.0.1:5005", "http://10.0.0.2:5005", "http://10.0.0.3:5005"]
IDS = [f"conversation-{i:05d}" for i in range(10_000)]


def test_three_replicas_each_own_a_third_of_10k_conversations_within_15_percent() -> None:
    ring = HashRing(REPLICAS)
    counts = Counter(ring.replica_for(cid) for cid in IDS)
    share = len(IDS) / len(REPLICAS)
    assert set(counts) == set(REPLICAS)
    for replica, count in counts.items():
        assert abs(count - share) <= 0.15 * share, (replica, counts)


def test_adding_a_replica_moves_only_about_a_quarter_of_conversations_and_only_to_it() -> None:
    before = HashRing(REPLICAS)
    new = "http://10.0.0.4:5005"
    after = HashRing([*REPLICAS, new])
    moved = [cid for cid in IDS if before.replica_for(cid) != after.replica_for(cid)]
    assert all(after.replica_for(cid) == new for cid in moved)  # none moves between old ones
    assert 0.25 * 0.7 <= len(moved) / len(IDS) <= 0.25 * 1.3, len(moved)


def test_failover_order_starts_at_the_owner_lists_every_replica_once_and_is_deterministic() -> None:
    ring, again = HashRing(REPLICAS), HashRing(list(reversed(REPLICAS)))
    for cid in IDS[:500]:
        order = ring.replicas_for(cid)
        assert order[0] == ring.replica_for(cid)
        assert sorted(order) == sorted(REPLICAS)
        assert again.replicas_for(cid) == order  # the listing order of RASA_URLS does not matter


def test_the_next_replica_of_a_dead_ones_conversations_is_spread_over_the_others() -> None:
    ring = HashRing(REPLICAS)
    dead = REPLICAS[0]
    heirs = Counter(ring.replicas_for(cid)[1] for cid in IDS if ring.replica_for(cid) == dead)
    assert set(heirs) == set(REPLICAS[1:])  # not all of its load onto one survivor


def test_the_hash_is_the_same_in_another_process() -> None:
    """Not Python's salted hash(): two gateways must agree on every conversation's replica."""
    code = "from bot.web.rasa_ring import stable_hash; print(stable_hash('abc-123'))"
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": ":".join(sys.path)},
    )
    assert int(other.stdout) == stable_hash("abc-123")


def test_a_ring_refuses_no_replicas_and_duplicates() -> None:
    with pytest.raises(ValueError):
        HashRing([])
    with pytest.raises(ValueError):
        HashRing([REPLICAS[0], REPLICAS[0]])


def test_a_down_replica_is_skipped_for_its_cooldown_then_due_for_one_probe() -> None:
    now = [100.0]
    health = ReplicaHealth(cooldown=5.0, clock=lambda: now[0])
    replica = REPLICAS[0]
    assert health.status(replica) == "up" and not health.cooling(replica)
    health.mark_down(replica)
    assert health.cooling(replica) and not health.due_for_probe(replica)
    now[0] += 5.1
    assert not health.cooling(replica) and health.due_for_probe(replica)
    assert health.status(replica) == "down"
    health.mark_up(replica)
    assert health.status(replica) == "up" and not health.due_for_probe(replica)


def test_rasa_urls_lists_the_replicas_and_falls_back_to_rasa_url() -> None:
    both = Settings(rasa_urls=" http://a:5005/, http://b:5005 ,", rasa_url="http://c:5005")
    assert both.rasa_replica_urls() == ["http://a:5005", "http://b:5005"]
    assert Settings(rasa_urls="", rasa_url="http://c:5005/").rasa_replica_urls() == [
        "http://c:5005"
    ]
