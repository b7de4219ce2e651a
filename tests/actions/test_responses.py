"""The responses catalogue: complete, well-formed and consistent with docs/policies.md."""

from __future__ import annotations

import re

import pytest
import yaml

from actions.responses import ResponsesError, get_responses, parse_responses
from bot.config import PROJECT_ROOT

RESPONSES = get_responses()
DOMAIN_INTENTS = {
    intent
    for path in sorted((PROJECT_ROOT / "domain").glob("*.yml"))
    for intent in yaml.safe_load(path.read_text()).get("intents", [])
}
BANKING_INTENTS = yaml.safe_load((PROJECT_ROOT / "domain/faq.yml").read_text())["intents"]
POLICIES = (PROJECT_ROOT / "docs/policies.md").read_text(encoding="utf-8")
FIGURE = re.compile(
    r"£\d{1,3}(?:,\d{3})*(?:\.\d+)?"  # amounts: £5, £1,000, £0.50
    r"|\d+(?:\.\d+)?%"  # percentages: 0.5%
    r"|\d+(?:-\d+)? (?:working )?(?:days|hours|minutes)"  # durations: 3-5 working days
)


def raw_responses() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "actions/responses.yml").read_text())


def test_every_banking_intent_has_an_answer_and_nothing_else_does():
    assert sorted(RESPONSES.answers) == sorted(BANKING_INTENTS)


def test_topic_titles_are_short_and_distinct():
    topics = [answer.topic for answer in RESPONSES.answers.values()]
    assert len(set(topics)) == len(topics)
    assert max(len(topic) for topic in topics) <= 32


def test_answer_buttons_ask_intents_the_domain_knows():
    for answer in RESPONSES.answers.values():
        for button in answer.message.buttons:
            assert button.payload[1:] in DOMAIN_INTENTS, (answer.intent, button)


@pytest.mark.parametrize("name", sorted(RESPONSES.answers) + sorted(RESPONSES.replies))
def test_every_figure_quoted_is_a_figure_of_the_policies(name):
    message = (
        RESPONSES.answers[name].message if name in RESPONSES.answers else RESPONSES.replies[name]
    )
    unknown = [figure for figure in FIGURE.findall(message.text) if figure not in POLICIES]
    assert unknown == [], f"{name} quotes figures not in docs/policies.md"


def test_responses_file_without_a_required_reply_is_rejected():
    raw = raw_responses()
    del raw["replies"]["did_that_help"]
    with pytest.raises(ResponsesError, match="did_that_help"):
        parse_responses(raw)


def test_button_payload_must_be_an_intent():
    raw = raw_responses()
    raw["answers"]["card_arrival"]["buttons"] = [{"title": "Help", "payload": "help"}]
    with pytest.raises(ResponsesError, match="answers.card_arrival.buttons"):
        parse_responses(raw)


def test_answer_without_topic_is_rejected():
    raw = raw_responses()
    del raw["answers"]["card_arrival"]["topic"]
    with pytest.raises(ResponsesError, match="answers.card_arrival: `topic`"):
        parse_responses(raw)
