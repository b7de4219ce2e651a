"""Who may read and follow which conversation (bot.web.access): holding a ticket now, or the lead
role. Pure rules; tests/security/test_agent_access.py checks them against the real gateway."""

from __future__ import annotations

from bot.web.access import Watch, held_in, holds, may_read
from bot.web.auth import Agent

ANN = Agent(login="ann@example.com", name="Ann", skills=["general"])
LEAD = Agent(login="lee@example.com", name="Lee", skills=["general"], role="lead")


def row(tid: str, conv: str, agent: str | None, state: str = "assigned") -> dict:
    return {"id": tid, "conversation_id": conv, "agent_id": agent, "state": state}


def test_only_an_assigned_ticket_of_this_agent_is_held():
    assert holds(ANN, row("T1", "c1", ANN.login))
    assert not holds(ANN, row("T1", "c1", ANN.login, state="resolved"))  # keeps its last agent
    assert not holds(ANN, row("T1", "c1", "bob@example.com"))
    assert not holds(ANN, row("T1", "c1", None, state="queued"))


def test_a_lead_may_read_any_ticket_an_agent_only_a_held_one():
    closed = row("T1", "c1", ANN.login, state="resolved")
    assert may_read(LEAD, closed)
    assert not may_read(ANN, closed)
    assert may_read(ANN, row("T2", "c2", ANN.login))


def test_held_in_maps_conversations_to_held_tickets_only():
    rows = [row("T1", "c1", ANN.login), row("T2", "c2", "bob@example.com")]
    assert held_in(rows, ANN) == {"c1": "T1"}


def test_a_watch_keeps_only_held_conversations_and_revokes_them_once_lost():
    watch = Watch(ANN, limit=50)
    watch.set({"c1": "1-0", "c2": "2-0"}, held={"c1": "T1"})
    assert watch.offsets == {"c1": "1-0"}
    assert watch.revoke({"c1": "T1"}) == []
    assert watch.revoke({}) == [("c1", "T1")]
    assert watch.offsets == {} and watch.revoke({}) == []


def test_a_new_ticket_on_the_same_conversation_is_not_the_one_watched():
    watch = Watch(ANN, limit=50)
    watch.set({"c1": "1-0"}, held={"c1": "T1"})
    assert watch.revoke({"c1": "T9"}) == [("c1", "T1")]


def test_a_lead_follows_any_valid_conversation_and_is_never_revoked():
    watch = Watch(LEAD, limit=2)
    watch.set({"c1": "0-0", "bad id": "0-0", "c2": "0-0", "c3": "0-0"}, held={})
    assert watch.offsets == {"c1": "0-0"}  # the first two asked for; one is not a valid id
    assert watch.revoke({}) == []
