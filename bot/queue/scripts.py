"""The queue's Lua scripts: loaded from ``lua/`` at import, compiled per queue, run by EVALSHA.

Each state change of the queue is one script (``lua/<command>.lua``), run atomically by Redis.
:func:`compile_scripts` puts the prelude (``lua/prelude.lua``) in front of each one, with the
queue's settings filled in, the key functions generated from :mod:`bot.keys` (``k_ticket(id)``
-> ``'<ns>:q:t:<id>'``) and the ticket hash's field list from
:data:`bot.queue.records.TICKET_FIELDS`, and keeps only the prelude functions the script uses.

:class:`ScriptRunner` runs them: EVALSHA, and on NOSCRIPT (Redis restarted or was flushed) SCRIPT
LOAD and EVALSHA again. With ``autobatch`` the scripts that concurrent callers start in the same
event-loop turn go out as one redis-py pipeline (one write, one connection, replies in order):
each call is still its own atomic script with its own result or error.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

try:
    import hiredis
except ImportError:  # redis-py then packs (and parses) in Python
    hiredis = None

from bot import keys
from bot.queue import errors
from bot.queue.records import TICKET_FIELDS, Ticket


def _load_sources() -> dict[str, str]:
    folder = resources.files("bot.queue").joinpath("lua")
    return {
        entry.name.removesuffix(".lua"): entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".lua")
    }


SOURCES: dict[str, str] = _load_sources()
PRELUDE: str = SOURCES.pop("prelude")
COMMANDS: tuple[str, ...] = tuple(sorted(SOURCES))

_SAFE_LITERAL_RE = re.compile(r"^[A-Za-z0-9_.:*\-]*$")


def _lua_string(text: str, spec: keys.KeySpec) -> str:
    if not _SAFE_LITERAL_RE.match(text):
        raise ValueError(f"key {spec.name}: {text!r} cannot go into a Lua string as is")
    return f"'{text}'"


def lua_key_function(spec: keys.KeySpec, namespace: str) -> str:
    """``local function k_<what>(<parts>) return '<ns>:...' .. part .. '...' end`` for a key
    of the registry, with the namespace filled in (e.g. ``k_ticket(ticket)``)."""
    params = [p for p in spec.parts if p != "ns"]
    terms: list[str] = []  # Lua expressions: quoted literals and parameter names
    literal = ""
    for text, part in spec.pieces():
        literal += text + (namespace if part == "ns" else "")
        if part is not None and part != "ns":
            if literal:
                terms.append(_lua_string(literal, spec))
                literal = ""
            terms.append(part)
    if literal:
        terms.append(_lua_string(literal, spec))
    body = " .. ".join(terms)
    name = "k_" + spec.name.split(".", 1)[1]
    return f"local function {name}({', '.join(params)}) return {body} end\n"


def _with_prelude(prelude: str, body: str) -> str:
    """The script: the prelude's settings and only the functions the body uses (directly or
    through other functions), since Redis builds every local function anew on each call."""
    parts = re.split(r"(?m)^(?=local function )", prelude)
    head, functions = parts[0], parts[1:]
    names = [re.match(r"local function (\w+)", f).group(1) for f in functions]  # type: ignore[union-attr]
    needed: set[str] = set()
    todo = [body]
    while todo:
        text = todo.pop()
        for name, source in zip(names, functions, strict=True):
            if name not in needed and re.search(rf"\b{name}\(", text):
                needed.add(name)
                todo.append(source)
    return head + "".join(f for n, f in zip(names, functions, strict=True) if n in needed) + body


@dataclass(frozen=True)
class ScriptSettings:
    """What a queue compiles into its scripts."""

    namespace: str
    events_maxlen: int
    closed_ttl_ms: int  # 0: keep closed tickets
    lease_ms: int
    default_handle_ms: int


class Script:
    """One compiled script and its SHA1 (what EVALSHA names it by)."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def run(self, redis: Redis, args: Sequence[object]) -> Any:
        """EVALSHA; on NOSCRIPT load the script and run it again."""
        try:
            return await redis.execute_command("EVALSHA", self.sha, 0, *args)
        except NoScriptError:
            await redis.script_load(self.source)
            return await redis.execute_command("EVALSHA", self.sha, 0, *args)


@lru_cache(maxsize=64)
def compile_scripts(settings: ScriptSettings) -> dict[str, Script]:
    """Every command's script for these settings (cached: queues with the same settings share
    them)."""
    key_functions = "".join(
        lua_key_function(spec, settings.namespace) for spec in keys.specs(owner="bot.queue")
    )
    prelude = (
        PRELUDE.replace("-- __KEY_FUNCTIONS__\n", key_functions)
        .replace("__TICKET_FIELDS__", ", ".join(f"'{f.name}'" for f in TICKET_FIELDS))
        .replace("__EVENTS_MAXLEN__", str(settings.events_maxlen))
        .replace("__CLOSED_TTL_MS__", str(settings.closed_ttl_ms))
        .replace("__LEASE_MS__", str(settings.lease_ms))
        .replace("__DEFAULT_HANDLE_MS__", str(settings.default_handle_ms))
    )
    return {name: Script(name, _with_prelude(prelude, SOURCES[name])) for name in COMMANDS}


_Call = tuple[Script, Sequence[object], "asyncio.Future[Any]"]


class ScriptRunner:
    """Runs a queue's scripts on one client, one by one or batched (see the module doc)."""

    def __init__(self, redis: Redis, scripts: dict[str, Script], *, autobatch: bool) -> None:
        self.redis = redis
        self.scripts = scripts
        self.autobatch = autobatch
        self._pending: list[_Call] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, name: str, *args: object) -> Any:
        """The script's reply; a refusal is raised as its :class:`~bot.queue.errors.QueueError`."""
        script = self.scripts[name]
        try:
            if self.autobatch:
                return await self._submit(script, args)
            return await script.run(self.redis, args)
        except ResponseError as error:
            raise errors.from_reply(error) from None

    # -- autobatching -----------------------------------------------------------------------

    def _submit(self, script: Script, args: Sequence[object]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or used from a new event loop
            self._loop, self._pending = loop, []
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, args, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.ensure_future(self._execute(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _execute(self, batch: list[_Call]) -> None:
        """The batch as one pipeline on one pooled connection; each caller gets its own reply or
        error. A connection error fails the calls still waiting (as it fails single calls in
        flight); NOSCRIPT loads the script and runs just that call again.

        This is redis-py's pipeline at the connection level (``send_packed_command``, then
        ``read_response`` per reply, with the connection's socket timeout), without the
        ``Pipeline`` object's per-command bookkeeping; the commands are packed by hiredis when it
        is installed (redis-py's own packer is most of the client's cost at this rate) and the
        replies parsed by hiredis through redis-py.
        """
        pool = self.redis.connection_pool
        results: list[Any] = []
        try:
            conn = await pool.get_connection("EVALSHA")
            try:
                commands = [("EVALSHA", script.sha, 0, *args) for script, args, _ in batch]
                await conn.send_packed_command(_pack(conn, commands), check_health=False)
                for _ in batch:
                    try:
                        results.append(await conn.read_response())
                    except ResponseError as error:
                        results.append(error)
            except BaseException:
                await conn.disconnect()  # replies may be left unread: never reuse it
                raise
            finally:
                await pool.release(conn)
        except BaseException as error:  # handed to every caller still waiting
            failure = error if isinstance(error, Exception) else RedisConnectionError(repr(error))
            for _, _, future in batch[len(results) :]:
                if not future.done():
                    future.set_exception(failure)
            if not isinstance(error, Exception):
                raise
        for (script, args, future), result in zip(batch, results, strict=False):
            if future.done():
                continue
            if isinstance(result, NoScriptError):
                try:
                    future.set_result(await script.run(self.redis, args))
                except Exception as error:  # noqa: BLE001  (handed to the caller)
                    if not future.done():
                        future.set_exception(error)
            elif isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


def _pack(conn: Any, commands: list[tuple[object, ...]]) -> bytes | list[bytes]:
    """The commands in RESP: by hiredis if installed, else by the connection (redis-py)."""
    if hiredis is not None:
        return b"".join(map(hiredis.pack_command, commands))
    return conn.pack_commands(commands)


# -- replies ------------------------------------------------------------------------------------


def pairs(flat: Sequence[str]) -> dict[str, str]:
    """``[k1, v1, k2, v2, ...]`` -> ``{k1: v1, k2: v2, ...}``."""
    it = iter(flat)
    return dict(zip(it, it, strict=True))


def ticket_from_reply(packed: str, duplicate: bool = False) -> Ticket:
    """A ticket from a script's reply: its hash's fields and values joined by NUL (one bulk
    string is much cheaper to parse than ~50; ``ticket_reply`` in the prelude)."""
    return Ticket.from_redis(pairs(packed.split("\0")), duplicate=duplicate)
