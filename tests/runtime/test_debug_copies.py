"""Rasa's debug-only deep copies: skipped only while debug lines are dropped, and in the patched
modules every use of ``copy`` is such a debug-line argument."""

from __future__ import annotations

import ast
import copy
import inspect
import logging
from collections.abc import Iterator

import pytest
import structlog
from rasa.utils.log_utils import configure_structlog

from bot.runtime import debug_copies


@pytest.fixture
def structlog_config() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}


@pytest.mark.parametrize("module", debug_copies.PATCHED_MODULES, ids=lambda m: m.__name__)
def test_every_copy_in_the_patched_modules_is_a_deepcopy_for_a_debug_line(module) -> None:
    """What makes the patch safe, read from the installed source: ``copy`` is only used as
    ``copy.deepcopy(...)`` passed as a keyword argument to ``structlogger.debug(...)``."""
    tree = ast.parse(inspect.getsource(module))
    parents = _parents(tree)
    uses = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "copy"
    ]
    assert uses, "no copy.* left: the patch is useless, remove it"
    for use in uses:
        assert use.attr == "deepcopy", ast.unparse(use)
        call = parents[use]
        assert isinstance(call, ast.Call) and call.func is use, ast.unparse(call)
        keyword = parents[call]
        assert isinstance(keyword, ast.keyword), ast.unparse(call)
        logged = parents[keyword]
        assert isinstance(logged, ast.Call), ast.unparse(logged)
        assert ast.unparse(logged.func) == "structlogger.debug", ast.unparse(logged)


def test_rasas_modules_are_the_ones_the_patch_was_written_for() -> None:
    """Fails when a Rasa upgrade changes either module: review the patch, then update the hash."""
    assert debug_copies.rasa_source_sha256() == debug_copies.RASA_SOURCE_SHA256


@pytest.mark.usefixtures("structlog_config")
def test_copies_are_skipped_only_while_rasas_structlog_drops_debug_lines() -> None:
    value = {"events": [{"event": "user", "text": "hi"}]}
    configure_structlog(logging.INFO)
    assert debug_copies.debug_dropped()
    assert debug_copies.deepcopy(value) is value
    for level in (logging.DEBUG, logging.NOTSET):
        configure_structlog(level)
        assert not debug_copies.debug_dropped()
        copied = debug_copies.deepcopy(value)
        assert copied == value and copied is not value
        assert copied["events"][0] is not value["events"][0]
    structlog.reset_defaults()  # not a filtering logger: copies as before
    assert not debug_copies.debug_dropped()
    assert debug_copies.deepcopy(value) is not value


def test_the_replacement_is_the_copy_module_in_everything_else() -> None:
    assert debug_copies.DEBUG_COPY.copy is copy.copy
    assert debug_copies.DEBUG_COPY.Error is copy.Error
    assert debug_copies.DEBUG_COPY.deepcopy is debug_copies.deepcopy


def test_apply_replaces_copy_in_both_modules_and_is_idempotent(monkeypatch) -> None:
    for module in debug_copies.PATCHED_MODULES:
        monkeypatch.setattr(module, "copy", copy)
    assert debug_copies.apply() is True
    assert all(m.copy is debug_copies.DEBUG_COPY for m in debug_copies.PATCHED_MODULES)
    assert debug_copies.apply() is True


def test_apply_leaves_rasa_alone_when_the_source_moved(monkeypatch, caplog) -> None:
    for module in debug_copies.PATCHED_MODULES:
        monkeypatch.setattr(module, "copy", copy)
    monkeypatch.setattr(debug_copies, "RASA_SOURCE_SHA256", "0" * 64)
    with caplog.at_level(logging.WARNING):
        assert debug_copies.apply() is False
    assert all(m.copy is copy for m in debug_copies.PATCHED_MODULES)
    assert "debug_copies.py" in caplog.text
