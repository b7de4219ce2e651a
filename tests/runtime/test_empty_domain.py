"""Rasa's ``Domain.is_empty`` against an empty domain built once: same answers as Rasa's own."""

from __future__ import annotations

import pytest
from rasa.shared.core.domain import Domain

from bot.config import PROJECT_ROOT
from bot.runtime import empty_domain

DOMAINS = {
    "empty": lambda: Domain.empty(),
    "from an empty dict": lambda: Domain.from_dict({}),
    "one intent": lambda: Domain.from_dict({"intents": ["greet"]}),
    "one response": lambda: Domain.from_dict({"responses": {"utter_hi": [{"text": "hi"}]}}),
    "session config only": lambda: Domain.from_dict(
        {"session_config": {"session_expiration_time": 5}}
    ),
    "the project's": lambda: Domain.load(str(PROJECT_ROOT / "domain")),
}


def test_rasas_method_is_the_one_the_patch_was_written_for() -> None:
    """Fails when a Rasa upgrade changes the method: review the patch, then update the hash."""
    assert empty_domain.rasa_source_sha256() == empty_domain.RASA_SOURCE_SHA256


@pytest.mark.parametrize("name", DOMAINS)
def test_answers_as_rasas_own_method(name: str) -> None:
    domain = DOMAINS[name]()
    for _ in range(2):  # the second time against the kept empty domain
        assert empty_domain.is_empty(domain) == empty_domain.ORIGINAL(domain)
    assert empty_domain.is_empty(Domain.empty()) is True
    assert empty_domain.is_empty(DOMAINS["the project's"]()) is False


def test_apply_replaces_rasas_method_and_is_idempotent(monkeypatch) -> None:
    monkeypatch.setattr(Domain, "is_empty", empty_domain.ORIGINAL)
    assert empty_domain.apply() is True
    assert Domain.is_empty is empty_domain.is_empty
    assert empty_domain.apply() is True
    assert Domain.empty().is_empty() and not Domain.from_dict({"intents": ["greet"]}).is_empty()
