"""The sequential graph runner: installed only over the Rasa code it was written for, and
answering (results, errors, nodes run) as Rasa's DaskGraphRunner does, on toy graphs and on the
trained model's parse and predictions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import rasa.core.processor
from rasa.core.channels.channel import UserMessage
from rasa.engine.constants import PLACEHOLDER_MESSAGE, PLACEHOLDER_TRACKER
from rasa.engine.exceptions import GraphComponentException, GraphRunError
from rasa.engine.graph import ExecutionContext, GraphComponent, GraphSchema, SchemaNode
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.engine.runner.interface import GraphRunner
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import RasaException
from rasa.shared.nlu.constants import TEXT

from bot.config import PROJECT_ROOT
from bot.runtime import graph_runner
from bot.runtime.graph_runner import SequentialGraphRunner

CALLS: list[str] = []


class RasaRuntimeError(RasaException, RuntimeError):
    """An error GraphNode passes on as it is (a RasaException) and the runner wraps (a
    RuntimeError) in its GraphRunError."""


class Node(GraphComponent):
    """A toy component: records its call, returns its inputs, or raises as configured."""

    def __init__(self, name: str, config: dict[str, Any]) -> None:
        self._name = name
        self._config = config

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: Any,
        resource: Any,
        execution_context: ExecutionContext,
    ) -> Node:
        return cls(execution_context.node_name or "", config)

    def run(self, **inputs: Any) -> tuple[str, tuple[tuple[str, Any], ...]]:
        CALLS.append(self._name)
        error = self._config.get("raise")
        if error == "runtime":
            raise RuntimeError(f"{self._name} failed")
        if error == "rasa runtime":
            raise RasaRuntimeError(f"{self._name} failed")
        if error == "value":
            raise ValueError(f"{self._name} failed")
        return self._name, tuple(sorted(inputs.items()))


def _node(needs: dict[str, str], target: bool = False, **config: Any) -> SchemaNode:
    return SchemaNode(needs, Node, "create", "run", config, eager=True, is_target=target)


SCHEMA = GraphSchema(
    {
        "a": _node({"x": "__in__"}),
        "b": _node({"x": "a"}),
        "c": _node({"x": "a", "y": "__other__"}),
        "d": _node({"p": "b", "q": "c"}, target=True),
        "e": _node({"x": "__in__"}, target=True),
        "f": _node({}),
        "fails_at_runtime": _node({"x": "a"}, **{"raise": "runtime"}),
        "fails_rasas_way": _node({"x": "a"}, **{"raise": "rasa runtime"}),
        "fails": _node({"x": "b"}, **{"raise": "value"}),
        "needs_nowhere": _node({"x": "__nowhere__"}),
        "loop_a": _node({"x": "loop_b"}),
        "loop_b": _node({"x": "loop_a"}),
    }
)


@pytest.fixture(scope="module")
def runners(tmp_path_factory: pytest.TempPathFactory) -> tuple[GraphRunner, GraphRunner]:
    storage = LocalModelStorage(tmp_path_factory.mktemp("storage"))
    context = ExecutionContext(SCHEMA, "model")
    return (
        DaskGraphRunner.create(SCHEMA, storage, context),
        SequentialGraphRunner.create(SCHEMA, storage, context),
    )


def _outcome(run: Callable[[], Any]) -> tuple[Any, ...]:
    """What a run gave: its result, or its error (type, message, type of its cause), and the
    nodes it called."""
    CALLS.clear()
    try:
        result: Any = ("result", run())
    except Exception as error:  # noqa: BLE001 - the errors are what is compared
        result = ("error", type(error), str(error), type(error.__cause__))
    return result, sorted(CALLS)


RUNS: list[tuple[dict[str, Any] | None, list[str] | None]] = [
    ({"__in__": 1, "__other__": 2}, ["d"]),
    ({"__in__": 1, "__other__": 2}, None),  # the schema's targets
    ({"__in__": 1, "__other__": 2}, ["d", "e", "b"]),
    ({"__in__": [1], "__other__": "text"}, ["c"]),
    ({"__in__": 1}, ["b"]),  # an input the targets do not need is not asked for
    ({"__in__": 1, "__other__": 2, "b": 3}, ["d"]),  # an input replaces the node of its name
    ({"__in__": 1, "__other__": 2}, ["__in__", "d"]),  # an input as a target
    ({}, ["f"]),
    (None, ["f"]),
    ({"__in__": 1}, ["d"]),  # an input missing: GraphNode's GraphRunError
    ({"__in__": "a"}, ["b"]),  # an input value naming a node
    ({"__in__": 1, "__other__": "__in__"}, ["c"]),  # ... or an earlier input
    ({"__in__": 1}, ["fails_at_runtime"]),  # GraphNode's GraphComponentException
    ({"__in__": 1}, ["fails"]),  # the same
    ({"__in__": 1}, ["fails_rasas_way"]),  # a RuntimeError out of the node: GraphRunError
    ({}, ["needs_nowhere"]),
    ({}, ["no_such_node"]),
]


@pytest.mark.parametrize(("inputs", "targets"), RUNS)
def test_each_run_answers_and_fails_as_under_dask(
    runners: tuple[GraphRunner, GraphRunner],
    inputs: dict[str, Any] | None,
    targets: list[str] | None,
) -> None:
    dask, sequential = runners
    expected = _outcome(lambda: dask.run(inputs=inputs, targets=targets))
    assert _outcome(lambda: sequential.run(inputs=inputs, targets=targets)) == expected
    # a second run takes the kept order of nodes: the same again
    assert _outcome(lambda: sequential.run(inputs=inputs, targets=targets)) == expected


def test_the_runs_cover_results_and_each_kind_of_error(
    runners: tuple[GraphRunner, GraphRunner],
) -> None:
    dask = runners[0]
    outcomes = [_outcome(lambda i=i, t=t: dask.run(inputs=i, targets=t))[0] for i, t in RUNS]
    kinds = {outcome[1] if outcome[0] == "error" else "result" for outcome in outcomes}
    assert kinds == {"result", GraphRunError, GraphComponentException, KeyError}
    assert ("error", GraphRunError, "Error running runner.", RasaRuntimeError) in outcomes


def test_a_cycle_is_a_recursion_error_as_under_dask(
    runners: tuple[GraphRunner, GraphRunner],
) -> None:
    """Rasa's minimal_graph_schema recurses without end on a cycle (a schema Rasa validates
    never has one): the sequential runner raises the same kind of error, without recursing."""
    for runner in runners:
        CALLS.clear()
        with pytest.raises(RecursionError):
            runner.run(inputs={}, targets=["loop_a"])
        assert CALLS == []


def test_each_needed_node_runs_once_parents_first(
    runners: tuple[GraphRunner, GraphRunner],
) -> None:
    CALLS.clear()
    result = runners[1].run(inputs={"__in__": 1, "__other__": 2}, targets=["d"])
    assert sorted(CALLS) == ["a", "b", "c", "d"] and CALLS[0] == "a" and CALLS[-1] == "d"
    a = ("a", (("x", 1),))
    assert result == {"d": ("d", (("p", ("b", (("x", a),))), ("q", ("c", (("x", a), ("y", 2))))))}


# -- the install -------------------------------------------------------------------------------


def test_rasas_code_is_the_one_the_runner_was_written_for() -> None:
    """Fails when a Rasa upgrade changes how the processor makes its runner or what
    DaskGraphRunner does: review bot/runtime/graph_runner.py, then update the hash."""
    assert graph_runner.rasa_source_sha256() == graph_runner.RASA_SOURCE_SHA256


def test_the_processor_makes_its_runner_from_the_name_the_patch_replaces() -> None:
    load_model = rasa.core.processor.MessageProcessor._load_model
    assert load_model is graph_runner.PATCH.guarded[0]
    assert "DaskGraphRunner" in load_model.__code__.co_names  # looked up when a model loads


@pytest.fixture
def dask_in_processor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rasa.core.processor, "DaskGraphRunner", DaskGraphRunner)


def test_apply_makes_the_processor_use_the_sequential_runner(dask_in_processor: None) -> None:
    assert graph_runner.apply() is True
    assert rasa.core.processor.DaskGraphRunner is SequentialGraphRunner
    assert graph_runner.apply() is True  # idempotent


def test_apply_leaves_dask_in_place_when_rasa_changed(
    dask_in_processor: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(graph_runner, "RASA_SOURCE_SHA256", "0" * 64)
    assert graph_runner.apply() is False
    assert rasa.core.processor.DaskGraphRunner is DaskGraphRunner
    assert "changed" in caplog.text and "bot/runtime/graph_runner.py" in caplog.text


# -- on the trained model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_runners(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Any, GraphRunner, GraphRunner]]:
    from rasa.engine import loader  # noqa: PLC0415

    from bot.runtime.training import ensure_model  # noqa: PLC0415

    model = ensure_model(quiet=True)
    made = [
        loader.load_predict_graph_runner(
            tmp_path_factory.mktemp("model"), model, LocalModelStorage, runner
        )
        for runner in (DaskGraphRunner, SequentialGraphRunner)
    ]
    yield made[0][0], made[0][1], made[1][1]


def test_the_processor_loads_the_trained_model_with_the_sequential_runner(
    dask_in_processor: None,
) -> None:
    from bot.runtime.training import ensure_model  # noqa: PLC0415

    assert graph_runner.apply() is True
    _, _, runner = rasa.core.processor.MessageProcessor._load_model(ensure_model(quiet=True))
    assert isinstance(runner, SequentialGraphRunner)


def _texts() -> list[str]:
    """Routine questions, every 25th training example (banking, conversation, escalation, out of
    scope, vulnerable customers), and odd inputs."""
    from rasa.shared.nlu.training_data.loading import load_data  # noqa: PLC0415

    from bench.web import ROUTINE  # noqa: PLC0415

    examples = load_data(str(PROJECT_ROOT / "data" / "nlu")).intent_examples
    odd = ["", "   ", "ok", "£50 to card ending 4242 on 3 May", "a" * 600, "/greet", "??"]
    odd += ["/restart", "/session_start", "/back"]  # Rasa's default intents: default actions
    return [*ROUTINE, *(m.get(TEXT) for m in examples[::25]), *odd]


def _parse(runner: GraphRunner, metadata: Any, text: str, tracker: Any) -> dict[str, Any]:
    """What MessageProcessor._parse_message_with_graph returns, from ``runner``."""
    results = runner.run(
        inputs={PLACEHOLDER_MESSAGE: [UserMessage(text)], PLACEHOLDER_TRACKER: tracker},
        targets=[metadata.nlu_target],
    )
    return results[metadata.nlu_target][0].as_dict(only_output_properties=True)


def _predict(runner: GraphRunner, metadata: Any, tracker: Any) -> Any:
    results = runner.run(inputs={PLACEHOLDER_TRACKER: tracker}, targets=[metadata.core_target])
    return results[metadata.core_target]


def test_parses_and_predictions_on_the_trained_model_are_dasks(
    model_runners: tuple[Any, GraphRunner, GraphRunner],
) -> None:
    metadata, dask, sequential = model_runners
    domain = metadata.domain
    intents, actions = set(), set()
    for index, text in enumerate(_texts()):
        if index % 3 == 0:  # conversations of three messages
            start = [ActionExecuted(ACTION_LISTEN_NAME)]
            tracker = DialogueStateTracker.from_events(f"c{index}", start, domain.slots)
        parsed = _parse(dask, metadata, text, tracker)
        assert _parse(sequential, metadata, text, tracker) == parsed, text
        intents.add(parsed["intent"]["name"])
        tracker.update(UserUttered(text, parsed["intent"], parsed["entities"], parsed))
        for _ in range(2):  # the bot's action, then listening
            prediction = _predict(dask, metadata, tracker)
            assert _predict(sequential, metadata, tracker) == prediction, text
            assert prediction.probabilities == _predict(sequential, metadata, tracker).probabilities
            action = domain.action_names_or_texts[prediction.max_confidence_index]
            actions.add(action)
            tracker.update(ActionExecuted(action, prediction.policy_name))
            if action == ACTION_LISTEN_NAME:
                break
    assert len(intents) > 20  # many intents, the rules' action and Rasa's default actions
    assert {"action_respond", ACTION_LISTEN_NAME, "action_restart"} <= actions, actions
