"""The patched lookup of Rasa's event classes by type name: it replaces exactly the Rasa method it
was written for and answers every name as Rasa's own does."""

from __future__ import annotations

import pytest
import rasa.shared.utils.common
from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered

from bot.runtime import event_lookup

TYPE_NAMES = sorted(
    {cls.type_name for cls in rasa.shared.utils.common.all_subclasses(Event)} - {None}
)


def outcome(function, *args):
    try:
        return ("class", function(*args))
    except ValueError as error:
        return ("error", str(error))


def test_rasa_has_the_event_types_this_test_relies_on():
    assert {"user", "bot", "action", "slot", "session_started"} <= set(TYPE_NAMES)


@pytest.mark.parametrize("name", TYPE_NAMES + ["topic", "no_such_event"])
def test_every_type_name_resolves_as_with_rasas_own_method(name):
    for _ in range(2):  # the second time from what was remembered
        assert outcome(event_lookup.resolve_by_type, name) == outcome(event_lookup.ORIGINAL, name)
        assert outcome(event_lookup.resolve_by_type, name, SlotSet) == outcome(
            event_lookup.ORIGINAL, name, SlotSet
        )


def test_unknown_names_are_not_remembered_so_a_later_event_class_is_found():
    name = "turncost_test_event"
    assert event_lookup.resolve_by_type(name, ActionExecuted) is ActionExecuted
    with pytest.raises(ValueError):
        event_lookup.resolve_by_type(name)

    class LateEvent(UserUttered):
        type_name = name

    assert event_lookup.resolve_by_type(name) is LateEvent


def test_rasas_method_is_the_one_the_patch_was_written_for():
    """Fails when a Rasa upgrade changes the method: review the patch, then update the hash."""
    assert event_lookup.rasa_source_sha256() == event_lookup.RASA_SOURCE_SHA256


def test_apply_replaces_rasas_method_for_deserialisation_and_is_idempotent(monkeypatch):
    monkeypatch.setattr(Event, "resolve_by_type", staticmethod(event_lookup.ORIGINAL))
    assert event_lookup.apply() is True
    assert Event.resolve_by_type is event_lookup.resolve_by_type
    assert event_lookup.apply() is True
    event = Event.from_parameters({"event": "slot", "name": "topic", "value": "cards"})
    assert event == SlotSet("topic", "cards")


def test_apply_leaves_a_changed_rasa_method_alone(monkeypatch, caplog):
    monkeypatch.setattr(Event, "resolve_by_type", staticmethod(event_lookup.ORIGINAL))
    monkeypatch.setattr(event_lookup, "RASA_SOURCE_SHA256", "0" * 64)
    assert event_lookup.apply() is False
    assert Event.resolve_by_type is event_lookup.ORIGINAL
    assert "changed" in caplog.text
