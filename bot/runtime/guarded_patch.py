"""One way to patch Rasa: check that Rasa's code is the code the patch was written for, then
replace one attribute, or leave Rasa alone and warn.

Every patch the project applies to Rasa (:mod:`bot.runtime.action_validation`,
:mod:`bot.runtime.event_lookup`, :mod:`bot.runtime.rule_lookup`,
:mod:`bot.runtime.endpoint_session`, :mod:`bot.runtime.strict_tracker_store`,
:mod:`bot.runtime.graph_runner`, :mod:`bot.runtime.debug_copies`, :mod:`bot.runtime.empty_domain`)
is a :class:`GuardedPatch`: the attribute it replaces (a method,
a staticmethod, or a name in one of Rasa's modules), the replacement, and the Rasa code whose
behaviour the replacement relies on (``guarded``, often the replaced method itself). Its
``apply`` hashes the installed source of that code and replaces the attribute only when the hash
is the one the patch was written for (the patching module's ``RASA_SOURCE_SHA256``); otherwise it
logs a warning naming the module to review and leaves Rasa's own code in place. Each patching
module has a test asserting the hash, so a Rasa upgrade that changes the code fails the tests
instead of being skipped silently.

The project's Rasa entry point (``python -m bot.runtime.rasa_server``) applies the patches
before Rasa's CLI runs; nothing else patches Rasa.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from dataclasses import dataclass
from typing import Any


def source_sha256(*code: Any) -> str:
    """sha256 of the sources of ``code`` (functions, classes, modules), joined by newlines."""
    sources = [inspect.getsource(item) for item in code]
    return hashlib.sha256("\n".join(sources).encode("utf-8")).hexdigest()


def _unwrapped(value: Any) -> Any:
    return value.__func__ if isinstance(value, staticmethod | classmethod) else value


@dataclass(frozen=True)
class GuardedPatch:
    """``owner.attribute`` replaced by ``replacement`` when ``guarded`` is the expected code.

    ``owner`` is a class or a module. A staticmethod is replaced by a staticmethod. ``what`` names
    the guarded code in the warning (e.g. "Rasa's Event.resolve_by_type"), ``module`` is the
    patching module's ``__name__``, ``fallback`` says what runs instead when the patch is not
    applied (e.g. "action results are validated by Rasa's own, slower method").
    """

    owner: Any
    attribute: str
    replacement: Any
    guarded: tuple[Any, ...]
    what: str
    module: str
    fallback: str = ""

    def rasa_source_sha256(self) -> str:
        """sha256 of the installed source of the guarded code."""
        return source_sha256(*self.guarded)

    def is_applied(self) -> bool:
        """True when ``owner.attribute`` is the replacement."""
        current = inspect.getattr_static(self.owner, self.attribute, None)
        return _unwrapped(current) is self.replacement

    def apply(self, expected_sha256: str) -> bool:
        """Replace the attribute; True when it was replaced (or already was). Leaves Rasa's code
        in place, and warns, when the guarded source does not hash to ``expected_sha256``."""
        if self.is_applied():
            return True
        actual = self.rasa_source_sha256()
        if actual != expected_sha256:
            fallback = f"; {self.fallback}" if self.fallback else ""
            logging.getLogger(self.module).warning(
                "%s changed (source sha256 %s): not replacing it%s. Review %s.py for this Rasa "
                "version.",
                self.what,
                actual,
                fallback,
                self.module.replace(".", "/"),
            )
            return False
        current = inspect.getattr_static(self.owner, self.attribute)
        replacement = self.replacement
        if isinstance(current, staticmethod):
            replacement = staticmethod(replacement)
        setattr(self.owner, self.attribute, replacement)
        return True
