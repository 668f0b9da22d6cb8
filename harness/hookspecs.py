"""The hooks a harness plugin can implement.

Each hook receives one typed ``register`` object: call it with a class to register that
class (the registry key is the class's ``name`` attribute). A plugin implements hooks
with ``@harness.hookimpl`` and is found through the ``harness`` entry-point group::

    from harness import hookimpl
    from harness.protocols import Metric

    class MyMetric(Metric):
        name = "my_metric"
        ...

    @hookimpl
    def register_metrics(register):
        register(MyMetric)

Built-in plugins under ``plugins/`` use exactly these hooks. No hook here is
``firstresult``: every plugin's registrations are collected. The registries call each hook
once through ``pm.hook`` (so pluggy's ``tryfirst`` / ``trylast`` / hook wrappers apply).

The hooks that fill a registry are listed, with their kind and base class, in the one
table :data:`harness.kinds.KINDS`; ``register_commands`` adds ``harness`` subcommands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import argparse

    from harness.datasets.base import Dataset
    from harness.executors.base import Executor
    from harness.protocols import (
        DictionaryLearner,
        HallucinationMitigator,
        Metric,
        ModelSource,
        Suite,
        UnlearningMethod,
    )
    from harness.registry import Register

hookspec = pluggy.HookspecMarker("harness")


@hookspec
def register_dictionary_learners(register: Register[DictionaryLearner]) -> None:
    """Register sparse dictionary learners (SAE architectures): subclasses of
    :class:`harness.protocols.DictionaryLearner` (and ``torch.nn.Module``)."""


@hookspec
def register_unlearning_methods(register: Register[UnlearningMethod]) -> None:
    """Register unlearning / concept-erasure methods: subclasses of
    :class:`harness.protocols.UnlearningMethod` whose ``fit`` returns an Intervention."""


@hookspec
def register_hallucination_mitigators(register: Register[HallucinationMitigator]) -> None:
    """Register hallucination mitigators (training protocols or inference-time edits):
    subclasses of :class:`harness.protocols.HallucinationMitigator`."""


@hookspec
def register_metrics(register: Register[Metric]) -> None:
    """Register metrics: subclasses of :class:`harness.protocols.Metric` declaring
    ``higher_is_better``, ``scope``, ``aggregation`` and ``unit``."""


@hookspec
def register_suites(register: Register[Suite]) -> None:
    """Register benchmark suites: subclasses of :class:`harness.protocols.Suite`, each
    declaring the method kinds it compares and the metrics it reports."""


@hookspec
def register_models(register: Register[ModelSource]) -> None:
    """Register model sources (e.g. the embedded zoo, Hugging Face): subclasses of
    :class:`harness.protocols.ModelSource`."""


@hookspec
def register_executors(register: Register[Executor]) -> None:
    """Register executors (where cells run: this machine, a Ray cluster, Slurm, ...):
    subclasses of :class:`harness.executors.base.Executor`, each with a ``Config`` whose
    fields are its spec fields and ``harness run`` options."""


@hookspec
def register_datasets(register: Register[Dataset]) -> None:
    """Register data providers: subclasses of :class:`harness.datasets.Dataset`, each declaring the
    roles it provides ("corpus", "labelled", "qa", "sequences") and opening them (``open(role)``);
    suites name them in data fields (``corpus: {dataset: my_corpus, config: {...}}``)."""


@hookspec
def register_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``harness`` subcommands (as simonw/llm's ``register_commands``).

    ``commands`` is the argparse sub-parser collection of the ``harness`` command::

        @hookimpl
        def register_commands(commands):
            p = commands.add_parser("hello", help="Say hello.")
            p.add_argument("--name", default="world")
            p.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)

    ``func(args)`` returns the exit code. A name that a built-in command (or another
    plugin) already uses is refused, naming both.
    """
