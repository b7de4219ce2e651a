"""The image's entry point (deploy/entrypoint.sh) starts each service with the command line the
containers use, here from the checkout instead of /app: real redis-server, action server, Rasa
with the trained model and gateway, on free ports, stopped at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from bot.config import PROJECT_ROOT
from bot.runtime.internal_secrets import InternalSecrets
from bot.runtime.ports import free_port
from bot.runtime.redis_server import RedisServer
from bot.runtime.services import Service, running
from tests.deploy.manifests import ENTRYPOINT


def _entrypoint_env(**settings: str) -> dict[str, str]:
    """What the image's ENV provides: the venv first on PATH, the project tree as APP_DIR."""
    venv_bin = str(Path(sys.executable).parent)
    return {"PATH": f"{venv_bin}:{os.environ['PATH']}", "APP_DIR": str(PROJECT_ROOT), **settings}


def _service(role: str, port: int, health: str, log_dir: Path, **settings: str) -> Service:
    return Service(
        name=role,
        command=["sh", str(ENTRYPOINT), role],
        health_url=f"http://127.0.0.1:{port}{health}",
        log_path=log_dir / f"{role}.log",
        env=_entrypoint_env(**settings),
    )


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _post_json(url: str, body: dict) -> list:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_rasa_refuses_to_start_without_its_event_store() -> None:
    env = {**os.environ, **_entrypoint_env(ACTION_SERVER_URL="http://127.0.0.1:1/webhook")}
    env.pop("EVENTS_DB_URL", None)
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), "rasa"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "EVENTS_DB_URL must be set" in result.stderr


@pytest.mark.model
def test_the_services_started_by_the_entrypoint_answer_a_customer_together(
    trained_model: Path, tmp_path: Path
) -> None:
    actions_port, rasa_port, gateway_port = free_port(), free_port(), free_port()
    models = tmp_path / "models"  # only the model of this checkout, not older ones beside it
    models.mkdir()
    (models / trained_model.name).symlink_to(trained_model)
    with RedisServer() as redis:
        shared = {
            "REDIS_URL": redis.url,
            "EVENTS_DB_URL": f"sqlite:///{tmp_path / 'events.db'}",
            "SUPPORT_DATA_DIR": str(tmp_path / "var"),
            **InternalSecrets.generate().env(),  # the tokens (docs/security.md)
        }
        services = [
            _service(
                "actions",
                actions_port,
                "/health",
                tmp_path,
                ACTION_SERVER_PORT=str(actions_port),
                **shared,
            ),
            _service(
                "rasa",
                rasa_port,
                "/",
                tmp_path,
                RASA_PORT=str(rasa_port),
                SUPPORT_MODELS_DIR=str(models),
                ACTION_SERVER_URL=f"http://127.0.0.1:{actions_port}/webhook",
                **shared,
            ),
            _service(
                "gateway",
                gateway_port,
                "/healthz",
                tmp_path,
                GATEWAY_PORT=str(gateway_port),
                RASA_URL=f"http://127.0.0.1:{rasa_port}",
                **shared,
            ),
        ]
        with running(services):
            replies = _post_json(
                f"http://127.0.0.1:{rasa_port}/webhooks/rest/webhook",
                {"sender": "deploy-entrypoint-test", "message": "hello"},
            )
            assert replies and all("text" in reply or "buttons" in reply for reply in replies)
            health = _get_json(f"http://127.0.0.1:{gateway_port}/healthz")
            assert health["dependencies"]["rasa"]["status"] == "up"
