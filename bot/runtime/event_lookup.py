"""Rasa finds the class of an event by its type name without rebuilding the class tree each time.

Rasa 3.6's ``Event.resolve_by_type(type_name)`` walks every subclass of ``Event``
(``rasa.shared.utils.common.all_subclasses``: recursive ``__subclasses__()`` plus
``inspect.isabstract`` on each) for every event it deserialises. Rasa deserialises each stored
tracker event on every turn (the tracker store keeps trackers serialised) and each event the
action server returns, so the walk ran thousands of times per turn: ~8 % of Rasa's CPU after the
first two fixes of issue 11 (docs/performance.md).

:func:`apply` replaces that staticmethod with :func:`resolve_by_type`, which remembers the class
found for each type name. A name that resolves to nothing is not remembered (Rasa's own method
answers it every time: default, ``None`` for the legacy ``topic``, or ``ValueError``), so an event
class defined later is still found. Event classes are defined at import time; the remembered
answer is the one Rasa's method gave.

Guarded (:mod:`bot.runtime.guarded_patch`): applied by ``python -m bot.runtime.rasa_server``
only when the source of Rasa's method hashes to :data:`RASA_SOURCE_SHA256`;
``tests/runtime/test_event_lookup.py`` fails when a Rasa upgrade changes it.
"""

from __future__ import annotations

from rasa.shared.core.events import Event

from bot.runtime.guarded_patch import GuardedPatch

# sha256 of `inspect.getsource(Event.resolve_by_type)` in rasa 3.6.21.
RASA_SOURCE_SHA256 = "b5cf570fa7f286c7059ec73d8880528d03a78b28cf4e80285a46079c0fa65968"

ORIGINAL = Event.resolve_by_type  # Rasa's own (a staticmethod: a plain function here)
_found: dict[str, type[Event]] = {}


def resolve_by_type(type_name: str, default: type[Event] | None = None) -> type[Event] | None:
    """Rasa's ``Event.resolve_by_type``, remembering each class found."""
    found = _found.get(type_name)
    if found is not None:
        return found
    resolved = ORIGINAL(type_name, default)
    if resolved is not None and resolved is not default:
        _found[type_name] = resolved
    return resolved


PATCH = GuardedPatch(
    owner=Event,
    attribute="resolve_by_type",
    replacement=resolve_by_type,
    guarded=(ORIGINAL,),
    what="Rasa's Event.resolve_by_type",
    module=__name__,
)


def rasa_source_sha256() -> str:
    """sha256 of the source of Rasa's ``Event.resolve_by_type`` as installed."""
    return PATCH.rasa_source_sha256()


def apply() -> bool:
    """Replace Rasa's method by :func:`resolve_by_type`; True when it was replaced (or already
    was). Leaves Rasa's method in place, and warns, when its source is not the expected one."""
    return PATCH.apply(RASA_SOURCE_SHA256)
