"""The contracts plugins implement: four method kinds plus Suite and ModelSource.

Every plugin class has a unique ``name`` (its registry key, written once), a one-line
``description`` and a pydantic ``Config`` (``extra="forbid"``, every field described).
Heavy libraries (torch, transformers) are never imported here: a learner implements
this ABC *and* ``torch.nn.Module`` in its own module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from harness.config import PluginConfig, validate_config
from harness.metric_inputs import MetricInputs, Scope
from harness.results import MetricValue, SuiteOutput

if TYPE_CHECKING:  # pragma: no cover
    from harness.context import CellContext
    from harness.results import RunRecord
    from harness.validation import ModelShape

#: A plugin kind: one of the kinds of the table :data:`harness.kinds.KINDS`.
Kind = str


class Plugin(ABC):
    """Common base: name, description, config and citation of one plugin class."""

    name: ClassVar[str]
    kind: ClassVar[Kind]
    description: ClassVar[str] = ""
    #: arXiv id or other citation key of the paper the method comes from, if any.
    paper: ClassVar[str | None] = None
    Config: ClassVar[type[PluginConfig]] = PluginConfig

    def __init__(self, config: PluginConfig | Mapping[str, Any] | None = None) -> None:
        self.config = self.parse_config(config)

    @classmethod
    def parse_config(cls, data: PluginConfig | Mapping[str, Any] | None, at: str | None = None) -> PluginConfig:
        """Validate ``data`` against ``cls.Config``; errors name the plugin, ``at`` (where the
        config was written, e.g. ``methods[0].config``) and the field path."""
        if isinstance(data, cls.Config):
            return data
        where = f'config of {cls.kind.replace("_", " ")} "{cls.name}"' + (f" ({at})" if at else "")
        return validate_config(cls.Config, data or {}, where=where)

    @classmethod
    def check(cls, config: PluginConfig, shape: ModelShape) -> list[str]:
        """Constraints of a validated ``config`` that depend on the model (plan time, no weights).

        Return one string per problem, starting with the field and naming the allowed range
        and the fix (``"k: 100000 is more than d_sae = 256 ...; allowed at most 256. Fix: ..."``);
        the default has none. Called for every planned (plugin, config, model) before any
        cell runs, and by ``harness train-sae``; a dictionary learner receives ``shape.at(hook)``
        and reads its input width as ``shape.d_in``. Helpers: :mod:`harness.validation`.
        """
        return []


# --------------------------------------------------------------------------- methods
class DictionaryLearner(Plugin):
    """A sparse dictionary (SAE) over activations of width ``d_in``.

    Implementations also subclass ``torch.nn.Module``. Parameter names follow SAELens
    where they exist (``W_enc`` [d_in, d_sae], ``b_enc``, ``W_dec`` [d_sae, d_in], ``b_dec``);
    ``save``/``load`` use ``cfg.json`` + ``*.safetensors``.
    """

    kind: ClassVar[Kind] = "dictionary_learner"
    #: The config field of a penalty that sets the learner's sparsity (larger = sparser), for learners whose
    #: sparsity is not a ``k``: the sae suite retrains such a row at multiples of it to place the row on its
    #: L0 curve (``penalty_factors``). None: no such field.
    sparsity_field: ClassVar[str | None] = None

    @classmethod
    @abstractmethod
    def create(cls, d_in: int, config: PluginConfig, *, seed: int) -> DictionaryLearner:
        """A freshly initialised learner for inputs of width ``d_in``."""

    @abstractmethod
    def encode(self, x: Any) -> Any:
        """Latent activations ``f`` [..., d_sae] for inputs ``x`` [..., d_in]."""

    @abstractmethod
    def decode(self, f: Any) -> Any:
        """Reconstruction [..., d_in] from latents ``f``."""

    @abstractmethod
    def loss(self, x: Any, step: int, total_steps: int) -> tuple[Any, dict[str, float]]:
        """Training loss for a batch and a dict of scalars to log (e.g. mse, l0)."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write ``cfg.json`` and ``*.safetensors`` into ``directory``."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> DictionaryLearner:
        """Read what :meth:`save` wrote (safetensors only)."""


class LearnerSpec:
    """A dictionary learner chosen for a cell: its class and validated config, no weights yet.

    Suites receive this as ``cell.method`` (a learner needs its input width to exist);
    ``spec.create(d_in, seed=...)`` builds a trainable learner.
    """

    kind: ClassVar[Kind] = "dictionary_learner"

    def __init__(self, cls: type[DictionaryLearner], config: PluginConfig) -> None:
        self.cls = cls
        self.config = config

    @property
    def name(self) -> str:
        return self.cls.name

    def create(self, d_in: int, *, seed: int) -> DictionaryLearner:
        """A fresh learner, checked against the contract on a probe batch (shapes and dtypes)."""
        from harness.sae.contract import check_learner

        learner = self.cls.create(d_in, self.config, seed=seed)
        check_learner(learner, d_in, self.cls.name)
        return learner

    def __repr__(self) -> str:
        return f"LearnerSpec({self.cls.name}, {self.config!r})"


class Intervention(ABC):
    """An edit of a model that can be applied and removed (hooks or weight edits).

    ``id`` must be stable for identical edits: caches (e.g. lm-eval results) key on it.
    """

    id: str

    @abstractmethod
    def apply(self, model: Any) -> AbstractContextManager[Any]:
        """Context manager: inside it the model is edited; on exit it is restored."""


class UnlearningMethod(Plugin):
    """Removes a concept or memorised content: returns an :class:`Intervention`."""

    kind: ClassVar[Kind] = "unlearning_method"

    @abstractmethod
    def fit(self, model: Any, forget: Any, retain: Any, *, seed: int) -> Intervention:
        """Fit the erasure on ``forget`` (and ``retain``) data of ``model``."""


class HallucinationMitigator(Plugin):
    """A training protocol or inference-time intervention that reduces hallucination."""

    kind: ClassVar[Kind] = "hallucination_mitigator"

    @abstractmethod
    def apply(self, model: Any, data: Any, *, seed: int) -> Any:
        """Return the mitigated model (trained copy, or the model with an intervention)."""


# --------------------------------------------------------------------------- metrics
class Metric(Plugin):
    """A computed score with a declared direction; leaderboards sort only from these declarations.

    ``compute(inputs)`` receives the inputs class of the metric's scope
    (:data:`harness.metric_inputs.SCOPE_INPUTS`: ``SAEInputs``, ``ModelInputs``,
    ``GenerationsInputs`` or ``InterventionInputs``), so a suite can compute every registered
    metric of its scope generically (:meth:`harness.context.CellContext.compute_metrics`).
    A number the suite produces itself in a shared pass is a :class:`ReportedMetric` instead.
    """

    kind: ClassVar[Kind] = "metric"
    higher_is_better: ClassVar[bool]
    #: What it scores: an SAE, a model, generations, or an intervention (picks the inputs class).
    scope: ClassVar[Scope]
    #: How values over seeds / samples combine into a leaderboard cell.
    aggregation: ClassVar[Literal["mean", "median"]] = "mean"
    unit: ClassVar[str] = ""
    #: Chance level, when one exists (leaderboards show a normalised score next to it).
    chance: ClassVar[float | None] = None
    #: A descriptive quantity, not a score (e.g. effective features F, L0, a timing): shown on
    #: boards, never ranked, never in win rates; its direction may still be declared for display.
    descriptive: ClassVar[bool] = False
    #: An expensive extra a suite adds only when its ``metrics.include`` names it (not by default).
    opt_in: ClassVar[bool] = False

    @abstractmethod
    def compute(self, inputs: MetricInputs) -> float | MetricValue | list[MetricValue]:
        """Score ``inputs`` (an instance of ``SCOPE_INPUTS[self.scope]``); a float is this metric's value."""

    def value(self, value: float, *, key: str | None = None, **extra: Any) -> MetricValue:
        """Build a :class:`MetricValue` for this metric."""
        return MetricValue(metric=self.name, key=key, value=value, **extra)


class ReportedMetric(Metric):
    """A metric declaration whose values a suite reports (e.g. CE-loss recovered from a forward pass
    the suite shares among several metrics): name, direction, unit, scope and chance only.

    The suite builds its values with :meth:`value` (or a typed ``report(...)`` helper of the
    metric); ``compute`` cannot score generic inputs and says so.
    """

    def compute(self, inputs: MetricInputs) -> float | MetricValue | list[MetricValue]:
        raise TypeError(
            f'metric "{self.name}" is reported by the suite that computes it (a ReportedMetric); it cannot be '
            f"computed from {type(inputs).__name__}. Read its values from that suite's records, or register a "
            "computed Metric (with compute(inputs)) to score these inputs."
        )


# --------------------------------------------------------------------------- suites
class Suite(Plugin):
    """A standardized comparison. One cell = (method or baseline, model, seed)."""

    kind: ClassVar[Kind] = "suite"
    #: Method kinds this suite compares (empty: it scores models only).
    method_kinds: ClassVar[tuple[Kind, ...]] = ()
    #: Whether the unmodified model is a row of its own (the reference row).
    include_baseline: ClassVar[bool] = True
    #: Registered metric names it reports; the first one that is not descriptive ranks the leaderboard.
    metrics: ClassVar[tuple[str, ...]] = ()
    #: Board label of the reference row (the unmodified model, ``include_baseline``).
    reference_label: ClassVar[str] = "base model"
    #: Whether the reference row is ranked with the others; False: it is shown with its label,
    #: rank and win rate None, and is no opponent in win rates (e.g. a measurement in the
    #: neuron basis that no method competes with).
    rank_reference: ClassVar[bool] = True
    #: Bumped whenever a change of the suite changes its numbers (part of every record key).
    version: ClassVar[str] = "1"
    #: Model references used when a run spec names none (e.g. "zoo:zoo-m"; "zoo:*" = all).
    default_models: ClassVar[tuple[str, ...]] = ()
    #: Methods compared when a run spec names none; None = every registered method of
    #: ``method_kinds`` (a suite whose cells are costly names a representative few).
    default_methods: ClassVar[tuple[str, ...] | None] = None
    #: Seeds of a run spec without ``seeds:``. A suite whose cells are stochastic (training,
    #: sampling, probe splits) declares several, so its board's ties and errors span reseeds.
    default_seeds: ClassVar[tuple[int, ...]] = (0,)

    @abstractmethod
    def run(self, cell: CellContext) -> SuiteOutput:
        """Compute this suite's metrics for one cell."""

    @classmethod
    def summarize(cls, records: list[RunRecord], out_dir: Path) -> str | None:
        """Optional: results across cells (e.g. a sweep over models), once cells are recorded.

        Called whenever the suite's leaderboard is built (``harness run``, ``harness
        leaderboard``) with the records behind it (status ``ok``, the newest per row and
        seed). Write plots or tables into ``out_dir`` (``<leaderboard dir>/<suite>/``; create it
        when writing there); return Markdown appended to the leaderboard, or None (the default).
        """
        return None


class ModelSource(Plugin):
    """Where models come from (the embedded zoo, Hugging Face names or paths, ...)."""

    kind: ClassVar[Kind] = "model_source"

    @abstractmethod
    def list_models(self) -> list[str]:
        """Names this source can load without network (may be empty)."""

    @abstractmethod
    def resolve(self, name: str, revision: str | None) -> dict[str, Any]:
        """Provenance of a model without loading it: at least name, revision, and a fingerprint."""

    @abstractmethod
    def load(self, name: str, revision: str | None, *, device: str, dtype: str) -> Any:
        """Load the model (a ``harness.models.LoadedModel``)."""

    def shape(self, name: str, revision: str | None) -> ModelShape | None:
        """The model's dimensions without loading weights, for plan-time checks.

        Default: read ``config.json`` of the folder in :meth:`resolve`'s ``"path"`` entry, if
        it gives one; None (shape checks skipped) otherwise.
        """
        path = self.resolve(name, revision).get("path")
        if path is None:
            return None
        from harness.validation import ModelShape

        shown = f"{self.name}:{name}" + (f"@{revision}" if revision else "")
        return ModelShape.from_folder(path, shown)
