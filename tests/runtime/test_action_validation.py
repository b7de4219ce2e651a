"""The patched validation of action server responses: it replaces exactly the Rasa method it was
written for, and it accepts and rejects the same responses, with the same errors, as Rasa's own."""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction
from rasa.utils.endpoints import EndpointConfig
from rasa_sdk.events import (
    ActionExecuted,
    ActiveLoop,
    AllSlotsReset,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    FollowupAction,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUttered,
)

from bot.runtime import action_validation

VALID: list[dict[str, Any]] = [
    {},
    {"events": [], "responses": []},
    {
        "events": [SlotSet("handoff_reason", "explicit"), FollowupAction("action_listen")],
        "responses": [{"text": "One moment.", "buttons": [{"title": "Yes", "payload": "/affirm"}]}],
    },
    {
        "events": [
            ActionExecuted("action_listen"),
            UserUttered("hello", {"intent": {"name": "greet", "confidence": 0.9}}),
            BotUttered("hi", metadata={"reply": "greet"}),
            ConversationPaused(),
            ConversationResumed(),
            ActiveLoop(None),
            AllSlotsReset(),
            Restarted(),
            SessionStarted(),
        ],
        "responses": [{"response": "utter_greet"}, {"custom": {"kind": "card"}}],
    },
    {"events": [{"event": "slot", "name": "x", "value": None, "timestamp": None}]},
]

INVALID: list[Any] = [
    [],
    "text",
    None,
    {"events": {}},
    {"events": [{}]},
    {"events": [{"event": "no_such_event"}]},
    {"events": [{"event": "slot"}]},
    {"events": [{"event": "slot", "name": 3}]},
    {"events": [{"event": "bot", "text": "x", "timestamp": "yesterday"}]},
    {"events": [{"event": "slot", "name": "x", "timestamp": "now"}]},
    {"events": [SlotSet("a", 1), "not an event"]},
    {"responses": "text"},
    {"responses": ["text"]},
    {"events": [], "responses": [1, 2]},
    {"events": [{"event": 3}]},
    {"events": [None]},
    {"events": [{"event": "user", "parse_data": {"intent": {"name": 3}}}]},
    {"events": [{"event": "entities"}]},
    {"events": [SlotSet("a", 1), {"event": "action", "hide_rule_turn": "yes"}]},
    {"events": [{"event": "slot", "name": "x", "value": 1, "metadata": []}]},
]


ACTION = RemoteAction("action_respond", EndpointConfig(url="http://127.0.0.1:9/webhook"))


def outcome(method: Any, result: Any) -> tuple[str, ...]:
    try:
        assert method(ACTION, result) is True
        return ("valid",)
    except jsonschema.ValidationError as error:
        return ("invalid", error.message, str(list(error.path)), str(error.validator))


@pytest.mark.parametrize("result", VALID + INVALID)
def test_the_compiled_validator_accepts_and_rejects_as_rasas_own(result: Any) -> None:
    expected = outcome(action_validation.ORIGINAL, result)
    assert outcome(action_validation.validate_action_result, result) == expected
    assert expected[0] == ("valid" if result in VALID else "invalid")


def test_rasas_method_is_the_one_the_patch_was_written_for() -> None:
    """Fails when a Rasa upgrade changes the method: review the patch, then update the hash."""
    assert action_validation.rasa_source_sha256() == action_validation.RASA_SOURCE_SHA256


def test_rasas_method_validates_with_jsonschema_validate_against_the_response_schema() -> None:
    """What the patch relies on: Rasa calls ``jsonschema.validate(result,
    self.action_response_format_spec())``, the schema the compiled validator is built from."""
    source = textwrap.dedent(inspect.getsource(action_validation.ORIGINAL))
    calls = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)]
    validate_calls = [c for c in calls if isinstance(c.func, ast.Name) and c.func.id == "validate"]
    assert len(validate_calls) == 1
    (call,) = validate_calls
    assert ast.unparse(call) == "validate(result, self.action_response_format_spec())"
    assert "from jsonschema import validate" in source
    assert inspect.isfunction(inspect.getattr_static(RemoteAction, "_validate_action_result"))
    spec = inspect.getattr_static(RemoteAction, "action_response_format_spec")
    assert isinstance(spec, staticmethod)


def test_the_validator_is_compiled_once_from_a_schema_checked_once(monkeypatch) -> None:
    checked = []
    original_check = jsonschema.Draft202012Validator.check_schema
    monkeypatch.setattr(
        jsonschema.Draft202012Validator,
        "check_schema",
        classmethod(lambda cls, schema: checked.append(schema) or original_check(schema)),
    )
    for result in VALID:
        action_validation.validate_action_result(ACTION, result)
    assert checked == []
    validator = action_validation.compile_validator(RemoteAction.action_response_format_spec())
    assert checked == [RemoteAction.action_response_format_spec()]
    assert validator.is_valid(VALID[2]) and not validator.is_valid(INVALID[3])


def test_a_schema_that_is_itself_invalid_is_refused_when_compiled() -> None:
    with pytest.raises(jsonschema.SchemaError):
        action_validation.compile_validator({"type": "no such type"})


def test_apply_replaces_rasas_method_and_is_idempotent(monkeypatch) -> None:
    monkeypatch.setattr(RemoteAction, "_validate_action_result", action_validation.ORIGINAL)
    assert action_validation.apply() is True
    assert RemoteAction._validate_action_result is action_validation.validate_action_result
    assert action_validation.apply() is True
    assert RemoteAction._validate_action_result is action_validation.validate_action_result


def test_apply_leaves_a_changed_rasa_method_alone(monkeypatch, caplog) -> None:
    monkeypatch.setattr(RemoteAction, "_validate_action_result", action_validation.ORIGINAL)
    monkeypatch.setattr(action_validation, "RASA_SOURCE_SHA256", "0" * 64)
    assert action_validation.apply() is False
    assert RemoteAction._validate_action_result is action_validation.ORIGINAL
    assert "changed" in caplog.text


@pytest.mark.parametrize("result", VALID + INVALID)
def test_the_event_dispatch_shortcut_says_valid_only_when_the_full_schema_does(result: Any) -> None:
    dispatch = action_validation.EventDispatch.build(RemoteAction.action_response_format_spec())
    assert dispatch is not None  # Rasa's schema has the shape the shortcut relies on
    full = jsonschema.Draft202012Validator(RemoteAction.action_response_format_spec())
    assert dispatch.is_valid(result) == full.is_valid(result)


def test_every_branch_of_rasas_event_schema_is_reached_by_its_event_name() -> None:
    """Each oneOf branch pins `event` to a distinct constant: an event of every type Rasa knows
    (with the fields its branch requires) is valid through the shortcut."""
    items = RemoteAction.action_response_format_spec()["properties"]["events"]["items"]
    dispatch = action_validation.EventDispatch.build(RemoteAction.action_response_format_spec())
    required = {"slot": {"name": "x", "value": 1}, "entities": {"entities": []}}
    for branch in items["oneOf"]:
        name = branch["properties"]["event"]["const"]
        event = {"event": name, **required.get(name, {})}
        assert dispatch.is_valid({"events": [event]}), name


def test_no_shortcut_for_a_schema_whose_event_constants_repeat() -> None:
    schema = RemoteAction.action_response_format_spec()
    items = schema["properties"]["events"]["items"]
    repeated = {**items, "oneOf": [*items["oneOf"], items["oneOf"][0]]}
    changed = {
        **schema,
        "properties": {**schema["properties"], "events": {"type": "array", "items": repeated}},
    }
    assert action_validation.EventDispatch.build(changed) is None
    assert action_validation.EventDispatch.build({"type": "object"}) is None
