"""Rasa's check that the domain is not empty compares with an empty domain built once.

Rasa 3.6's ``Domain.is_empty`` is ``self.as_dict() == Domain.empty().as_dict()``: it builds a
whole empty ``Domain`` (``Domain.from_dict({})``) on every call, and ``MessageProcessor`` calls
it on every parsed message (``_check_for_unseen_features``): ~1.7 % of Rasa's samples
(docs/performance.md, fourth round).

:func:`apply` replaces that method with :func:`is_empty`, the same comparison against
``Domain.empty().as_dict()`` computed on first use and kept (an empty domain is built from
constants only; the kept dict is never handed out, so nothing can change it).

Guarded (:mod:`bot.runtime.guarded_patch`): applied by ``python -m bot.runtime.rasa_server``
only when the sources of ``Domain.is_empty`` and ``Domain.empty`` hash to
:data:`RASA_SOURCE_SHA256`; ``tests/runtime/test_empty_domain.py`` fails when a Rasa upgrade
changes them and compares the answers with Rasa's own method.
"""

from __future__ import annotations

from typing import Any

from rasa.shared.core.domain import Domain

from bot.runtime.guarded_patch import GuardedPatch

# sha256 of `inspect.getsource` of Domain.is_empty and Domain.empty in rasa 3.6.21.
RASA_SOURCE_SHA256 = "d22267aa3c3ccc5230d01308b20a99c067c38432c517fc60316d814c1d70101f"

ORIGINAL = Domain.is_empty
_empty: list[dict[str, Any]] = []  # Domain.empty().as_dict(), once computed


def empty_as_dict() -> dict[str, Any]:
    """``Domain.empty().as_dict()``, computed once."""
    if not _empty:
        _empty.append(Domain.empty().as_dict())
    return _empty[0]


def is_empty(self: Domain) -> bool:
    """Rasa's ``Domain.is_empty`` against the kept empty domain."""
    return self.as_dict() == empty_as_dict()


PATCH = GuardedPatch(
    owner=Domain,
    attribute="is_empty",
    replacement=is_empty,
    guarded=(ORIGINAL, Domain.empty),
    what="Rasa's Domain.is_empty",
    module=__name__,
)


def rasa_source_sha256() -> str:
    """sha256 of the sources of Rasa's ``Domain.is_empty`` and ``Domain.empty`` as installed."""
    return PATCH.rasa_source_sha256()


def apply() -> bool:
    """Replace Rasa's method by :func:`is_empty`; True when it was replaced (or already was).
    Leaves Rasa's method in place, and warns, when its source is not the expected one."""
    return PATCH.apply(RASA_SOURCE_SHA256)
