"""Rasa's own end-to-end test stories (tests/stories) pass against the trained model.

`rasa test core --e2e` classifies each story's user text with the real NLU pipeline (intent and
entities) and checks every predicted action, so this covers greeting, routine answers, the
"did that help" check, fallback, out-of-scope and every escalation path.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import PROJECT_ROOT

pytestmark = pytest.mark.model


def test_every_rasa_test_story_passes_end_to_end(trained_model: Path, tmp_path: Path) -> None:
    rasa = Path(sys.executable).with_name("rasa")
    result = subprocess.run(
        [
            str(rasa),
            "test",
            "core",
            "--e2e",
            "--stories",
            "tests/stories",
            "--model",
            str(trained_model),
            "--out",
            str(tmp_path),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "story_report.json").read_text())
    stories = report["conversation_accuracy"]
    failed = (tmp_path / "failed_test_stories.yml").read_text()
    assert stories["total"] >= 20
    assert stories["correct"] == stories["total"], failed
