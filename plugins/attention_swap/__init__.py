"""Attention-pattern swap (capability ceilings, arXiv 2510.21866): run model A with the
post-softmax attention patterns of model B at chosen layers / heads, keeping A's values and
output weights. ``AttentionSwap`` (in :mod:`.swap`, imported lazily) is a
:class:`harness.protocols.Intervention` usable on any two loaded models with the same
tokeniser and head count; this plugin registers the metric ``attention_swap_acc`` that the
``scaling`` suite reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness import hookimpl
from harness.protocols import ReportedMetric
from harness.results import MetricValue

__all__ = ["AttentionSwap", "AttentionSwapAccuracy", "SwapLayoutError", "check_swap_compatible"]


class AttentionSwapAccuracy(ReportedMetric):
    """Reported from the scaling suite's lm-eval runs under the swap (:meth:`report`)."""

    name = "attention_swap_acc"
    description = (
        "lm-eval accuracy of a model whose attention patterns are replaced by another model's "
        "(key = task@layers, e.g. zoo_arithmetic@L0 or @all); compare with the unswapped accuracy."
    )
    paper = "arXiv:2510.21866"
    higher_is_better = True
    scope = "intervention"
    unit = "accuracy"

    def report(self, eval_result: Any, tasks: Sequence[str], *, suffix: str = "") -> list[MetricValue]:
        """One value per task of ``eval_result`` (an EvalResult under the swap); keys ``<task><suffix>``."""
        result = eval_result
        out = []
        for task in tasks:
            r = result.tasks[task]
            if r.get("acc") is None:
                raise ValueError(f'attention_swap_acc: task "{task}" reported no "acc" (it has {sorted(r.metrics)}).')
            out.append(self.value(r.get("acc"), key=f"{task}{suffix}", stderr=r.get("acc_stderr"), n=r.n_samples))
        return out


def __getattr__(name: str) -> Any:  # the torch-using code loads on first use
    if name in ("AttentionSwap", "SwapLayoutError", "check_swap_compatible", "head_layout"):
        from . import swap

        return getattr(swap, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def register_metrics(register):
    register(AttentionSwapAccuracy)
