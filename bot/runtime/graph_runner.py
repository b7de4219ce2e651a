"""Rasa's prediction graph run node after node, without dask: :class:`SequentialGraphRunner`.

Rasa 3.6 runs its prediction graph with ``DaskGraphRunner`` twice per bot turn at least (once to
parse the message: the NLU nodes; once per prediction: the policy nodes). Each ``run`` works out
the nodes the targets need again (``GraphSchema.minimal_graph_schema``, a recursive walk that
visits a shared dependency once per path to it), builds a dask graph of them, lets dask order it
(``dask.order``) and schedule it (``dask.get``, its synchronous scheduler, with its bookkeeping
per task), and first formats a debug message holding the repr of the execution context, which
holds the whole graph schema (every node's class, function and config), whether or not debug
logging is on.

:class:`SequentialGraphRunner` is a ``rasa.engine.runner.interface.GraphRunner`` that does the
same work without that overhead: the nodes are instantiated as ``DaskGraphRunner`` does
(``GraphNode.from_schema_node``, the same hooks); the order of the nodes a set of targets needs is
computed once per set of targets and input names (a depth-first topological order of the minimal
schema) and kept; ``run`` then calls each node in that order with its parents' outputs, as dask
calls them. What ``run`` returns and raises is what ``DaskGraphRunner.run`` does:

* the inputs become nodes that output ``(name, value)``; an input replaces a node of the same
  name; an input whose value is a string naming a node of the graph raises Rasa's
  ``GraphRunError`` about the clash;
* a node is called with the output of each node it needs, in the order of its ``needs``; a name
  that is neither a node nor an input is passed as the bare name (``GraphNode`` then warns and
  raises its ``GraphRunError`` about the missing input, as under dask);
* the result maps each target's output name to its output (``dict`` of the targets' outputs);
* an exception a node raises propagates unchanged, except a ``RuntimeError``, which becomes
  ``GraphRunError("Error running runner.")`` as in ``DaskGraphRunner.run``; a target that is
  neither a node nor an input is a ``KeyError``; a cycle (which a validated schema never has) is
  a ``RecursionError``, as Rasa's ``minimal_graph_schema`` gives, raised without recursing.

Installed by :func:`apply` (called by the project's Rasa entry point, ``python -m
bot.runtime.rasa_server``) as a guarded patch (:mod:`bot.runtime.guarded_patch`): Rasa's
``MessageProcessor._load_model`` creates its runner from the class named ``DaskGraphRunner`` in
``rasa.core.processor``, and :func:`apply` points that name at :class:`SequentialGraphRunner`,
only when the sources of ``MessageProcessor._load_model`` and of the ``DaskGraphRunner`` class
hash to :data:`RASA_SOURCE_SHA256` (so the runner it stands for, and the way it is chosen, are the
ones this module was written for); else it warns and Rasa keeps dask. Training
(``rasa.model_training``) keeps Rasa's ``DaskGraphRunner``.
``tests/runtime/test_graph_runner.py`` fails when Rasa's code moves, and compares parse and
prediction results with ``DaskGraphRunner`` on the trained model.
"""

from __future__ import annotations

import logging
from typing import Any

import rasa.core.processor
from rasa.engine.exceptions import GraphRunError
from rasa.engine.graph import ExecutionContext, GraphNode, GraphNodeHook, GraphSchema
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.engine.runner.interface import GraphRunner
from rasa.engine.storage.storage import ModelStorage

from bot.runtime.guarded_patch import GuardedPatch

logger = logging.getLogger(__name__)

# sha256 of the sources of rasa.core.processor.MessageProcessor._load_model and of the
# rasa.engine.runner.dask.DaskGraphRunner class (joined by a newline) in rasa 3.6.21.
RASA_SOURCE_SHA256 = "56a96a69a06578f3c7da88fc51e6e2b66830d301a38e0cd5c3b739149992f896"

_Step = tuple[str, GraphNode, tuple[str, ...]]  # node name, node, the names it needs


class SequentialGraphRunner(GraphRunner):
    """Runs the nodes a run's targets need one after the other (see the module docstring)."""

    def __init__(
        self,
        graph_schema: GraphSchema,
        model_storage: ModelStorage,
        execution_context: ExecutionContext,
        hooks: list[GraphNodeHook] | None = None,
    ) -> None:
        self._graph_schema = graph_schema
        self._instantiated_nodes: dict[str, GraphNode] = {
            name: GraphNode.from_schema_node(
                name, schema_node, model_storage, execution_context, hooks
            )
            for name, schema_node in graph_schema.nodes.items()
        }
        self._execution_context = execution_context
        self._minimal: dict[tuple[str, ...], frozenset[str]] = {}
        self._plans: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[_Step, ...]] = {}

    @classmethod
    def create(
        cls,
        graph_schema: GraphSchema,
        model_storage: ModelStorage,
        execution_context: ExecutionContext,
        hooks: list[GraphNodeHook] | None = None,
    ) -> SequentialGraphRunner:
        """Creates the runner (see ``GraphRunner.create``)."""
        return cls(graph_schema, model_storage, execution_context, hooks)

    def _needed(self, targets: tuple[str, ...]) -> frozenset[str]:
        """The nodes of the schema the targets need, themselves included (the minimal schema)."""
        known = self._minimal.get(targets)
        if known is not None:
            return known
        nodes = self._graph_schema.nodes
        needed: set[str] = set()
        pending = list(targets)
        while pending:
            name = pending.pop()
            if name in needed or name not in nodes:
                continue  # a name that is not a node: an input placeholder
            needed.add(name)
            pending.extend(nodes[name].needs.values())
        self._minimal[targets] = frozenset(needed)
        return self._minimal[targets]

    def _plan(self, targets: tuple[str, ...], inputs: tuple[str, ...]) -> tuple[_Step, ...]:
        """The nodes to run for ``targets`` when ``inputs`` are given, parents first."""
        key = (targets, inputs)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        nodes = self._graph_schema.nodes
        needed = self._needed(targets)
        order: list[_Step] = []
        done: set[str] = set(inputs)  # an input replaces a node of its name
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in done or name not in needed:
                return
            if name in visiting:  # Rasa's minimal_graph_schema recursed without end here
                raise RecursionError(f"the graph schema has a cycle through node '{name}'")
            visiting.add(name)
            needs = tuple(nodes[name].needs.values())
            for parent in needs:
                visit(parent)
            visiting.discard(name)
            done.add(name)
            order.append((name, self._instantiated_nodes[name], needs))

        for name in sorted(needed):  # every node of the minimal schema runs, as under dask
            visit(name)
        plan = tuple(order)
        self._plans[key] = plan
        return plan

    def run(
        self,
        inputs: dict[str, Any] | None = None,
        targets: list[str] | None = None,
    ) -> dict[str, Any]:
        """Runs the graph (see ``GraphRunner.run``)."""
        run_targets = tuple(targets if targets else self._graph_schema.target_names)
        inputs = inputs or {}
        needed = self._needed(run_targets)
        outputs: dict[str, Any] = {}
        for name, value in inputs.items():
            if isinstance(value, str) and (value in needed or value in outputs):
                raise GraphRunError(
                    f"Input value '{value}' clashes with a node name. Make sure "
                    f"that none of the input names passed to the `run` method are the "
                    f"same as node names in the graph schema."
                )
            outputs[name] = (name, value)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "Running graph with inputs: %s, targets: %s and %s.",
                inputs,
                targets,
                self._execution_context,
            )
        plan = self._plan(run_targets, tuple(inputs))
        try:
            for name, node, needs in plan:
                outputs[name] = node(*[outputs.get(parent, parent) for parent in needs])
            return dict(outputs[target] for target in run_targets)
        except RuntimeError as e:
            raise GraphRunError("Error running runner.") from e


PATCH = GuardedPatch(
    owner=rasa.core.processor,
    attribute="DaskGraphRunner",
    replacement=SequentialGraphRunner,
    guarded=(rasa.core.processor.MessageProcessor._load_model, DaskGraphRunner),
    what="Rasa's MessageProcessor._load_model or DaskGraphRunner",
    module=__name__,
    fallback="Rasa's prediction graph runs on dask",
)


def rasa_source_sha256() -> str:
    """sha256 of the sources of ``MessageProcessor._load_model`` and ``DaskGraphRunner``."""
    return PATCH.rasa_source_sha256()


def apply() -> bool:
    """Make Rasa's message processor create a :class:`SequentialGraphRunner`; True when it does
    (or already did). Leaves dask in place, and warns, when Rasa's code is not the expected one."""
    return PATCH.apply(RASA_SOURCE_SHA256)
