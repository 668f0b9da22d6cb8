"""The one table of plugin kinds: kind -> hook, base class, scaffold template.

Everything that lists kinds is derived from :data:`KINDS`: the hookspecs the plugin
manager checks, the typed registries (:class:`harness.plugins.Registries`), the method
kinds a suite can compare, ``harness plugins``, ``harness new-plugin --kind`` and the
scaffold's base classes. Adding a kind is one :class:`KindSpec` here plus its hookspec
(a ``register_<plural>(register)`` function in the module named by ``spec_module``).

Only the standard library is imported here: ``harness --help`` reads this table, and base
classes are named by import path and imported on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class KindSpec:
    """One plugin kind."""

    #: The kind's name (``harness plugins``' kind column, ``new-plugin --kind``, registry key).
    kind: str
    #: The hook plugins implement to register classes of this kind.
    hook: str
    #: ``module:QualName`` of the class every registered class must subclass.
    base: str
    #: True for methods a suite compares as rows (dictionary learners, unlearning methods, ...).
    method: bool = False
    #: Template of ``harness new-plugin``: "metric", "suite", "dictionary_learner" (a ReLU SAE
    #: that trains), or "generic" (a class of the base with an example config, abstract
    #: methods left to fill in).
    scaffold: str = "generic"
    #: Module holding the hookspec of :attr:`hook` (added to every plugin manager).
    spec_module: str = "harness.hookspecs"

    @property
    def label(self) -> str:
        """Human name used in messages, e.g. "dictionary learner"."""
        return self.kind.replace("_", " ")

    @property
    def base_name(self) -> str:
        """The base class's name, e.g. ``DictionaryLearner``."""
        return self.base.rpartition(":")[2]

    @property
    def base_module(self) -> str:
        return self.base.partition(":")[0]

    def base_class(self) -> type[Any]:
        """The base class (imported now)."""
        obj: Any = importlib.import_module(self.base_module)
        for part in self.base_name.split("."):
            obj = getattr(obj, part)
        return obj


KINDS: tuple[KindSpec, ...] = (
    KindSpec("dictionary_learner", "register_dictionary_learners", "harness.protocols:DictionaryLearner",
             method=True, scaffold="dictionary_learner"),
    KindSpec("unlearning_method", "register_unlearning_methods", "harness.protocols:UnlearningMethod", method=True),
    KindSpec("hallucination_mitigator", "register_hallucination_mitigators",
             "harness.protocols:HallucinationMitigator", method=True),
    KindSpec("metric", "register_metrics", "harness.protocols:Metric", scaffold="metric"),
    KindSpec("suite", "register_suites", "harness.protocols:Suite", scaffold="suite"),
    KindSpec("model_source", "register_models", "harness.protocols:ModelSource"),
    KindSpec("executor", "register_executors", "harness.executors.base:Executor"),
    KindSpec("dataset", "register_datasets", "harness.datasets.base:Dataset"),
)
"""Every plugin kind, in the order ``harness plugins`` lists them."""


def kinds() -> tuple[KindSpec, ...]:
    """The current table (read at call time, so a test may extend :data:`KINDS`)."""
    return KINDS


def kind_names() -> list[str]:
    return [k.kind for k in kinds()]


def method_kinds() -> tuple[str, ...]:
    """Kinds whose plugins are compared as rows by suites."""
    return tuple(k.kind for k in kinds() if k.method)


def get_kind(kind: str) -> KindSpec:
    """The spec of ``kind``; an unknown kind is an error naming the known ones."""
    for k in kinds():
        if k.kind == kind:
            return k
    from harness.errors import HarnessError, did_you_mean

    names = kind_names()
    raise HarnessError(f'Unknown plugin kind "{kind}".{did_you_mean(kind, names)} Known kinds: {", ".join(names)}.')


def hook_kinds() -> dict[str, str]:
    """hook name -> kind it fills."""
    return {k.hook: k.kind for k in kinds()}
