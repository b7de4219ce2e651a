"""The escalation policy file: the shipped one is valid, mistakes are clear errors."""

from pathlib import Path

import pytest
import yaml

from bot.config import PROJECT_ROOT
from bot.escalation import PolicyError, load_policy

SHIPPED = PROJECT_ROOT / "escalation_policy.yml"


def _write(tmp_path: Path, changes: dict) -> Path:
    raw = yaml.safe_load(SHIPPED.read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = raw
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[leaf] = value
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_shipped_policy_loads_with_default_of_two_failed_turns():
    policy = load_policy(SHIPPED)
    assert policy.failed_turns.offer_after == 2
    names = {rule.name for rule in policy.sensitive}
    assert {
        "lost_or_stolen_card",
        "compromised_card",
        "unrecognised_payment",
        "fraud",
        "hardship",
        "formal_complaint",
        "bereavement",
    } <= names


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "nope.yml")


def test_invalid_yaml_is_a_clear_error(tmp_path):
    path = tmp_path / "policy.yml"
    path.write_text("failed_turns: [offer_after: 2\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"failed_turns.offer_after": 0}, r"failed_turns\.offer_after"),
        ({"failed_turns.handoff_after": 1}, "handoff_after .* more than offer_after"),
        ({"sensitive.0.priority": "asap"}, "priority 'asap' is not one of"),
        ({"sensitive.1.phrases": ["(unclosed"]}, "bad regular expression"),
        ({"sensitive.1.unless": ["[unclosed"]}, "bad regular expression"),
        ({"sentiment.action": "panic"}, r"sentiment\.action"),
        ({"handoff.opening_hours.timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"handoff.opening_hours.open": "25:00"}, "not a time of day"),
        ({"handoff.opening_hours.days": ["monday"]}, "unknown day"),
        ({"failed_turns.offer_afterr": 2}, "extra fields not permitted"),
        ({"sensitive.1.intents": ["lost_or_stolen_card"]}, "is in sensitive rules"),
        ({"default_priority": "critical"}, "default_priority"),
        ({"context.clarify_sensitive_rules": ["disputes"]}, "no sensitive rule 'disputes'"),
        ({"context.clarify_margin": 1.5}, r"context\.clarify_margin"),
    ],
)
def test_mistakes_name_the_field_and_refuse_to_load(tmp_path, changes, message):
    with pytest.raises(PolicyError, match=message):
        load_policy(_write(tmp_path, changes))


def test_error_message_names_the_file(tmp_path):
    path = _write(tmp_path, {"failed_turns.offer_after": -1})
    with pytest.raises(PolicyError, match=str(path)):
        load_policy(path)


def test_the_action_code_refuses_to_load_with_a_bad_policy(tmp_path):
    """The action server imports actions.escalation at start: a bad file stops it, saying why."""
    import os
    import subprocess
    import sys

    bad = _write(tmp_path, {"sensitive.0.priority": "asap"})
    result = subprocess.run(
        [sys.executable, "-c", "import actions.escalation"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "ESCALATION_POLICY": str(bad)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "PolicyError" in result.stderr and "priority 'asap' is not one of" in result.stderr


def test_priorities_must_fit_the_queues_scale(tmp_path):
    with pytest.raises(PolicyError, match="the queue's scale is 0-9"):
        load_policy(_write(tmp_path, {"priorities.urgent": 12}))


def test_the_signal_config_is_compiled_once_per_policy_and_afresh_for_a_changed_copy():
    policy = load_policy(SHIPPED)
    config = policy.signal_config()
    assert policy.signal_config() is config
    stricter = policy.copy(
        update={"explicit_request": policy.explicit_request.copy(update={"phrases": ["humano"]})}
    )
    assert [p.pattern for p in stricter.signal_config().human_patterns] == ["humano"]
    assert policy.signal_config() is config and config.human_patterns != ()
    assert "_signal_config" not in policy.dict()
