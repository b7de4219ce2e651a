"""endpoints.yml sends Rasa's events to the SQL database named by EVENTS_DB_URL and calls the
action server with its token."""

from __future__ import annotations

from rasa.utils.endpoints import read_endpoint_config

from bot.config import PROJECT_ROOT


def test_endpoints_yml_expands_the_event_database_and_action_server_url_and_token(monkeypatch):
    monkeypatch.setenv("EVENTS_DB_URL", "sqlite:////tmp/analytics-events.db")
    monkeypatch.setenv("ACTION_SERVER_URL", "http://127.0.0.1:5999/webhook")
    monkeypatch.setenv("ACTION_SERVER_TOKEN", "action-token")
    endpoints = str(PROJECT_ROOT / "endpoints.yml")
    broker = read_endpoint_config(endpoints, "event_broker")
    assert broker.type == "SQL"
    assert broker.url == "sqlite:////tmp/analytics-events.db"
    action_endpoint = read_endpoint_config(endpoints, "action_endpoint")
    assert action_endpoint.url == "http://127.0.0.1:5999/webhook"
    assert action_endpoint.token == "action-token"  # sent as ?token= on every call
