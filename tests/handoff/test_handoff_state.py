"""The conversation's handoff state in Redis, kept consistent with the real queue's tickets."""

import pytest

from bot.handoff import AgentAlreadyJoined, HandoffError, ModeStore, QueuePort, TicketRequest
from bot.queue import HandoffQueue, IntentScore, Summary, TranscriptLine


@pytest.fixture
def store(redis_client):
    queue = HandoffQueue(redis_client, namespace="support")
    return ModeStore(redis_client, QueuePort(queue), "support")


def request(conversation_id: str = "conv-1") -> TicketRequest:
    return TicketRequest(
        conversation_id=conversation_id,
        customer_id="cust-1",
        customer_name="Ada",
        reasons=["explicit_request"],
        priority=3,
        topic="general",
        summary=Summary(
            text="asked for a person",
            intents=(IntentScore("request_human", 0.97),),
            transcript=(
                TranscriptLine(
                    "customer", "agent", intent="request_human", confidence=0.97, sentiment=0.0
                ),
            ),
        ),
    )


async def test_a_new_conversation_is_with_the_bot(store):
    state = await store.get("nobody")
    assert state.mode == "bot" and state.ticket_id is None


async def test_request_queues_a_ticket_and_waits(store):
    state = await store.request(request())
    assert state.mode == "waiting" and state.ticket_id
    ticket = await store.queue.queue.get(state.ticket_id)
    assert str(ticket.state) == "queued" and ticket.customer.display_name == "Ada"
    assert ticket.summary.transcript[0].intent == "request_human"


async def test_requesting_twice_keeps_the_same_ticket(store):
    first = await store.request(request())
    second = await store.request(request())
    assert first.ticket_id == second.ticket_id


async def test_agent_then_handback_returns_to_the_bot_remembering_the_ticket(store):
    state = await store.request(request())
    assert (await store.agent_joined("conv-1", "agent-1")).mode == "agent"
    back = await store.hand_back("conv-1")
    assert back.mode == "bot" and back.ticket_id is None
    assert back.last_ticket_id == state.ticket_id and back.last_reasons == ["explicit_request"]


async def test_transitions_the_mode_does_not_allow_are_refused(store):
    with pytest.raises(HandoffError):
        await store.agent_joined("conv-2", "agent-1")  # nothing was requested
    with pytest.raises(HandoffError):
        await store.hand_back("conv-2")
    with pytest.raises(HandoffError):
        await store.cancel("conv-2")
    assert (await store.get("conv-2")).mode == "bot"


async def test_cancel_abandons_the_ticket(store):
    state = await store.request(request())
    await store.cancel("conv-1")
    assert (await store.get("conv-1")).mode == "bot"
    assert str((await store.queue.queue.get(state.ticket_id)).state) == "abandoned"


async def test_a_cancel_that_races_an_agents_claim_leaves_the_chat_with_the_agent(store):
    state = await store.request(request())
    queue = store.queue.queue
    await queue.agent_online("agent-1", skills=["general"], capacity=1, auto_assign=False)
    await queue.claim("agent-1", state.ticket_id)  # before the mode store has synced
    assert (await store.get("conv-1")).mode == "waiting"
    with pytest.raises(AgentAlreadyJoined):
        await store.cancel("conv-1")
    ticket = await queue.get(state.ticket_id)
    assert str(ticket.state) == "assigned" and ticket.agent_id == "agent-1"
    assert (await store.sync("conv-1")).mode == "agent"


async def test_sync_follows_the_ticket_when_an_agent_claims_and_resolves_it(store):
    state = await store.request(request())
    queue = store.queue.queue
    await queue.agent_online("agent-1", skills=["general"], capacity=1, auto_assign=False)
    await queue.claim("agent-1", state.ticket_id)
    assert (await store.sync("conv-1")).mode == "agent"
    await queue.resolve(state.ticket_id, "agent-1", "sorted")
    synced = await store.sync("conv-1")
    assert synced.mode == "bot" and synced.last_ticket_id == state.ticket_id


async def test_every_mode_change_is_appended_to_the_change_stream(store, redis_client):
    await store.request(request())
    await store.agent_joined("conv-1", "agent-1")
    await store.hand_back("conv-1")
    changes = [f for _, f in await redis_client.xrange(store.changes_stream)]
    assert [c["mode"] for c in changes] == ["waiting", "agent", "bot"]
    assert {c["conversation_id"] for c in changes} == {"conv-1"}


async def test_contact_email_is_kept_and_noted_on_the_ticket(store):
    state = await store.request(request())
    updated = await store.set_contact("conv-1", "ada@example.com")
    assert updated.contact_email == "ada@example.com"
    log = await store.queue.queue.read_messages(state.ticket_id)
    assert [m.role for m in log] == ["system"] and "ada@example.com" in log[0].text
