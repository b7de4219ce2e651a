"""Customer conversations: creation with an unguessable token, and routing of each message.

A conversation id is also the Rasa sender id and the queue's conversation id. Its token (32
random bytes, issued once) is stored only as a SHA-256 hash and reaches only that conversation.

Routing of a customer message (text is masked first, see :mod:`bot.masking`, also across
consecutive messages, see :mod:`bot.web.card_tail`; a payload is accepted only when the bot offered
it, see :mod:`bot.web.offers`; a client id runs its turn once, see :mod:`bot.web.turns`):

* mode ``bot`` or ``waiting``: to Rasa's REST webhook; the bot's replies are appended to the
  conversation's event stream (while waiting, the customer keeps their place and may go on
  asking the bot routine questions);
* mode ``agent``: to the ticket's message log through the desk, and to the event stream, where
  the agent's console reads it live. Rasa does not see it: the bot never answers over the agent.

After each turn the handoff state is read again and a change of mode (e.g. the action server
escalated) is recorded once in the stream, whichever gateway notices it first.

While Rasa or its action server is unavailable, a bot-mode turn is answered by the gateway
itself (:mod:`bot.web.fallback`): the message is stored, a request for a person opens a ticket
straight in the queue, and the customer is told so; agents' chats never need Rasa.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import unicodedata
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot import keys
from bot.config import Settings, get_settings
from bot.escalation import load_policy
from bot.handoff import ConversationMode
from bot.masking import mask_card_numbers
from bot.queue.validate import MAX_MESSAGE_CHARS
from bot.web import fallback, metrics, turn_recovery
from bot.web.admission import TurnGate, TurnSlot
from bot.web.card_tail import CardMasker
from bot.web.desk import Desk, DeskState
from bot.web.errors import ApiError
from bot.web.events import CLIENT_ID_TTL, ConversationEvents
from bot.web.limits import Charges
from bot.web.offers import ALWAYS_OFFERED, OfferedButtons
from bot.web.rasa_client import RasaUnavailable
from bot.web.rasa_ring import RasaRing
from bot.web.turn_scripts import Begun, TokenMismatch, TokenMissing, TurnScripts
from bot.web.turns import (
    TurnReservations,
    TurnState,
    not_sent,
    outcome_unknown,
    still_running,
)

MAX_TEXT_CHARS = MAX_MESSAGE_CHARS  # the one message limit (bot.queue.validate)
MAX_PAYLOAD_CHARS = 300
RECOVERY_PAUSE = 2.0  # seconds between two looks at Rasa's tracker for one stale turn
SETTLE_RETRY_SECONDS = 60.0  # how long a failed turn's outcome is retried while Redis is away
log = logging.getLogger("bot.web.conversations")
PAYLOAD_PATTERN = re.compile(r"/[A-Za-z_][A-Za-z0-9_]*(\{.*\})?", re.DOTALL)

# Records a mode change once: compare with the stored mode, set it, append the event and
# announce it on the notice channel ARGV[5] as "<conversation id ARGV[6]> <id>" (bot.web.fanout).
_SYNC_MODE = """
local current = redis.call('HGET', KEYS[1], 'mode')
if current == ARGV[1] then return nil end
redis.call('HSET', KEYS[1], 'mode', ARGV[1])
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6] .. ' ' .. id)
return id
"""


class ConversationNotFound(LookupError):
    pass


class TokenRejected(PermissionError):
    pass


@dataclass
class Incoming:
    """One customer message: free text or a button payload (with the button's title)."""

    text: str | None = None
    payload: str | None = None
    title: str | None = None
    client_id: str | None = None

    def shown(self) -> str:
        return self.text if self.text is not None else (self.title or self.payload or "")


def token_hash(token: str) -> str:
    """What a conversation's record keeps of its token (SHA-256, hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _masked(value: Any) -> Any:
    """Every string in a JSON-like value with its card numbers masked."""
    if isinstance(value, str):
        return mask_card_numbers(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


def bot_events(replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rasa REST replies as message events (text, buttons and custom data masked, images as
    links)."""
    events = []
    for reply in replies:
        event: dict[str, Any] = {"type": "message", "from": "bot"}
        event["text"] = mask_card_numbers(str(reply.get("text") or ""))
        buttons = [
            {
                "title": mask_card_numbers(str(b.get("title", ""))),
                "payload": mask_card_numbers(str(b.get("payload", ""))),
            }
            for b in reply.get("buttons") or []
        ]
        if buttons:
            event["buttons"] = buttons
        if reply.get("image"):
            event["image"] = str(reply["image"])
        if isinstance(reply.get("custom"), dict):
            event["custom"] = _masked(reply["custom"])
        if event["text"] or buttons or "image" in event or "custom" in event:
            events.append(event)
    return events


class Conversations:
    """Creates conversations, checks tokens and routes customer messages."""

    def __init__(
        self,
        redis: Redis,
        namespace: str,
        events: ConversationEvents,
        rasa: RasaRing,
        desk: Desk,
        settings: Settings | None = None,
        actions_up: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        settings = settings or get_settings()
        self._policy = load_policy(settings.escalation_policy)
        self._actions_up = actions_up
        self._redis = redis
        self._ns = namespace
        self.events = events
        self._rasa = rasa
        self.desk = desk
        self._sync_mode = redis.register_script(_SYNC_MODE)
        self._retention = settings.conversation_retention_seconds
        self.cards = CardMasker(redis, namespace, settings.card_tail_ttl_seconds)
        self.offers = OfferedButtons(redis, namespace, settings.offered_buttons_ttl_seconds)
        self._rasa_timeout = settings.rasa_turn_timeout_seconds
        self._wait = settings.turn_wait_seconds
        self.turns = TurnReservations(redis, namespace, int(self._rasa_timeout) + 30, CLIENT_ID_TTL)
        self.scripts = TurnScripts(
            redis, namespace, events, self.offers, self.turns, self.cards.key
        )
        self._running: set[asyncio.Task] = set()
        self.admission = TurnGate(  # bot turns at Rasa at once (bot/web/admission.py)
            settings.max_turns_in_flight,
            settings.turn_queue_max,
            settings.turn_queue_wait_seconds,
        )
        metrics.TURNS_IN_FLIGHT.set_function(lambda: self.admission.in_flight)
        metrics.TURNS_WAITING.set_function(lambda: self.admission.waiting)

    def _key(self, conversation_id: str) -> str:
        return keys.WEB_CONVERSATION.format(ns=self._ns, conversation=conversation_id)

    async def create(self, origin: str | None = None) -> tuple[str, str]:
        """A new conversation id and its token (the token is returned once, never stored)."""
        conversation_id = f"web-{uuid.uuid4().hex}"
        token = secrets.token_urlsafe(32)
        record = {"token": token_hash(token), "created_at": time.time(), "mode": "bot"}
        if origin:
            record["origin"] = origin[:200]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(conversation_id), mapping=record)
            pipe.expire(self._key(conversation_id), self._retention)
            await pipe.execute()
        return conversation_id, token

    async def exists(self, conversation_id: str) -> bool:
        return bool(await self._redis.exists(self._key(conversation_id)))

    async def authenticate(self, conversation_id: str, token: str) -> None:
        """Raises ConversationNotFound / TokenRejected unless the token is this conversation's."""
        stored = await self._redis.hget(self._key(conversation_id), "token")
        if stored is None:
            raise ConversationNotFound(conversation_id)
        if not token or not hmac.compare_digest(stored, token_hash(token)):
            raise TokenRejected(conversation_id)

    async def sync_mode(self, conversation_id: str, state: DeskState | None = None) -> DeskState:
        """The current handoff state; a change of mode is appended to the stream exactly once."""
        state = state or await self.desk.state(conversation_id)
        event = {"type": "mode", "from": "system", "ts": time.time(), **state.public()}
        await self._sync_mode(
            keys=[self._key(conversation_id), self.events.key(conversation_id)],
            args=[
                state.mode,
                json.dumps(event),
                2000,
                self._retention,
                self.events.channel,
                conversation_id,
            ],
        )
        return state

    async def send(
        self, conversation_id: str, token: str, incoming: Incoming, charges: Charges
    ) -> tuple[list[dict], DeskState]:
        """Route one customer message; returns the new events for the customer and the state.

        The token must be the conversation's (else :class:`ConversationNotFound` /
        :class:`TokenRejected`) and ``charges`` (the message rate limits) are charged, all or
        none (else a 429). A payload must be one the bot offered (else a 400); its title is the
        offered button's. The client id is reserved before anything is sent, so overlapping
        retries run the turn once: the others wait for its result and return it (see
        :mod:`bot.web.turns`). In bot mode the message and the bot's replies are appended
        together once Rasa has answered. All the checks before Rasa are one Redis script, and
        so is the record after it (:mod:`bot.web.turn_scripts`).
        """
        client_id = incoming.client_id or uuid.uuid4().hex
        payload = incoming.payload
        always = ALWAYS_OFFERED.get(payload) if payload is not None else None
        try:
            begun = await self.scripts.begin(
                conversation_id,
                token_hash(token),
                client_id,
                payload if always is None else None,
                charges,
            )
        except TokenMissing as error:
            raise ConversationNotFound(conversation_id) from error
        except TokenMismatch as error:
            raise TokenRejected(conversation_id) from error
        if begun.outcome == "earlier":
            earlier = await self._earlier(conversation_id, client_id, begun.earlier_id)
            return earlier or await self._wait_for(conversation_id, client_id, incoming)
        if begun.outcome == "not_offered":
            if begun.marker is not None:
                # a retry of a turn under way: its replies may have replaced the offer
                return await self._wait_for(conversation_id, client_id, incoming)
            raise ApiError(
                400,
                "payload_not_offered",
                "this payload is not one of the buttons the assistant offered last; "
                "send text instead",
            )
        if payload is not None:
            incoming = Incoming(payload=payload, title=always or begun.title, client_id=client_id)
        if begun.outcome != "reserved":  # another request runs this turn
            return await self._wait_for(conversation_id, client_id, incoming)
        task = asyncio.ensure_future(self._run_turn(conversation_id, incoming, client_id, begun))
        self._running.add(task)
        task.add_done_callback(self._settled)
        try:
            return await asyncio.wait_for(asyncio.shield(task), self._wait)
        except asyncio.TimeoutError:
            raise still_running(retry_after=2) from None

    async def _settle(self, conversation_id: str, client_id: str, outcome: TurnState) -> None:
        """Record a failed turn's outcome; while Redis is away (the usual reason a turn fails),
        keep trying in the background for :data:`SETTLE_RETRY_SECONDS`. Only this gateway
        knows that a message it never sent to Rasa can be run by a retry; without this, its
        marker stayed ``pending`` and every retry waited until it read as unknown."""
        try:
            await self.turns.finish(conversation_id, client_id, outcome)
            return
        except RedisError as error:
            log.warning("turn %s: outcome %s not recorded yet: %s", client_id, outcome.value, error)

        async def later() -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + SETTLE_RETRY_SECONDS
            pause = 0.25
            while loop.time() < deadline:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
                try:
                    await self.turns.finish(conversation_id, client_id, outcome)
                    return
                except RedisError:
                    continue
            log.error("turn %s: outcome %s never recorded", client_id, outcome.value)

        task = asyncio.ensure_future(later())
        self._running.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task) -> None:
        """Forget a finished turn task; its error, if nobody awaited it, is already recorded."""
        self._running.discard(task)
        if not task.cancelled():
            task.exception()

    async def _earlier(
        self, conversation_id: str, client_id: str, entry_id: str | None = None
    ) -> tuple[list[dict], DeskState] | None:
        """What followed the message with this client id, if it was recorded. ``entry_id``: its
        event id when already known (the turn's first script read it), saving the lookup."""
        if entry_id is not None:
            earlier = await self.events.at(conversation_id, entry_id)
        else:
            earlier = await self.events.find(conversation_id, client_id)
        if earlier is None:
            return None
        later = await self.events.history(conversation_id, earlier["id"])
        return [earlier, *later], await self.desk.state(conversation_id)

    async def _wait_for(
        self, conversation_id: str, client_id: str, incoming: Incoming | None = None
    ) -> tuple[list[dict], DeskState]:
        """The result of the turn another request reserved, once it is recorded. A turn pending
        for longer than a turn takes (its gateway may have died) is settled from Rasa's tracker
        (:meth:`_recover`), at most every :data:`RECOVERY_PAUSE` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        pause = 0.05
        next_recovery = 0.0
        while True:
            earlier = await self._earlier(conversation_id, client_id)
            if earlier is not None:
                return earlier
            state = await self.turns.state(conversation_id, client_id)
            if state in (TurnState.pending, TurnState.unknown) and loop.time() >= next_recovery:
                since = await self.turns.pending_since(conversation_id, client_id)
                stale = since is not None and time.time() - since >= turn_recovery.SETTLE_SECONDS
                if state is TurnState.unknown or stale:
                    next_recovery = loop.time() + RECOVERY_PAUSE
                    recovered = await self._recover(conversation_id, client_id, incoming)
                    if recovered is not None:
                        return recovered
                    state = await self.turns.state(conversation_id, client_id)
            if state is TurnState.unknown:
                raise outcome_unknown(retry_after=60)
            if state is TurnState.absent:
                raise not_sent(retry_after=1)
            if loop.time() >= deadline:
                raise still_running(retry_after=2)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)

    async def _run_turn(
        self, conversation_id: str, incoming: Incoming, client_id: str, begun: Begun
    ) -> tuple[list[dict], DeskState]:
        """Route the reserved message and record the outcome of its reservation."""
        answered = recorded = False
        slot: TurnSlot | None = None
        try:
            state = plain_bot_state(begun.handoff) or await self.desk.state(conversation_id)
            if not (state.mode == "agent" and state.ticket_id):
                slot = await self.admission.enter()  # else 503 busy: not sent, a retry runs it
            if incoming.payload is not None:
                shown = incoming.title or ""
            else:
                # the tail read with the reservation, unless the turn waited for its slot
                tail = None if slot is not None and slot.waited else begun.card_tail
                shown = await self.cards.mask(
                    conversation_id, "customer", incoming.text or "", tail
                )
            customer_event = {"type": "message", "from": "customer", "text": shown}
            customer_event["client_id"] = client_id
            if state.mode == "agent" and state.ticket_id:
                await self.desk.customer_message(state, conversation_id, shown, client_id)
                answered = True
                result = await self.events.append(conversation_id, [customer_event]), state
            else:
                customer_event["ts"] = time.time()
                to_rasa = incoming.payload if incoming.payload else as_free_text(shown)
                try:
                    replies = await self._rasa.send(
                        conversation_id, to_rasa, timeout=self._rasa_timeout, client_id=client_id
                    )
                except RasaUnavailable as error:
                    metrics.ERRORS.labels("rasa_unavailable").inc()
                    log.warning("turn %s: %s", client_id, error)
                    replies = None
                answered = True
                events = bot_events(replies or [])
                if not events and await self._bot_unavailable(replies):
                    result = await self._without_bot(conversation_id, incoming, customer_event)
                else:
                    result = await self._record_turn(conversation_id, customer_event, events)
                    recorded = True  # the record marked the turn done
        except BaseException:
            outcome = TurnState.unknown if answered else TurnState.absent
            await asyncio.shield(self._settle(conversation_id, client_id, outcome))
            raise
        finally:
            if slot is not None:
                slot.release()
        if not recorded:
            await self.turns.finish(conversation_id, client_id, TurnState.done)
        return result

    async def _record_turn(
        self, conversation_id: str, customer_event: dict[str, Any], events: list[dict[str, Any]]
    ) -> tuple[list[dict], DeskState]:
        """Append a bot turn once: the message under its client id, each reply under
        :func:`~bot.web.turn_recovery.reply_key`, so a second recorder (a retry that recovered
        the turn from Rasa's tracker) appends nothing twice; the replies' buttons become the
        offer only for the recorder that appended the message; the turn is marked done. One
        script (:meth:`TurnScripts.record`); a mode to record (or a ticket) takes
        :meth:`sync_mode` as well."""
        client_id = customer_event["client_id"]
        keyed = [
            {**event, "dedup_key": turn_recovery.reply_key(client_id, index)}
            for index, event in enumerate(events)
        ]
        turn = await self.scripts.record(
            conversation_id, client_id, [customer_event, *keyed], events
        )
        state = plain_bot_state(turn.handoff)
        if state is not None and turn.recorded_mode == state.mode.value:
            return turn.events, state  # what sync_mode would find: nothing to record
        return turn.events, await self.sync_mode(conversation_id)

    async def _recover(
        self, conversation_id: str, client_id: str, incoming: Incoming | None
    ) -> tuple[list[dict], DeskState] | None:
        """Settle a turn whose marker outlived its gateway from Rasa's tracker (see
        :mod:`bot.web.turn_recovery`): record it if Rasa finished it; once the marker reads as
        unknown (older than the Rasa timeout, so the message is not still on its way to a busy
        Rasa), release the reservation if Rasa never ran it (then ``_wait_for`` reports it not
        sent and the retry runs it)."""
        try:
            tracker = await self._rasa.tracker(conversation_id)
        except RasaUnavailable:
            return None
        replies = turn_recovery.finished_turn(tracker, client_id)
        if replies is not None:
            found = turn_recovery.user_event(tracker, client_id)
            text = str((found[1] if found else {}).get("text") or "")
            if incoming is not None and incoming.payload is not None:
                text = incoming.title or text
            customer_event = {
                "type": "message",
                "from": "customer",
                "text": mask_card_numbers(text),
                "client_id": client_id,
            }
            log.warning("recovered turn %s from Rasa's tracker", client_id)
            result = await self._record_turn(conversation_id, customer_event, bot_events(replies))
            await self.turns.finish(conversation_id, client_id, TurnState.done)
            return result
        if await self.turns.state(conversation_id, client_id) is not TurnState.unknown:
            return None  # younger than the Rasa timeout: it may still be on its way to Rasa
        lock = keys.RASA_LOCK.format(ns=self._ns, conversation=conversation_id)
        if turn_recovery.never_ran(tracker, client_id, await self._redis.hgetall(lock)):
            log.warning("turn %s never reached Rasa; released for a retry", client_id)
            await self.turns.finish(conversation_id, client_id, TurnState.absent)
        return None

    async def _bot_unavailable(self, replies: list[dict[str, Any]] | None) -> bool:
        """Rasa failed (None), or answered nothing while its action server is down (Rasa 3.6
        logs the failed custom action and its webhook returns ``[]``)."""
        if replies is None:
            return True
        return self._actions_up is not None and not await self._actions_up()

    async def _without_bot(
        self, conversation_id: str, incoming: Incoming, customer_event: dict[str, Any]
    ) -> tuple[list[dict], DeskState]:
        """Answer a turn the bot could not: store the message and tell the customer so; a
        request for a person opens the ticket straight in the queue (see :mod:`bot.web.fallback`).
        The message is not replayed to Rasa later: it may have reached it already."""
        handoff = fallback.handoff_for(self._policy, incoming.text, incoming.payload)
        if handoff is None:
            state = await self.desk.state(conversation_id)
            notice = fallback.reconnecting_notice(state)
            appended = await self.events.append(conversation_id, [customer_event, notice])
            return appended, state
        # the customer's message first, so the ticket's transcript ends with it
        first = await self.events.append(conversation_id, [customer_event])
        history = await self.events.history(conversation_id)
        request = fallback.ticket_request(conversation_id, handoff, history)
        state, online = await self.desk.request_person(request)
        metrics.HANDOFFS.labels("bot_unavailable").inc()
        await self.offers.replace(conversation_id, [])
        notice = await self.events.append(conversation_id, [fallback.queued_notice(state, online)])
        return [*first, *notice], await self.sync_mode(conversation_id, state)

    async def relay_bot_replies(
        self, conversation_id: str, replies: list[dict[str, Any]]
    ) -> list[dict]:
        """Append bot replies that came outside a customer turn; their buttons become the offer."""
        events = bot_events(replies)
        if not events:
            return []
        await self.offers.replace(conversation_id, events)
        return await self.events.append(conversation_id, events)

    async def view(self, conversation_id: str, after: str = "0-0") -> dict[str, Any]:
        state = await self.sync_mode(conversation_id)
        history = await self.events.history(conversation_id, after)
        return {"conversation_id": conversation_id, **state.public(), "messages": history}


def plain_bot_state(handoff: dict[str, str]) -> DeskState | None:
    """The desk state of a conversation whose handoff hash (as stored by
    :class:`bot.handoff.ModeStore`) holds no ticket and mode ``bot``: what ``desk.state`` would
    answer without reading more. None for anything else (ask the desk)."""
    if handoff.get("ticket_id") or (handoff.get("mode") or "bot") != ConversationMode.BOT.value:
        return None
    return DeskState(mode=ConversationMode.BOT)


def _leading_noise(char: str) -> bool:
    """Characters Rasa may skip before a ``/``: whitespace, invisible ones, slashes."""
    if char.isspace() or unicodedata.category(char) in ("Cf", "Cc", "Zs", "Zl", "Zp", "Mn"):
        return True
    return unicodedata.normalize("NFKC", char).strip() in ("", "/")


def as_free_text(text: str) -> str:
    """The text as Rasa must see it: never as an intent (``/restart`` typed by a customer).

    Rasa's RegexMessageHandler takes a message as an intent when ``text.strip()`` starts with
    ``/``. Leading whitespace (tabs, no-break spaces ...), invisible characters (zero-width
    spaces, BOM) and anything that is a slash after NFKC (fullwidth solidus) are dropped, so
    what Rasa gets starts with a visible character other than ``/``.
    """
    start = 0
    while start < len(text) and _leading_noise(text[start]):
        start += 1
    return text[start:]


def has_words(text: str) -> bool:
    """True when the text is more than whitespace, invisible characters and slashes."""
    return bool(as_free_text(text).strip())
