"""What every handler of the gateway shares: one :class:`Gateway` per application."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from bot.config import Settings
    from bot.web.auth import AgentAccounts
    from bot.web.conversations import Conversations
    from bot.web.dependencies import Dependencies
    from bot.web.desk import Desk
    from bot.web.events import ConversationEvents
    from bot.web.rasa_ring import RasaRing


@dataclass
class Gateway:
    settings: Settings
    redis: Redis
    rasa: RasaRing
    events: ConversationEvents
    conversations: Conversations
    accounts: AgentAccounts
    desk: Desk
    allowed_origins: frozenset[str]
    dependencies: Dependencies


GATEWAY = web.AppKey("gateway", Gateway)
