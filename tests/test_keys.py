"""bot.keys: one registry of Redis keys; the queue writes no key outside it and spells none itself."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from redis.asyncio import Redis

import bot.queue
from bot import keys
from bot.queue import Customer, HandoffQueue
from bot.queue.scripts import COMMANDS, ScriptSettings, compile_scripts

QUEUE_PACKAGE = Path(bot.queue.__file__).parent


def test_a_spec_formats_its_keys_and_parses_them_back() -> None:
    key = keys.QUEUE_AGENT_INBOX.format(ns="support", agent="ann@example")
    assert key == "support:q:a:ann@example:inbox"
    assert keys.QUEUE_AGENT_INBOX.parse(key) == {"ns": "support", "agent": "ann@example"}
    assert keys.QUEUE_AGENT_INBOX.parse(key, ns="other") is None
    assert keys.QUEUE_AGENT.parse(key, ns="support") == {
        "ns": "support",
        "agent": "ann@example:inbox",
    }
    assert keys.QUEUE_TICKET.parse("support:q:q:cards") is None
    with pytest.raises(KeyError, match="needs ns, agent"):
        keys.QUEUE_AGENT_INBOX.format(ns="support")


def test_every_entry_is_complete_and_names_and_templates_are_unique() -> None:
    specs = keys.specs()
    assert len({s.name for s in specs}) == len({s.template for s in specs}) == len(specs)
    for spec in specs:
        assert spec.owner and spec.retention and spec.comment, spec.name
        assert spec.type in ("string", "hash", "list", "set", "zset", "stream", "channel")
        assert spec.parts[0] == "ns"
    with pytest.raises(ValueError, match="registered twice"):
        keys.register(
            "queue.seq", "{ns}:elsewhere", owner="x", type="string", retention="-", comment="-"
        )
    with pytest.raises(ValueError, match="must start with"):
        keys.KeySpec("x", "no-namespace:{id}", "x", "string", "-", "-")


def test_the_queue_spells_no_key_itself() -> None:
    for path in QUEUE_PACKAGE.rglob("*.lua"):
        text = path.read_text()
        assert ":q:" not in text and "P .. " not in text, path.name
    for path in QUEUE_PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"""f["'][^"']*:q:""", text), path.name
        assert '":q' not in text and "':q" not in text, path.name
    # the scripts get their key functions from the registry, with the namespace filled in
    scripts = compile_scripts(ScriptSettings("ns-x", 100, 0, 1000, 1000))
    assert set(scripts) == set(COMMANDS)
    assert "local function k_ticket(ticket) return 'ns-x:q:t:' .. ticket end" in (
        scripts["enqueue"].source
    )


async def test_every_key_the_queue_writes_is_registered(redis_client: Redis) -> None:
    queue = HandoffQueue(redis_client, namespace="keys", closed_ttl_seconds=60)
    await queue.agent_online("ann", ["cards"], 1)
    first = await queue.enqueue("conv-1", Customer("c1"), ["low_confidence"], 5, "cards")
    await queue.send_message(first.id, "customer", "c1", "hello?", "m1")
    await queue.send_message(first.id, "agent", "ann", "hi", "m2")
    second = await queue.enqueue("conv-2", Customer("c2"), ["low_confidence"], 5, "cards")
    await queue.resolve(first.id, "ann")  # ann takes the second ticket next
    await queue.transfer(second.id, topic="loans")
    await queue.agent_offline("ann")
    await queue.reap_expired()
    written = await redis_client.keys("*")
    registered = keys.specs(owner="bot.queue")
    unknown = [k for k in written if not any(s.parse(k, ns="keys") is not None for s in registered)]
    assert written and not unknown
    assert keys.QUEUE_HANDLE_TIMES.format(ns="keys", topic="cards") in written


PROJECT = Path(__file__).resolve().parent.parent
KEYLIKE = re.compile(r"\{ns\}:|:(q|web|handoff|escalation|audit|limit|analytics|rasa):|:csat\b")
NAMESPACE_NAMES = re.compile(r"(^|_)(ns|namespace|prefix)$")


def _name_of(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        return _name_of(node.func)
    return ""


def keylike_strings(source: str) -> list[str]:
    """String literals and f-strings of ``source`` that spell a Redis key (docstrings aside)."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            values = node.values
            for first, second in zip(values, values[1:], strict=False):
                if (
                    isinstance(first, ast.FormattedValue)
                    and NAMESPACE_NAMES.search(_name_of(first.value))
                    and isinstance(second, ast.Constant)
                    and str(second.value).startswith(":")
                ):
                    found.append(ast.unparse(node))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and KEYLIKE.search(node.value)
        ):
            found.append(node.value[:80])
    return found


def test_the_scanner_finds_keys_spelled_by_hand() -> None:
    assert keylike_strings('key = f"{namespace}:web:conv:{cid}"')
    assert keylike_strings('key = f"{self._ns}:anything"')
    assert keylike_strings('TEMPLATE = "{ns}:escalation:decisions"')
    assert keylike_strings('key = ns + ":csat"')
    assert not keylike_strings('"""Streams ``<ns>:csat`` and ``{ns}:q:t``."""\nx = f"{a}: {b}"')


def test_no_module_spells_a_redis_key_outside_the_registry() -> None:
    offenders = {}
    for package in ("bot", "actions"):
        for path in sorted((PROJECT / package).rglob("*.py")):
            if path == PROJECT / "bot" / "keys.py":
                continue
            found = keylike_strings(path.read_text())
            if found:
                offenders[str(path.relative_to(PROJECT))] = found
    assert offenders == {}


def test_the_retention_table_in_the_docs_is_the_registry() -> None:
    doc = (PROJECT / "docs" / "security.md").read_text()
    assert keys.markdown_table() in doc, "regenerate it: python -m bot.keys --markdown"


def test_every_key_says_how_its_growth_is_bounded() -> None:
    for spec in keys.specs():
        assert spec.bound in ("ttl", "capped", "kept"), spec.name
        if spec.bound == "kept":
            assert spec.retention.startswith("kept: "), f"{spec.name}: say why it is kept"
        if spec.cap is not None:
            assert spec.type in ("stream", "list"), spec.name


def test_a_pattern_matches_the_keys_of_its_spec() -> None:
    from fnmatch import fnmatchcase

    pattern = keys.WEB_ACCOUNT.pattern(ns="support")
    assert pattern == "support:web:agent:*"
    assert fnmatchcase(keys.WEB_ACCOUNT.format(ns="support", login="ann"), pattern)
