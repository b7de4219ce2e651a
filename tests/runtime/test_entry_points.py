"""The project's entry points for the action server and Rasa refuse to run open, and take their
token from the settings, not the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bot.config import PROJECT_ROOT
from bot.runtime.action_server import token_matches
from bot.runtime.rasa_server import rasa_argv


def test_rasa_run_gets_the_token_of_its_http_api_added():
    assert rasa_argv(["run", "--enable-api"], "t0k") == ["run", "--enable-api", "--auth-token=t0k"]
    # one word, so a token that starts with "-" is not taken for an option
    assert rasa_argv(["run"], "-looks-like-an-option") == [
        "run",
        "--auth-token=-looks-like-an-option",
    ]


def test_other_rasa_commands_are_left_alone():
    assert rasa_argv(["train", "--fixed-model-name", "m"], "") == [
        "train",
        "--fixed-model-name",
        "m",
    ]
    assert rasa_argv(["run", "actions"], "") == ["run", "actions"]


@pytest.mark.parametrize("argv", [["run", "--auth-token", "x"], ["run", "--auth-token=x"]])
def test_a_token_on_the_command_line_is_refused(argv):
    with pytest.raises(SystemExit, match="RASA_AUTH_TOKEN"):
        rasa_argv(argv, "t0k")


def test_the_action_server_token_check_needs_the_exact_token():
    assert token_matches("s3cret", "s3cret")
    for wrong in (None, "", "s3cre", "s3cret ", "S3CRET", "é"):
        assert not token_matches(wrong, "s3cret")
    assert not token_matches("", "")


@pytest.mark.parametrize(
    "module,variable",
    [
        ("bot.runtime.rasa_server", "RASA_AUTH_TOKEN"),
        ("bot.runtime.action_server", "ACTION_SERVER_TOKEN"),
    ],
)
def test_without_a_token_the_service_will_not_start(module, variable, tmp_path):
    env = {
        **os.environ,
        "SUPPORT_DATA_DIR": str(tmp_path),
        variable: "",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    args = ["run", "--enable-api"] if module.endswith("rasa_server") else ["--port", "1"]
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert f"{variable} is not set" in done.stderr


def test_rasa_log_lines_never_carry_a_token_query_parameter() -> None:
    import logging

    from bot.runtime import rasa_server

    assert rasa_server.redact("http://127.0.0.1:5055/webhook?token=s3cr-et&x=1") == (
        "http://127.0.0.1:5055/webhook?token=***&x=1"
    )
    original = logging.getLogRecordFactory()
    try:
        rasa_server._redact_tokens_in_logs()
        record = logging.getLogger("rasa.core.actions.action").makeRecord(
            "rasa",
            logging.ERROR,
            __file__,
            1,
            "Failed to run %s",
            ("http://h/webhook?token=abc",),
            None,
        )
        assert record.getMessage() == "Failed to run http://h/webhook?token=***"
    finally:
        logging.setLogRecordFactory(original)


def test_rasa_runs_its_numeric_libraries_on_one_thread(tmp_path) -> None:
    from bot.runtime import services  # noqa: PLC0415
    from bot.runtime.internal_secrets import InternalSecrets  # noqa: PLC0415

    rasa = services.rasa_server(
        5005,
        tmp_path / "model.tar.gz",
        "http://x",
        tmp_path,
        {},
        secrets=InternalSecrets.generate(),
    )
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        assert rasa.env[variable] == "1"
    custom = services.rasa_server(
        5005,
        tmp_path / "model.tar.gz",
        "http://x",
        tmp_path,
        {"OPENBLAS_NUM_THREADS": "2"},
        secrets=InternalSecrets.generate(),
    )
    assert custom.env["OPENBLAS_NUM_THREADS"] == "2"  # a caller's environment still wins
