"""`bench.escalation`: the parts of the conversation set and the wrong-answer rate."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import escalation
from bench.escalation import Conversation, Outcome, load_conversations, score, score_parts


def _routine(cid: str, answers: list[str], expect: list[str] | None, part: str = "main") -> Outcome:
    return Outcome(cid, "routine", False, answers=answers, expect_topic=expect, part=part)


def test_expect_topic_takes_one_intent_or_several():
    one = Conversation("a", "routine", False, ["hi"], expect_topic="card_arrival")
    several = Conversation("b", "routine", False, ["hi"], expect_topic=["a", "b"])
    assert one.topics == {"card_arrival"}
    assert several.topics == {"a", "b"}
    assert Conversation("c", "routine", False, ["hi"]).topics is None


def test_wrong_answer_rate_counts_conversations_and_answers_of_other_intents():
    outcomes = [
        _routine("right", ["card_arrival"], ["card_arrival"]),
        _routine("wrong", ["card_arrival", "transfer_fee_charged"], ["card_arrival"]),
        _routine("unlabelled", ["anything"], None),
    ]
    figures = score(outcomes)
    assert figures["topic_labelled"] == 2
    assert figures["wrong_answer_rate"] == 0.5
    assert figures["wrong_answers_per_answer"] == round(1 / 3, 4)
    assert outcomes[1].wrong_answers == ["transfer_fee_charged"]
    assert outcomes[2].wrong_answers == []


def test_parts_are_scored_separately_and_together():
    outcomes = [
        _routine("m", ["x"], ["x"], part="main"),
        _routine("d", ["y"], ["x"], part="dev"),
    ]
    figures = score_parts(outcomes)
    assert set(figures) == {"main", "dev", "all"}
    assert figures["main"]["wrong_answer_rate"] == 0.0
    assert figures["dev"]["wrong_answer_rate"] == 1.0
    assert figures["all"]["wrong_answer_rate"] == 0.5


def test_a_missing_part_folder_has_no_conversations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "one.yml").write_text(
        "conversations:\n  - {id: a, category: routine, expect_handoff: false, turns: [hi, bye]}\n"
    )
    monkeypatch.setitem(escalation.PARTS, "main", tmp_path)
    monkeypatch.setitem(escalation.PARTS, "dev", tmp_path / "dev")
    conversations = escalation.load_parts(["main", "dev"])
    assert [(c.id, c.part) for c in conversations] == [("a", "main")]


def test_an_id_used_in_two_parts_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    text = (
        "conversations:\n  - {id: a, category: routine, expect_handoff: false, turns: [hi, bye]}\n"
    )
    (tmp_path / "one.yml").write_text(text)
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "one.yml").write_text(text)
    monkeypatch.setitem(escalation.PARTS, "main", tmp_path)
    monkeypatch.setitem(escalation.PARTS, "dev", tmp_path / "dev")
    with pytest.raises(ValueError, match="unique"):
        escalation.load_parts(["main", "dev"])


def test_unknown_part_is_a_clear_usage_error(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        escalation.main(["--parts", "main,secret"])
    assert exit_info.value.code == 2
    assert "unknown part(s) secret" in capsys.readouterr().err


def test_labelled_topics_name_intents_that_have_answers():
    from actions.responses import get_responses

    responses = get_responses()
    for conv in load_conversations():
        for topic in conv.topics or ():
            assert responses.answer(topic) is not None, (conv.id, topic)
