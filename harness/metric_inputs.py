"""What a computed metric receives: one frozen inputs class per metric scope.

A :class:`~harness.protocols.Metric` declares ``scope`` ("sae", "model", "generations" or
"intervention"); :data:`SCOPE_INPUTS` maps each scope to the one class its ``compute``
receives, so a suite can compute every registered metric of a scope generically
(:meth:`harness.context.CellContext.compute_metrics`), a third party's included.

Fields hold the suite's objects as they are (tensors, a ``harness.models.LoadedModel``, a
fitted learner); this module imports no heavy library, so the types of those fields are
written as ``Any`` and described in each docstring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeAlias, get_args

Scope = Literal["sae", "model", "generations", "intervention"]
SCOPES: tuple[Scope, ...] = get_args(Scope)


@dataclass(frozen=True)
class ModelInputs:
    """A model-scope metric scores one model.

    ``model``: a ``harness.models.LoadedModel`` (``.model`` the HF module, ``.tokenizer``), the
    model the suite finally scored (e.g. with a method applied); ``seed`` and ``device`` of the cell.
    """

    scope: ClassVar[Scope] = "model"
    model: Any
    seed: int = 0
    device: str = "cpu"


@dataclass(frozen=True)
class SAEInputs:
    """An sae-scope metric scores one trained (or loaded) sparse dictionary at one hook point.

    - ``sae``: the :class:`~harness.protocols.DictionaryLearner` (a ``torch.nn.Module``, eval mode);
    - ``activations``: held-out activations at ``hook_point``, a float32 tensor ``[n, d_in]`` on the
      CPU (the tokens the suite's reconstruction metrics use: BOS and padding excluded);
    - ``model``: the ``harness.models.LoadedModel`` the activations come from;
    - ``hook_point``: its name (e.g. ``blocks.1.hook_resid_post``; ``harness.models.intervene``
      splices a function of the activations in there);
    - ``token_batches``: the held-out token batches (``input_ids`` / ``attention_mask`` [B, T]) the
      activations were read from, for a metric that runs its own forward pass (e.g. a CE pass);
    - ``seed``, ``device``: of the cell.
    """

    scope: ClassVar[Scope] = "sae"
    sae: Any
    activations: Any
    model: Any
    hook_point: str
    token_batches: Sequence[Any] = ()
    seed: int = 0
    device: str = "cpu"


@dataclass(frozen=True)
class SampledAnswers:
    """K answers sampled for one question: ``texts`` (K strings), ``embeddings`` (array ``[K, d]``:
    middle-layer hidden states of each answer) and ``token_logprobs`` (K lists of the answer
    tokens' log-probs)."""

    texts: Sequence[str]
    embeddings: Any
    token_logprobs: Sequence[Sequence[float]]


@dataclass(frozen=True)
class GenerationsInputs:
    """A generations-scope metric scores a model's answers to a set of questions.

    - ``prompts``, ``answers`` (the greedy answers), ``truths`` (the true answers): one per question;
    - ``labels``: 1 where the greedy answer is wrong (a hallucination), else 0;
    - ``samples``: per question the K :class:`SampledAnswers` (empty when the suite sampled none);
    - ``scores``: detector name -> one score per question ("higher = more likely a hallucination"),
      for the detectors the suite already ran;
    - ``key``: which subset the questions are (e.g. a fact split); metrics put it on their values;
    - ``tags``: per question its split or familiarity tag (e.g. "frequent", "rare", "heldout"), or
      empty when the questions carry none (metrics that need them say so);
    - ``seed``, ``device``: of the cell.
    """

    scope: ClassVar[Scope] = "generations"
    prompts: Sequence[str]
    answers: Sequence[str]
    truths: Sequence[str]
    labels: Sequence[int]
    samples: Sequence[SampledAnswers] = ()
    scores: Mapping[str, Sequence[float]] = field(default_factory=dict)
    key: str | None = None
    tags: Sequence[str] = ()
    seed: int = 0
    device: str = "cpu"


@dataclass(frozen=True)
class InterventionInputs:
    """An intervention-scope metric scores one fitted edit of a model.

    - ``model``: the un-edited ``harness.models.LoadedModel``;
    - ``intervention``: the fitted :class:`~harness.protocols.Intervention` (``with
      intervention.apply(model): ...`` scores the edited model), None on the baseline row;
    - ``forget`` / ``retain``: the data the method was fitted on, as the suite has them (the
      unlearning suite: ``UnlearningData`` sequences with memorised / control labels);
    - ``seed``, ``device``: of the cell.
    """

    scope: ClassVar[Scope] = "intervention"
    model: Any
    intervention: Any
    forget: Any
    retain: Any
    seed: int = 0
    device: str = "cpu"


MetricInputs: TypeAlias = SAEInputs | ModelInputs | GenerationsInputs | InterventionInputs

#: The one place that says which inputs class a metric of each scope receives.
SCOPE_INPUTS: dict[Scope, type[MetricInputs]] = {
    "sae": SAEInputs,
    "model": ModelInputs,
    "generations": GenerationsInputs,
    "intervention": InterventionInputs,
}


def scope_of(inputs: Any) -> Scope:
    """The scope whose inputs class ``inputs`` is an instance of; a TypeError names the classes."""
    for scope, cls in SCOPE_INPUTS.items():
        if isinstance(inputs, cls):
            return scope
    names = ", ".join(f"{c.__name__} ({s})" for s, c in SCOPE_INPUTS.items())
    raise TypeError(f"metric inputs must be one of {names} from harness.metric_inputs; got {type(inputs).__name__}.")
