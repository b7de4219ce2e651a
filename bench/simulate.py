"""Drive N simulated customers and a few simulated agents through the running stack.

    python -m bench.simulate --customers 40 [--gateway http://127.0.0.1:8080] [--seed 7]

Everything goes through the gateway's HTTP API, exactly as the widget and the console use it:
customers start conversations and type or press buttons; agents log in, go online, claim
tickets, reply, resolve with a disposition or hand back to the bot, and label each ticket in
one click. So a fresh install shows a populated dashboard, and the end-to-end test can check the
dashboard's figures against what the simulation did (the returned :class:`Ledger`).

Customer mixes (weights in :data:`PERSONAS`): routine questions that were answered, routine
answers that did not help (the customer leaves), frustrated customers who ask for a person,
sensitive topics, out-of-scope streaks that end with the customer leaving, explicit requests
for a person (the agent hands back to the bot), and impatient customers who cancel their
request while waiting. Agent accounts ``sim-agent-<n>`` are created in Redis (``--redis-url``;
default the stack's) with hashed passwords like any account; without Redis the demo agent works
alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

ROUTINE = (
    "my card still hasn't arrived",
    "how do I change my PIN?",
    "what exchange rate do you use?",
    "is there a fee for taking cash out at an ATM?",
    "how long does a bank transfer take?",
    "can I get a virtual card?",
    "my top up failed",
    "how do I activate my new card?",
    "how do I verify my identity?",
    "can I use apple pay with my card?",
)
SENSITIVE = (
    "someone has used my card without my permission",
    "there is a payment on my account I don't recognise",
    "I lost my job and can't afford to pay my bills",
    "my card was stolen this morning",
)
OUT_OF_SCOPE = (
    ("what's the weather in Paris tomorrow", "who won the football last night"),
    ("can you book me a table for two", "recommend a good film to watch"),
    ("what's the capital of australia", "tell me a recipe for pancakes"),
)
ASK_PERSON = (
    "I'd like to speak to a human agent please",
    "can I talk to a real person",
    "connect me with someone from support",
)
PERSONAS = {
    "routine_helped": 35,
    "routine_unhelped": 15,
    "frustrated": 15,
    "sensitive": 10,
    "out_of_scope": 10,
    "explicit": 10,
    "impatient": 5,
}
AGENT_PASSWORD = "sim-agent-password"
AGENT_CAPACITY = 3
PICKUP_SECONDS = 1.5  # an agent takes a ticket once it has waited this long
AGENT_SKILLS = (
    "general",
    "card_security",
    "disputes",
    "financial_support",
    "complaints",
    "bereavement",
    "vulnerable_customers",
)
WAIT_FOR_AGENT_SECONDS = 90.0
POLL_SECONDS = 0.3


@dataclass
class CustomerRun:
    """What one simulated customer did and saw."""

    persona: str
    conversation_id: str = ""
    messages_sent: int = 0
    handed_off: bool = False
    agent_joined: bool = False
    cancelled: bool = False
    rating: int | None = None
    rating_offered: bool = False
    agent_replies_seen: int = 0
    error: str | None = None


@dataclass
class Ledger:
    """The simulation's own account of what happened, to compare with the dashboard."""

    customers: list[CustomerRun] = field(default_factory=list)
    tickets_claimed: int = 0
    tickets_replied: int = 0
    resolved: int = 0
    handed_back: int = 0
    labels: Counter = field(default_factory=Counter)
    agent_errors: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    def summary(self) -> dict[str, Any]:
        runs = self.customers
        ratings = [r.rating for r in runs if r.rating is not None]
        return {
            "customers": len(runs),
            "personas": dict(Counter(r.persona for r in runs)),
            "handed_off": sum(r.handed_off for r in runs),
            "agent_joined": sum(r.agent_joined for r in runs),
            "cancelled_while_waiting": sum(r.cancelled for r in runs),
            "ratings": len(ratings),
            "mean_rating": round(sum(ratings) / len(ratings), 2) if ratings else None,
            "tickets_claimed": self.tickets_claimed,
            "tickets_replied": self.tickets_replied,
            "resolved": self.resolved,
            "handed_back": self.handed_back,
            "labels": dict(self.labels),
            "errors": [r.error for r in runs if r.error] + self.agent_errors,
        }


class Api:
    """A thin client of the gateway's HTTP API."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str | None = None):
        self.session, self.base, self.token = session, base.rstrip("/"), token

    async def call(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        attempt = limited = 0
        while attempt < 5:
            async with self.session.request(
                method, self.base + path, json=body, headers=headers
            ) as response:
                data = await response.json(content_type=None)
                if response.status == 429 and limited < 60:  # a rate limit: wait as told
                    limited += 1
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                attempt += 1
                retry = response.status == 503 or (method == "GET" and response.status >= 500)
                if retry and attempt < 5:  # busy, or a read that raced a change: retry
                    await asyncio.sleep(0.5 * attempt)
                    continue
                if response.status >= 400:
                    raise RuntimeError(f"{method} {path}: {response.status} {data}")
                return data
        raise RuntimeError(f"{method} {path}: unavailable")


# ---- customers ---------------------------------------------------------------------------------


class Customer:
    def __init__(self, api: Api, run: CustomerRun, rng: random.Random):
        self.api, self.run, self.rng = api, run, rng
        self.mode = "bot"
        self.after = "0-0"
        self.bot_messages: list[dict] = []

    async def start(self) -> None:
        created = await self.api.call("POST", "/api/conversations")
        self.run.conversation_id = created["conversation_id"]
        self.api.token = created["token"]

    def _take(self, events: list[dict]) -> None:
        for event in events:
            if event.get("id"):
                self.after = event["id"]
            if event.get("type") == "message" and event.get("from") == "bot":
                self.bot_messages.append(event)
            if event.get("type") == "message" and event.get("from") == "agent":
                self.run.agent_replies_seen += 1

    def _mode(self, mode: str) -> None:
        self.mode = mode
        if mode in ("waiting", "agent"):
            self.run.handed_off = True
        if mode == "agent":
            self.run.agent_joined = True

    async def say(self, text: str | None = None, payload: str | None = None) -> list[dict]:
        body = {"text": text} if text is not None else {"payload": payload}
        before = len(self.bot_messages)
        result = await self.api.call(
            "POST", f"/api/conversations/{self.run.conversation_id}/messages", body
        )
        self.run.messages_sent += 1
        self._take(result["messages"])
        self._mode(result["mode"])
        return self.bot_messages[before:]

    async def refresh(self) -> None:
        view = await self.api.call(
            "GET", f"/api/conversations/{self.run.conversation_id}?after={self.after}"
        )
        self._take(view["messages"])
        self._mode(view["mode"])

    async def wait_for(
        self, modes: tuple[str, ...], timeout: float = WAIT_FOR_AGENT_SECONDS
    ) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.refresh()
            if self.mode in modes:
                return True
            await asyncio.sleep(POLL_SECONDS)
        return False

    def _rating_prompt(self, since: int = 0) -> bool:
        return any(
            str(b.get("payload", "")).startswith("/csat_rating")
            for m in self.bot_messages[since:]
            for b in m.get("buttons") or []
        )

    async def rate(self, low: int, high: int, since: int = 0) -> None:
        if not self._rating_prompt(since):
            return
        self.run.rating_offered = True
        score = self.rng.randint(low, high)
        replies = await self.say(payload=f'/csat_rating{{"csat_score": "{score}"}}')
        self.run.rating = score
        if any("/deny" in str(b.get("payload")) for m in replies for b in m.get("buttons") or []):
            if self.rng.random() < 0.4:
                await self.say(text=self.rng.choice(("quick and clear", "took a while", "fine")))
            else:
                await self.say(payload="/deny")

    async def goodbye_and_rate(self, low: int, high: int) -> None:
        mark = len(self.bot_messages)
        await self.say(
            text=self.rng.choice(("thanks, bye", "great, thank you. bye!", "ok thanks, goodbye"))
        )
        await self.rate(low, high, mark)

    async def with_agent(self, low: int, high: int, cancel: bool = False) -> None:
        """Wait in the queue (or cancel), talk to the agent, then rate when the bot asks."""
        if self.mode not in ("waiting", "agent"):
            return
        if cancel:
            await asyncio.sleep(self.rng.uniform(0.1, 0.4))  # before an agent picks it up
            await self.say(payload="/cancel_handoff")
            # an agent may have taken the ticket first: then the cancel went to the agent
            self.run.cancelled = self.mode == "bot"
            if self.run.cancelled:
                return
        if not await self.wait_for(("agent",)):
            return
        await self.say(text="thanks for picking this up")
        mark = len(self.bot_messages)
        if await self.wait_for(("bot",)):
            await asyncio.sleep(0.2)
            await self.refresh()
            await self.rate(low, high, mark)


async def play(customer: Customer) -> None:
    run, rng = customer.run, customer.rng
    await customer.start()
    persona = run.persona
    if persona in ("routine_helped", "routine_unhelped", "frustrated"):
        await customer.say(text=rng.choice(("hi", "hello")))
        await customer.say(text=rng.choice(ROUTINE))
        if persona == "routine_helped":
            await customer.say(payload="/affirm")
            await customer.goodbye_and_rate(4, 5)
        elif persona == "routine_unhelped":
            await customer.say(payload="/deny")  # ... and leaves
        else:
            await customer.say(payload="/deny")
            await customer.say(text="this is useless, let me talk to a real person")
            await customer.with_agent(2, 4)
    elif persona == "sensitive":
        await customer.say(text=rng.choice(SENSITIVE))
        if customer.mode == "bot":  # offered rather than handed off: accept
            await customer.say(payload="/request_human")
        await customer.with_agent(3, 5)
    elif persona == "out_of_scope":
        for text in rng.choice(OUT_OF_SCOPE):
            await customer.say(text=text)
        # offered a person after the failed turns: the customer just leaves
    elif persona == "explicit":
        await customer.say(text=rng.choice(ASK_PERSON))
        await customer.with_agent(3, 5)
        if customer.mode == "bot" and run.agent_joined:
            await customer.goodbye_and_rate(3, 5)
    elif persona == "impatient":
        await customer.say(text="I need a real person right now")
        await customer.with_agent(1, 2, cancel=True)


# ---- agents ------------------------------------------------------------------------------------


LABEL_RULES = (
    ("sensitive:", "correct"),
    ("failed_turns", "too_late"),
    ("negative", "too_late"),
    ("explicit_request", "bot_should_have_solved"),
)


def label_for(ticket: dict, rng: random.Random) -> str:
    """The simulated agent's verdict: sensitive topics were right to escalate, failed turns and
    anger came too late, a bare request for a person on a routine question was often avoidable."""
    reasons = " ".join(ticket.get("reasons") or [])
    for needle, label in LABEL_RULES:
        if needle in reasons:
            if label == "bot_should_have_solved" and rng.random() < 0.5:
                return "correct"
            return label
    return "new_topic"


async def work_ticket(api: Api, ticket: dict, ledger: Ledger, rng: random.Random) -> None:
    tid = ticket["id"]
    await asyncio.sleep(rng.uniform(0.2, 0.8))
    await api.call(
        "POST",
        f"/api/tickets/{tid}/messages",
        {"text": "Hi, I'm Sam from Pennant Pay. Let me look into this for you."},
    )
    ledger.tickets_replied += 1
    await asyncio.sleep(rng.uniform(0.5, 1.5))
    if list(ticket.get("reasons") or []) == ["explicit_request"] and rng.random() < 0.7:
        await api.call(
            "POST",
            f"/api/tickets/{tid}/messages",
            {"text": "All sorted. I'll pass you back to our assistant."},
        )
        await api.call("POST", f"/api/tickets/{tid}/handback")
        ledger.handed_back += 1
    else:
        disposition = rng.choice(("solved", "solved", "workaround_given", "solved_with_follow_up"))
        await api.call("POST", f"/api/tickets/{tid}/resolve", {"disposition": disposition})
        ledger.resolved += 1
    label = label_for(ticket, rng)
    await api.call("POST", f"/api/tickets/{tid}/label", {"label": label})
    ledger.labels[label] += 1


async def claim_next(api: Api) -> dict | None:
    """The longest-waiting ticket this agent can take once it has waited
    :data:`PICKUP_SECONDS` (agents are not instant), or None (also when at capacity)."""
    tickets = (await api.call("GET", "/api/tickets?state=queued"))["tickets"]
    ready = [
        t for t in tickets if t.get("can_claim") and t.get("wait_seconds", 0) >= PICKUP_SECONDS
    ]
    if not ready:
        return None
    ticket = max(ready, key=lambda t: (t["priority"], t["wait_seconds"]))
    try:
        return (await api.call("POST", f"/api/tickets/{ticket['id']}/claim")).get("ticket")
    except RuntimeError as error:
        if " 409 " in str(error) or " 404 " in str(error):  # at capacity, or taken/cancelled
            return None
        raise


async def guarded(work, ledger: Ledger) -> None:
    try:
        await work
    except Exception as error:  # noqa: BLE001 - recorded in the ledger and reported
        ledger.agent_errors.append(f"{type(error).__name__}: {error}")


async def agent_loop(
    api: Api, login: str, password: str, ledger: Ledger, stop: asyncio.Event, seed: int
) -> None:
    rng = random.Random(seed)
    api.token = (
        await api.call("POST", "/api/agent/login", {"login": login, "password": password})
    )["token"]
    await api.call("POST", "/api/agent/presence", {"online": True})
    working: set[asyncio.Task] = set()
    for held in (await api.call("GET", "/api/agent/me")).get("tickets") or []:
        task = asyncio.create_task(guarded(work_ticket(api, held, ledger, rng), ledger))
        working.add(task)
        task.add_done_callback(working.discard)
    last_beat = time.monotonic()
    while not stop.is_set() or working:
        if time.monotonic() - last_beat > 3:
            await api.call("POST", "/api/agent/presence", {"online": True})
            last_beat = time.monotonic()
        if not stop.is_set() and len(working) < AGENT_CAPACITY:
            claimed = await claim_next(api)
            if claimed:
                ledger.tickets_claimed += 1
                task = asyncio.create_task(guarded(work_ticket(api, claimed, ledger, rng), ledger))
                working.add(task)
                task.add_done_callback(working.discard)
                continue
        await asyncio.sleep(POLL_SECONDS)
    await api.call("POST", "/api/agent/presence", {"online": False})


async def ensure_agents(redis_url: str | None, namespace: str, count: int) -> list[tuple[str, str]]:
    """Sim agent accounts (created in Redis if missing); the demo agent when Redis is unknown."""
    from bot.web.auth import DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD, Agent, AgentAccounts

    if not redis_url:
        return [(DEMO_AGENT_EMAIL, DEMO_AGENT_PASSWORD)]
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        accounts = AgentAccounts(client, namespace)
        logins = []
        for n in range(1, count + 1):
            login = f"sim-agent-{n}"
            agent = Agent(
                login=login,
                name=f"Sim agent {n}",
                skills=list(AGENT_SKILLS),
                capacity=AGENT_CAPACITY,
            )
            await accounts.create(agent, AGENT_PASSWORD)
            logins.append((login, AGENT_PASSWORD))
        return logins
    finally:
        await client.close()


# ---- the run -----------------------------------------------------------------------------------


def personas(count: int, rng: random.Random) -> list[str]:
    """``count`` personas in the mix of :data:`PERSONAS` (rounded, then shuffled)."""
    names = list(PERSONAS)
    return [rng.choices(names, weights=[PERSONAS[n] for n in names])[0] for _ in range(count)]


async def simulate(
    gateway: str,
    customers: int,
    *,
    seed: int = 7,
    concurrency: int = 4,
    agents: int = 2,
    redis_url: str | None = None,
    namespace: str = "support",
) -> Ledger:
    """Run the simulation against a running gateway and return what it did."""
    rng = random.Random(seed)
    ledger = Ledger()
    stop = asyncio.Event()
    logins = await ensure_agents(redis_url, namespace, agents)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        agent_tasks = [
            asyncio.create_task(
                agent_loop(Api(session, gateway), login, password, ledger, stop, seed + i)
            )
            for i, (login, password) in enumerate(logins)
        ]
        gate = asyncio.Semaphore(concurrency)

        async def one(persona: str, n: int) -> None:
            run = CustomerRun(persona)
            ledger.customers.append(run)
            async with gate:
                try:
                    await play(Customer(Api(session, gateway), run, random.Random(seed * 1000 + n)))
                except Exception as error:  # noqa: BLE001 - recorded in the ledger and reported
                    run.error = f"{type(error).__name__}: {error}"

        await asyncio.gather(*(one(p, n) for n, p in enumerate(personas(customers, rng))))
        stop.set()
        await asyncio.gather(*agent_tasks)
    ledger.finished_at = time.time()
    return ledger


def main(argv: list[str] | None = None) -> None:
    from bot.analytics.collect import redis_url
    from bot.config import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(
        description="Drive simulated customers and agents through the running stack."
    )
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument(
        "--gateway", default=f"http://{settings.gateway_host}:{settings.gateway_port}"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=4, help="customers chatting at once")
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--redis-url", default=redis_url(), help="to create the sim agent accounts")
    parser.add_argument("--namespace", default=settings.queue_namespace)
    args = parser.parse_args(argv)
    started = time.monotonic()
    ledger = asyncio.run(
        simulate(
            args.gateway,
            args.customers,
            seed=args.seed,
            concurrency=args.concurrency,
            agents=args.agents,
            redis_url=args.redis_url,
            namespace=args.namespace,
        )
    )
    print(json.dumps(ledger.summary(), indent=2))
    print(
        f"simulated {args.customers} customers in {time.monotonic() - started:.0f} s; "
        f"open {args.gateway}/dashboard (log in as a support lead)"
    )


if __name__ == "__main__":
    main()
