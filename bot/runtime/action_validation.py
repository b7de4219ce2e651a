"""Rasa checks each action server response with a JSON-schema validator built once.

Rasa 3.6's ``RemoteAction._validate_action_result`` calls ``jsonschema.validate(result,
schema)`` for every action the bot runs. ``jsonschema.validate`` first checks the *schema* against
its metaschema (``check_schema``), then builds a validator, then validates: the first two steps
redo the same work on every call and were ~40 % of Rasa's CPU per turn (docs/performance.md).

:func:`apply` replaces that one method with :func:`validate_action_result`, which does what
``jsonschema.validate`` does (the same validator class, chosen by ``validator_for``; the same
``best_match`` error; the same message suffix) with a validator compiled once from the same schema
(``RemoteAction.action_response_format_spec()``), whose schema was checked once when it was built.

Valid responses, nearly all of them, take a shortcut (:class:`EventDispatch`). The schema checks
each event against a ``oneOf`` of ~20 event schemas, and each of those pins ``event`` to its own
constant, so jsonschema tries all ~20 on every event. An event (an object whose ``event`` is a
string, as the shared item schema requires) can only match the one branch whose constant it
names; so "exactly one branch matches" is "the branch of its name matches". The shortcut checks
the response without its events, then each event against the shared item schema and the branch
of its name only. When any of that fails the response is validated again by the full validator,
which raises the error (so errors are exactly as before). The shortcut is built only when the
schema has that shape (distinct constants), else every response takes the full validator.

The patch is explicit and guarded (:mod:`bot.runtime.guarded_patch`):

* It is applied by the project's Rasa entry point (``python -m bot.runtime.rasa_server``), before
  Rasa's CLI runs; nothing else patches Rasa.
* It only replaces the method whose source it was written for: :func:`apply` hashes the source of
  Rasa's method and, when it differs from :data:`RASA_SOURCE_SHA256` (Rasa changed the method),
  leaves Rasa's own method in place and logs a warning. ``tests/runtime/test_action_validation.py``
  fails on such a Rasa upgrade, so the patch is reviewed, not silently skipped.
"""

from __future__ import annotations

from typing import Any

from jsonschema import exceptions, validators
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL

from bot.runtime.guarded_patch import GuardedPatch

# sha256 of `inspect.getsource(RemoteAction._validate_action_result)` in rasa 3.6.21, the method
# this module replaces. A different hash means Rasa changed it: review the patch, then update this.
RASA_SOURCE_SHA256 = "f8cdb4be6812396167ced74161b2ccd65c5ea676ad86d7d359d8c322d9d8dc42"

ORIGINAL = RemoteAction._validate_action_result  # Rasa's own method, kept for the tests
_MESSAGE_SUFFIX = (
    f". Failed to validate Action server response from API, "
    f"make sure your response from the Action endpoint is valid. "
    f"For more information about the format visit "
    f"{DOCS_BASE_URL}/custom-actions"
)


def compile_validator(schema: dict[str, Any]) -> Any:
    """The validator ``jsonschema.validate`` would build for ``schema``, with the schema checked
    against its metaschema here, once."""
    cls = validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


class EventDispatch:
    """Validity of a response by the schema, each event checked only against the ``oneOf``
    branch its ``event`` names (see the module docstring). :meth:`build` gives None when the
    schema is not of the shape this relies on."""

    def __init__(self, outer: Any, item: Any, branches: dict[str, Any]) -> None:
        self._outer = outer  # the response schema with its events' item schema dropped
        self._item = item  # the item schema without its oneOf
        self._branches = branches  # event name -> validator of its oneOf branch

    @classmethod
    def build(cls, schema: dict[str, Any]) -> EventDispatch | None:
        try:
            events = schema["properties"]["events"]
            item = events["items"]
            branches = item["oneOf"]
            names = [branch["properties"]["event"]["const"] for branch in branches]
        except (KeyError, TypeError):
            return None
        if events.get("type") != "array" or set(events) != {"type", "items"}:
            return None
        if item.get("properties", {}).get("event") != {"type": "string"}:
            return None
        if "event" not in item.get("required", []) or item.get("type") != "object":
            return None
        if len(set(names)) != len(names) or not all(isinstance(n, str) for n in names):
            return None
        outer = {**schema, "properties": {**schema["properties"], "events": {"type": "array"}}}
        shared = {key: value for key, value in item.items() if key != "oneOf"}
        return cls(
            compile_validator(outer),
            compile_validator(shared),
            {name: compile_validator(b) for name, b in zip(names, branches, strict=True)},
        )

    def is_valid(self, result: Any) -> bool:
        """True only when ``result`` is valid by the full schema (False: check it in full)."""
        if not self._outer.is_valid(result):
            return False
        events = result.get("events") if isinstance(result, dict) else None
        if not isinstance(events, list):
            return True  # no events to check: the outer schema was all of it
        for event in events:
            if not self._item.is_valid(event):
                return False
            branch = self._branches.get(event["event"])
            if branch is None or not branch.is_valid(event):
                return False
        return True


_validator = compile_validator(RemoteAction.action_response_format_spec())
_dispatch = EventDispatch.build(RemoteAction.action_response_format_spec())


def validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    """Rasa's check of an action server response, with the validator built once.

    Raises ``jsonschema.ValidationError`` (the same error, with the same message, as Rasa's own
    method) when ``result`` does not match the schema; returns True otherwise.
    """
    if _dispatch is not None and _dispatch.is_valid(result):
        return True
    error = exceptions.best_match(_validator.iter_errors(result))
    if error is not None:
        error.message += _MESSAGE_SUFFIX
        raise error
    return True


PATCH = GuardedPatch(
    owner=RemoteAction,
    attribute="_validate_action_result",
    replacement=validate_action_result,
    guarded=(ORIGINAL,),
    what="Rasa's RemoteAction._validate_action_result",
    module=__name__,
    fallback="action results are validated by Rasa's own, slower method",
)


def rasa_source_sha256() -> str:
    """sha256 of the source of Rasa's ``RemoteAction._validate_action_result`` as installed."""
    return PATCH.rasa_source_sha256()


def apply() -> bool:
    """Replace Rasa's method by :func:`validate_action_result`; True when it was replaced.

    Leaves Rasa's method in place (and warns) when its source is not the one this patch was
    written for.
    """
    return PATCH.apply(RASA_SOURCE_SHA256)
