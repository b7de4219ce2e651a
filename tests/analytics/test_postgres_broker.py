"""With EVENTS_DB_URL pointing at PostgreSQL, Rasa's broker (configured as in endpoints.yml)
writes there and the analytics read the same conversations back. Runs a real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from rasa.core.brokers.broker import EventBroker
from rasa.utils.endpoints import EndpointConfig

from bot.analytics import measures, rasa_events
from bot.analytics.records import build_records
from bot.runtime.ports import free_port

from .test_rasa_events import conversation_events

BIN = Path("/usr/local/bin") if Path("/usr/local/bin/initdb").exists() else None


def as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: use the ``postgres`` account then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    initdb = shutil.which("initdb") or (str(BIN / "initdb") if BIN else None)
    if initdb is None:
        pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed")
    pg_ctl = str(Path(initdb).with_name("pg_ctl"))
    home = Path(tempfile.mkdtemp(prefix="analytics-pg-"))  # pytest's tmp is root-only
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    data, port = home / "data", free_port()
    subprocess.run(
        as_postgres_user([initdb, "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
    start = [pg_ctl, "-D", str(data), "-o", options, "-l", str(home / "log"), "-w", "start"]
    subprocess.run(as_postgres_user(start), check=True, capture_output=True)
    try:
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="postgres"
        )
        connection.autocommit = True
        connection.cursor().execute("CREATE DATABASE events")
        connection.close()
        yield f"postgresql://postgres@127.0.0.1:{port}/events"
    finally:
        stop = [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]
        subprocess.run(as_postgres_user(stop), check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


async def test_rasa_writes_conversations_to_postgresql_and_the_analytics_read_them(postgres):
    broker = await EventBroker.create(EndpointConfig(url=postgres, type="SQL"))
    for sender, events in conversation_events().items():
        for event in events:
            broker.publish({"sender_id": sender, **event.as_dict()})

    records = {r.conversation_id: r for r in build_records(rasa_events.read_events(postgres))}

    assert set(records) == set(conversation_events())
    assert measures.contained(records["helped"])
    assert records["unhelped"].ended_didnt_help
    assert records["rated"].rating == 2
