"""Handing a conversation to a person: who answers it, kept in Redis beside the queue's tickets.

A conversation's `ConversationMode` is ``bot`` (the bot answers), ``waiting`` (a ticket is queued;
the customer keeps their place and may still ask the bot routine questions) or ``agent`` (a person
holds the ticket; the bot is silent). The mode follows the ticket's state in the queue:

    ticket queued                          -> waiting
    ticket assigned                        -> agent
    resolved | returned_to_bot | abandoned -> bot

Modules, one concept each:

- `records`: `ConversationMode`, `HandoffState` (the stored hash), `TicketRequest`;
- `modes`: `ModeStore`, the atomic mode changes and `sync()` with the ticket;
- `port`: `TicketQueue` (what the handoff needs from the queue), `QueuePort` (it, over
  `bot.queue.HandoffQueue`, built by `bot.queue.open_queue()`);
- `rasa`: `resume_in_rasa()` / `check_wait_in_rasa()`, run by the gateway through Rasa's API.

Who calls what:
- the action server (`actions/handoff.py`): `request()` when the policy hands off, `cancel()` when
  the customer cancels, `set_contact()` when they leave an email, `sync()` on every turn;
- the gateway (`bot/web/queue_desk.py`): `agent_joined()` when an agent claims the ticket, and
  `hand_back()` when the agent returns the conversation, then `resume_in_rasa()` so the bot greets
  the customer back (Rasa runs `action_handback`, which also asks for a rating); optionally
  `check_wait_in_rasa()` for a customer waiting without writing.
"""

from bot.handoff.modes import AgentAlreadyJoined, HandoffError, ModeStore
from bot.handoff.port import QueuePort, TicketQueue
from bot.handoff.rasa import (
    HANDBACK_ACTION,
    WAIT_CHECK_ACTION,
    check_wait_in_rasa,
    resume_in_rasa,
    run_in_rasa,
)
from bot.handoff.records import ConversationMode, HandoffState, TicketRequest

__all__ = [
    "HANDBACK_ACTION",
    "WAIT_CHECK_ACTION",
    "ConversationMode",
    "AgentAlreadyJoined",
    "HandoffError",
    "HandoffState",
    "ModeStore",
    "QueuePort",
    "TicketQueue",
    "TicketRequest",
    "check_wait_in_rasa",
    "resume_in_rasa",
    "run_in_rasa",
]
