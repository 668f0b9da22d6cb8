"""Suite ``hallucination_dynamics``: hallucination over training checkpoints, as the SeND paper analyses Pythia's.

SeND (Mohammadzadeh et al., arXiv 2410.15460) motivates its method by the oscillation of hallucination
metrics between consecutive training checkpoints of Pythia models. This suite asks the same questions as
the ``hallucination`` suite of every checkpoint of every model given (default: each zoo size at its
recorded revisions), without fine-tuning: hallucination rate on rare and held-out facts, accuracy on
frequent facts, EigenScore of the sampled answers. Rows are checkpoints, not competitors: the board is
unranked; its summary orders each model's checkpoints by training step and reports the change between
consecutive checkpoints against what sampling error alone would give (:mod:`.dynamics`).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from harness import hookimpl
from harness_plugins.send_mitigators import HallucinationSuite


class HallucinationDynamicsSuite(HallucinationSuite):
    name = "hallucination_dynamics"
    description = (
        "The hallucination suite's questions asked of every training checkpoint of each model (no fine-tuning): "
        "hallucination rate on rare and held-out facts, accuracy on frequent facts, answer EigenScore; per model, "
        "the change between consecutive checkpoints against sampling error (SeND's checkpoint analysis)."
    )
    paper = "arXiv:2410.15460"
    method_kinds = ()
    include_baseline = True
    rank_reference = False  # checkpoints are described, not ranked
    reference_label = "checkpoint"
    metrics = ("hallucination_rate", "known_fact_accuracy", "answer_eigenscore")
    version = "1"
    default_seeds = (0,)  # greedy answers are deterministic; the EigenScore's sampling is seeded
    #: every zoo size at its final weights and at its intermediate revisions
    default_models = ("zoo:*@step92", "zoo:*@step368", "zoo:*")

    class Config(HallucinationSuite.Config):
        capability_tasks: list[str] = Field(
            default_factory=list, description="Zero-shot lm-eval tasks scored per checkpoint as capability_acc "
            "(default none: the checkpoints' task accuracy is the scaling suite's).",
        )

    def run(self, cell: Any) -> Any:
        out = super().run(cell)
        out.details["step"] = checkpoint_step(cell.load_model(), cell.model_ref.revision)
        for name in ("train_texts", "history", "outcomes", "outcome_metrics"):  # nothing is fine-tuned here
            out.details.pop(name, None)
        return out

    @classmethod
    def summarize(cls, records: list[Any], out_dir: Any) -> str | None:
        from .dynamics import summarize

        return summarize(records, out_dir)


def checkpoint_step(loaded: Any, revision: str | None) -> int | None:
    """Training step of a checkpoint: the zoo's ``zoo_meta.json`` ``step``, else a Pythia-style revision name
    (``step1000`` -> 1000), else None (unknown: ordered last)."""
    import json
    import math
    from pathlib import Path

    from harness_plugins.scaling.run import step_of

    path = getattr(loaded, "path", None)
    meta = Path(path) / "zoo_meta.json" if path else None
    if meta is not None and meta.is_file():
        step = json.loads(meta.read_text()).get("step")
        if isinstance(step, int):
            return step
    step = step_of(revision)
    return None if math.isinf(step) else int(step)


@hookimpl
def register_suites(register):
    register(HallucinationDynamicsSuite)
