"""The one way the project patches Rasa: replace only the code it was written for, else warn."""

from __future__ import annotations

import hashlib
import inspect
import types

import pytest

from bot.runtime.guarded_patch import GuardedPatch, source_sha256


class Library:
    """Stands in for a Rasa class."""

    def method(self) -> str:
        return "library"

    @staticmethod
    def helper(x: int) -> int:
        return x + 1


def faster_method(self: Library) -> str:
    return "patched"


def faster_helper(x: int) -> int:
    return x + 1


def _patch(owner: object, attribute: str, replacement: object) -> GuardedPatch:
    return GuardedPatch(
        owner=owner,
        attribute=attribute,
        replacement=replacement,
        guarded=(Library.method, Library.helper),
        what="Library's method",
        module="bot.runtime.some_patch",
        fallback="the slow way runs",
    )


@pytest.fixture(autouse=True)
def _fresh_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Library, "method", Library.__dict__["method"])
    monkeypatch.setattr(Library, "helper", Library.__dict__["helper"])


def test_the_hash_is_over_the_sources_joined_by_newlines() -> None:
    sources = inspect.getsource(Library.method) + "\n" + inspect.getsource(Library.helper)
    assert (
        source_sha256(Library.method, Library.helper)
        == hashlib.sha256(sources.encode()).hexdigest()
    )
    assert _patch(Library, "method", faster_method).rasa_source_sha256() == source_sha256(
        Library.method, Library.helper
    )


def test_a_method_is_replaced_when_the_source_is_the_expected_one_and_only_once() -> None:
    patch = _patch(Library, "method", faster_method)
    assert not patch.is_applied()
    assert patch.apply(patch.rasa_source_sha256()) is True
    assert Library().method() == "patched" and patch.is_applied()
    assert patch.apply("not even compared once applied") is True


def test_a_staticmethod_stays_a_staticmethod() -> None:
    patch = _patch(Library, "helper", faster_helper)
    assert patch.apply(patch.rasa_source_sha256()) is True
    assert isinstance(Library.__dict__["helper"], staticmethod)
    assert Library().helper(1) == 2 and Library.helper is faster_helper


def test_a_name_in_a_module_is_replaced() -> None:
    module = types.ModuleType("rasa_like")
    module.Runner = Library  # type: ignore[attr-defined]
    patch = _patch(module, "Runner", dict)
    assert patch.apply(patch.rasa_source_sha256()) is True
    assert module.Runner is dict  # type: ignore[attr-defined]


def test_changed_code_is_left_alone_with_a_warning_naming_what_to_review(
    caplog: pytest.LogCaptureFixture,
) -> None:
    patch = _patch(Library, "method", faster_method)
    assert patch.apply("0" * 64) is False
    assert Library().method() == "library" and not patch.is_applied()
    assert "Library's method changed" in caplog.text
    assert patch.rasa_source_sha256() in caplog.text
    assert "the slow way runs" in caplog.text
    assert "bot/runtime/some_patch.py" in caplog.text
    assert caplog.records[0].name == "bot.runtime.some_patch"
