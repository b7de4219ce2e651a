"""The turn benchmark's measuring parts (`bench.turns`): CPU read from /proc, the profile summary
and the per-level figures."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench import turns


def test_cpu_seconds_reads_a_processs_own_user_and_system_time():
    child = subprocess.Popen([sys.executable, "-c", "sum(i * i for i in range(3_000_000))"])
    child.wait()
    # a finished child's CPU is no longer in /proc: measure a live one, this process
    before = turns.cpu_seconds(os.getpid())
    sum(i * i for i in range(3_000_000))
    after = turns.cpu_seconds(os.getpid())
    assert after > before >= 0
    with pytest.raises(FileNotFoundError):
        turns.cpu_seconds(child.pid)


def test_top_frames_counts_inclusive_and_self_shares_of_collapsed_stacks():
    collapsed = [
        "main (bot/x.py:1);handle (rasa/core/processor.py:9);validate (jsonschema/validators.py:1120) 6",
        "main (bot/x.py:1);handle (rasa/core/processor.py:12);publish (rasa/core/brokers/sql.py:80) 3",
        "main (bot/x.py:2) 1",
        "garbage line",
    ]
    top = turns.top_frames(collapsed)
    inclusive = dict(top["inclusive"])
    own = dict(top["self"])
    assert inclusive["main (bot/x.py)"] == 100.0
    assert inclusive["handle (rasa/core/processor.py)"] == 90.0
    assert own["validate (jsonschema/validators.py)"] == 60.0
    assert own["publish (rasa/core/brokers/sql.py)"] == 30.0
    assert own["main (bot/x.py)"] == 10.0
    assert turns.top_frames([]) == {"inclusive": [], "self": []}


def test_a_level_reports_percentiles_throughput_and_cpu_per_turn():
    level = turns.Level(10, turns=4, seconds=2.0, round_trips_ms=[10.0, 20.0, 30.0, 400.0])
    level.errors["503"] = 1
    level.cpu_ms_per_turn["rasa"] = 12.345
    summary = level.summary()
    assert summary["turns_per_second"] == 2.0 and summary["answered"] == 4
    assert summary["p50_ms"] == 30.0 and summary["p99_ms"] == 400.0
    assert summary["cpu_ms_per_turn"] == {"rasa": 12.3}
    assert summary["errors"] == {"503": 1}


def test_components_attribute_a_sample_to_the_first_known_component_from_the_top():
    collapsed = [
        "run (sanic/app.py:1);_validate (rasa/core/actions/action.py:704);"
        "validate (jsonschema/validators.py:1120);urljoin (urllib/parse.py:9) 5",
        "run (sanic/app.py:1);publish (rasa/core/brokers/sql.py:80);do_commit "
        "(sqlalchemy/engine/default.py:3) 3",
        "run (sanic/app.py:1);parse (rasa/nlu/x.py:1);run (onnxruntime/capi/x.py:1) 1",
        "run (sanic/app.py:1);somewhere (mystery.py:4) 1",
    ]
    shares = dict(turns.components(collapsed))
    assert shares["jsonschema validation"] == 50.0
    assert shares["SQL event broker (sqlalchemy/SQLite)"] == 30.0
    assert shares["NLU pipeline"] == 10.0
    assert shares["HTTP server (sanic)"] == 10.0  # the first known component below mystery.py
    assert turns.components([]) == []


def test_cpu_totals_add_the_rasa_replicas_and_every_process() -> None:
    one = turns.cpu_totals({"rasa": 20.0, "gateway": 5.0})
    assert one == {"total": 25.0}
    two = turns.cpu_totals({"rasa 1": 10.0, "rasa 2": 12.0, "gateway": 5.0})
    assert two == {"rasa (all)": 22.0, "total": 27.0}
    assert turns.rasa_name(0, 1) == "rasa" and turns.rasa_name(1, 2) == "rasa 2"
