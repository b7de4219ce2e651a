"""Rasa's deep copies made only for its debug log lines are skipped while debug logging is off.

Rasa 3.6's ``MessageProcessor`` (``rasa.core.processor``) and ``RulePolicy``
(``rasa.core.policies.rule_policy``) pass ``copy.deepcopy(...)`` of the turn's events, parse
data, slot values and rule states as fields of ``structlogger.debug(...)`` lines. Python
evaluates the arguments before structlog drops the line, so every turn deep-copied its events
for nothing when the log level is INFO (the default): 1.5-3 % of Rasa's samples
(docs/performance.md, fourth round).

:func:`apply` replaces the name ``copy`` in those two modules by :data:`DEBUG_COPY`, which is the
``copy`` module in everything but ``deepcopy``: that returns its argument itself while Rasa's
structlog configuration drops debug lines (its bound logger's ``debug`` is structlog's no-op,
:func:`debug_dropped`), and deep-copies as before otherwise (``rasa run --debug``, or any other
configuration). In these modules every use of ``copy`` is such a debug-line argument, so nothing
else changes: ``tests/runtime/test_debug_copies.py`` checks that on the installed source (every
``copy.<name>`` in them is a ``copy.deepcopy(...)`` keyword argument of a
``structlogger.debug(...)`` call).

Guarded (:mod:`bot.runtime.guarded_patch`): applied by ``python -m bot.runtime.rasa_server``
only when the sources of the two modules hash to :data:`RASA_SOURCE_SHA256`; the test fails when
a Rasa upgrade changes either.
"""

from __future__ import annotations

import copy
import logging
import types
from typing import Any

import rasa.core.policies.rule_policy as rule_policy
import rasa.core.processor as processor
import structlog

from bot.runtime.guarded_patch import GuardedPatch, source_sha256

# sha256 of `inspect.getsource` of rasa.core.processor and rasa.core.policies.rule_policy
# (joined by a newline) in rasa 3.6.21.
RASA_SOURCE_SHA256 = "97c8991f62bb33121d6d39fc9287d5bd106133d45ee6154ea6179af9b861c0a8"

PATCHED_MODULES = (processor, rule_policy)
# structlog's filtering loggers share one no-op for every level below theirs.
_DROPPED_DEBUG = structlog.make_filtering_bound_logger(logging.CRITICAL).debug


def debug_dropped() -> bool:
    """True when structlog's configured bound logger drops debug lines (its ``debug`` is the
    no-op of structlog's filtering loggers above DEBUG), as Rasa configures it at INFO."""
    wrapper = structlog.get_config().get("wrapper_class")
    return getattr(wrapper, "debug", None) is _DROPPED_DEBUG


def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """``copy.deepcopy(value, memo)``, or ``value`` itself while debug lines are dropped."""
    if debug_dropped():
        return value
    return copy.deepcopy(value, memo)


class _DebugCopy(types.ModuleType):
    """The ``copy`` module with :func:`deepcopy` in place of its own."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


DEBUG_COPY = _DebugCopy("copy", "The copy module; deepcopy skipped while debug lines are dropped")
DEBUG_COPY.deepcopy = deepcopy  # type: ignore[attr-defined]

PATCHES = tuple(
    GuardedPatch(
        owner=module,
        attribute="copy",
        replacement=DEBUG_COPY,
        guarded=PATCHED_MODULES,
        what="Rasa's rasa.core.processor and rasa.core.policies.rule_policy",
        module=__name__,
        fallback="debug-only deep copies are made on every turn",
    )
    for module in PATCHED_MODULES
)


def rasa_source_sha256() -> str:
    """sha256 of the installed sources of the two patched modules."""
    return source_sha256(*PATCHED_MODULES)


def apply() -> bool:
    """Replace ``copy`` in both modules; True when it was replaced (or already was). Leaves
    Rasa's modules alone, and warns, when their sources are not the expected ones."""
    return all([patch.apply(RASA_SOURCE_SHA256) for patch in PATCHES])
