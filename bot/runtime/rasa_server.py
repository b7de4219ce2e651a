"""The project's Rasa entry point: ``python -m bot.runtime.rasa_server run ...``.

The same command line as ``rasa``. First it applies the project's documented patches to Rasa,
each guarded (:mod:`bot.runtime.guarded_patch`): :mod:`bot.runtime.action_validation` (action
results checked by a validator compiled once); :mod:`bot.runtime.event_lookup` (event classes
found by name without walking the class tree each time); :mod:`bot.runtime.strict_tracker_store`
(a tracker store error fails the turn instead of starting the conversation afresh in memory);
:mod:`bot.runtime.rule_lookup` (the rules applicable to a conversation's last states
remembered); :mod:`bot.runtime.endpoint_session` (the action server called over kept-alive
connections); :mod:`bot.runtime.graph_runner` (the prediction graph run node after node instead
of through dask); :mod:`bot.runtime.debug_copies` (Rasa's debug-only deep copies skipped while
debug lines are dropped); :mod:`bot.runtime.empty_domain` (the empty domain ``Domain.is_empty``
compares with built once). Then, for ``rasa run``, the token of Rasa's HTTP API comes from `RASA_AUTH_TOKEN`
(bot.config) and is handed to Rasa's own ``--auth-token`` inside this process, so it never shows
in a process listing (``ps``, /proc/<pid>/cmdline); without a token ``rasa run`` refuses to start
rather than serve an open API. Rasa checks the token on every route of the HTTP API
(``/conversations/...``, ``/model/...``, ``/status``, ``/domain``); the REST channel
(``/webhooks/rest/webhook``) has no token, so Rasa listens on loopback (`RASA_HOST`) and only the
gateway reaches it. :func:`bot.runtime.services.rasa_server` starts Rasa this way.
"""

from __future__ import annotations

import logging
import re
import sys

from bot.config import get_settings
from bot.runtime import (
    action_validation,
    debug_copies,
    empty_domain,
    endpoint_session,
    event_lookup,
    graph_runner,
    rule_lookup,
    strict_tracker_store,
)


def rasa_argv(argv: list[str], token: str) -> list[str]:
    """``argv`` (without the program name) with ``--auth-token`` added to ``rasa run``."""
    if not argv or argv[0] != "run" or (len(argv) > 1 and argv[1] == "actions"):
        return argv
    if any(arg == "--auth-token" or arg.startswith("--auth-token=") for arg in argv):
        raise SystemExit("error: give Rasa's token through RASA_AUTH_TOKEN, not the command line")
    if not token:
        raise SystemExit("error: RASA_AUTH_TOKEN is not set; Rasa's HTTP API will not run open")
    return [*argv, f"--auth-token={token}"]  # one word: a token may start with "-"


_TOKEN_PARAM = re.compile(r"((?:^|[?&])(?:token|auth_token)=)[^&\s'\"]+")


def redact(text: str) -> str:
    """``text`` with the value of every ``token=`` query parameter replaced by ``***``."""
    return _TOKEN_PARAM.sub(r"\1***", text)


def _redact_tokens_in_logs() -> None:
    """Rasa logs the action server's URL, query string included, when a call fails: every log
    record's message is redacted before any handler sees it (a record factory, so it holds for
    every logger and handler Rasa configures later)."""
    make_record = logging.getLogRecordFactory()

    def redacting(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = redact(message), None
        return record

    logging.setLogRecordFactory(redacting)


def main() -> None:
    settings = get_settings()
    token = settings.rasa_auth_token.get_secret_value() if settings.rasa_auth_token else ""
    sys.argv = ["rasa", *rasa_argv(sys.argv[1:], token)]
    _redact_tokens_in_logs()
    action_validation.apply()
    event_lookup.apply()
    strict_tracker_store.apply()
    rule_lookup.apply()
    endpoint_session.apply()
    graph_runner.apply()
    debug_copies.apply()
    empty_domain.apply()
    from rasa.__main__ import main as rasa_main  # noqa: PLC0415 - Rasa loads slowly

    rasa_main()


if __name__ == "__main__":
    main()
