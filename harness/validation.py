"""Semantic validation at plan time: values that depend on the model or on another field.

Pydantic checks each field alone (types, ranges); this module checks what needs the model's
shape (``k <= d_sae`` at the hook point's width, hook points and layers the model has, task
names that exist), before any cell runs, so such mistakes end in one :class:`SpecError`
(``harness: error: ...``, exit 2) instead of a failed cell or a traceback.

* :class:`ModelShape` - a model's dimensions read from its ``config.json`` (no weights);
  model sources give it through :meth:`harness.protocols.ModelSource.shape`.
* ``Plugin.check(config, shape) -> list[str]`` - each plugin declares its own constraints
  next to its config (third-party plugins included); a problem names the field, the allowed
  range and the fix, e.g. ``"k: 100000 is more than d_sae = 256 ... Fix: ..."``.
* :func:`validate_plan` - the one call :func:`harness.runner.plan` makes; ``harness train-sae``
  calls :func:`validate_learner`.
* helpers for ``check`` implementations: :func:`hook_point_problems`, :func:`layer_problems`,
  :func:`task_problems`, :func:`at_most_problems`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import SpecError

if TYPE_CHECKING:  # pragma: no cover
    from harness.config import ModelRef, RunSpec
    from harness.models.hookpoints import HookPoint
    from harness.plugins import Registries
    from harness.protocols import Plugin
    from harness.cell import PlannedCell

__all__ = [
    "ModelShape",
    "MAX_DICTIONARY_ELEMENTS",
    "at_most_problems",
    "dictionary_size_problems",
    "hook_point_problems",
    "layer_problems",
    "model_shape",
    "task_problems",
    "validate_learner",
    "validate_plan",
]

#: config.json keys of each dimension across architectures (first present wins)
_KEYS: dict[str, tuple[str, ...]] = {
    "d_model": ("hidden_size", "n_embd", "d_model", "dim"),
    "n_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "n_heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
    "vocab_size": ("vocab_size",),
    "max_positions": ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len"),
    "d_mlp": ("intermediate_size", "n_inner", "ffn_dim", "d_ff"),
}
_D_MODEL_KINDS = ("resid_pre", "resid_post", "attn_out", "mlp_out", "final")


@dataclass(frozen=True)
class ModelShape:
    """A model's dimensions (from its config, no weights) and, for learners, the hook point read.

    ``hook`` is set by :meth:`at`: a dictionary learner's ``check`` then reads its input
    width as :attr:`d_in`.
    """

    name: str
    d_model: int
    n_layers: int
    n_heads: int
    vocab_size: int
    max_positions: int | None = None
    d_mlp: int | None = None
    model_type: str = ""
    hook: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], name: str) -> ModelShape:
        """Read a Hugging Face ``config.json`` mapping (nested ``text_config`` too)."""
        cfg = dict(config)
        if isinstance(cfg.get("text_config"), Mapping):
            cfg = {**cfg, **cfg["text_config"]}

        def get(field: str) -> int | None:
            for key in _KEYS[field]:
                if isinstance(cfg.get(key), int):
                    return int(cfg[key])
            return None

        values = {f: get(f) for f in _KEYS}
        missing = [f for f in ("d_model", "n_layers", "n_heads", "vocab_size") if values[f] is None]
        if missing:
            raise SpecError(
                f"Model {name}: its config.json gives no {', '.join(missing)} (looked for "
                + "; ".join(f"{f}: {'/'.join(_KEYS[f])}" for f in missing)
                + "). Fix the config, or use a model source whose shape() reads this architecture."
            )
        if values["d_mlp"] is None and cfg.get("model_type") == "gpt2":
            values["d_mlp"] = 4 * int(values["d_model"])  # type: ignore[operator]
        return cls(name=name, model_type=str(cfg.get("model_type", "")), **values)  # type: ignore[arg-type]

    @classmethod
    def from_folder(cls, folder: str | Path, name: str) -> ModelShape:
        """Read ``folder/config.json``."""
        path = Path(folder) / "config.json"
        try:
            return cls.from_config(json.loads(path.read_text()), name)
        except (OSError, ValueError) as e:
            raise SpecError(f"Model {name}: cannot read {path} ({e}); it is not a Hugging Face model folder.") from None

    @property
    def hook_points(self) -> list[str]:
        """Every canonical hook point name of this model, in forward order."""
        from harness.models.hookpoints import hook_point_names

        return hook_point_names(self.n_layers)

    def resolve(self, point: str) -> HookPoint:
        """The :class:`~harness.models.hookpoints.HookPoint` of a name or alias (raises if unknown)."""
        from harness.models.hookpoints import parse_hook_point

        return parse_hook_point(point, self.n_layers)

    def width(self, point: str) -> int | None:
        """Activation width at ``point`` (d_model, or d_mlp for ``mlp_post``; None for patterns)."""
        kind = self.resolve(point).kind
        if kind in _D_MODEL_KINDS:
            return self.d_model
        return self.d_mlp if kind == "mlp_post" else None

    def at(self, point: str) -> ModelShape:
        """This shape seen from the hook point ``point`` (a learner's input there: :attr:`d_in`)."""
        return replace(self, hook=self.resolve(point).name)

    @property
    def d_in(self) -> int | None:
        """Width a learner reads: at :attr:`hook` when set, else the residual stream's."""
        return self.width(self.hook) if self.hook else self.d_model


# --------------------------------------------------------------------------- helpers for check()
def hook_point_problems(field: str, point: str, shape: ModelShape) -> list[str]:
    """``[]`` when ``point`` is a hook point of the model, else one problem naming the valid ones."""
    from harness.errors import UnknownNameError

    try:
        shape.resolve(point)
    except UnknownNameError as e:
        n = shape.n_layers
        return [f"{field}: {e} Fix: pick a hook point of {shape.name} (blocks 0..{n - 1}), e.g. "
                f"blocks.{n - 1}.hook_resid_post."]
    return []


def layer_problems(
    field: str, layers: Iterable[int] | None, shape: ModelShape, *, negative: bool = True, empty_ok: bool = False
) -> list[str]:
    """Each layer must be a block of the model: ``-n..n-1`` (negative counts from the end), or
    ``0..n-1`` with ``negative=False``; an empty list is refused unless ``empty_ok``."""
    if layers is None:
        return []
    layers = list(layers)
    n = shape.n_layers
    if not layers and not empty_ok:
        return [f"{field}: empty list; allowed: layers in 0..{n - 1}. Fix: name at least one, or leave it unset "
                "for every layer."]
    low = -n if negative else 0
    bad = [x for x in layers if not low <= x < n]
    if bad:
        shown = bad[0] if len(layers) == 1 else bad
        return [f"{field}: {shown} out of range: {shape.name} has {n} layers, allowed {low}..{n - 1}. "
                f"Fix: use layers in 0..{n - 1}."]
    return []


def at_most_problems(
    field: str, value: int | None, limit: int | None, what: str, fix: str, why: str = ""
) -> list[str]:
    """``value <= limit`` (skipped when either is None); ``what`` names ``limit``, ``why`` says where it comes from."""
    if value is None or limit is None or value <= limit:
        return []
    because = f" ({why})" if why else ""
    return [f"{field}: {value} is more than {what} = {limit}{because}; allowed at most {limit}. Fix: {fix}."]


#: Largest dictionary (d_sae x d_in weights of one matrix) accepted: 2**31 elements, 8 GiB in float32.
MAX_DICTIONARY_ELEMENTS = 2**31


def dictionary_size_problems(field: str, d_sae: int, d_in: int, how: str) -> list[str]:
    """A dictionary needs ``1 <= d_sae`` and ``d_sae * d_in <= MAX_DICTIONARY_ELEMENTS``."""
    limit = MAX_DICTIONARY_ELEMENTS // max(d_in, 1)
    if 1 <= d_sae <= limit:
        return []
    return [f"{field}: gives d_sae = {d_sae} ({how}); allowed 1..{limit} (d_sae x d_in at most 2**31 weights). "
            f"Fix: choose {field} so that d_sae is in 1..{limit}."]


def _zoo_task_names() -> list[str]:
    from harness.zoo import TASKS_DIR

    try:
        from harness.zoo import read_index

        return [t["name"] for t in read_index()]
    except FileNotFoundError:
        return sorted(p.name for p in TASKS_DIR.iterdir() if p.is_dir())


@functools.lru_cache(maxsize=1)
def _lm_eval_task_names() -> frozenset[str]:
    """Every task, group and tag lm-eval knows, plus the zoo's (indexing takes ~10-20 s: asked only
    when a run names a task that is not a zoo task, which its cell would index anyway)."""
    from harness.evaluation.tasks import default_include_paths, task_manager

    return frozenset(task_manager(default_include_paths(), include_defaults=True).all_tasks)


def task_problems(field: str, tasks: Sequence[str] | None) -> list[str]:
    """Every task name must exist: the embedded world's (``zoo_*``), else one lm-eval knows."""
    from harness.errors import did_you_mean

    if not tasks:
        return []
    zoo = _zoo_task_names()
    out = []
    for t in tasks:
        if not t.strip():
            out.append(f"{field}: {t!r} is not a task name. Fix: name lm-eval tasks, e.g. {zoo[0] if zoo else 'piqa'}.")
        elif t.startswith("zoo_") and t not in zoo:
            out.append(f"{field}: no zoo task {t!r}.{did_you_mean(t, zoo)} Allowed zoo tasks: {', '.join(zoo)}. "
                       "Fix: use one of them (or an lm-eval task name).")
        elif t not in zoo and t not in (known := _lm_eval_task_names()):
            out.append(f"{field}: no lm-eval task {t!r}.{did_you_mean(t, [*zoo, *known])} Fix: use a task lm-eval lists "
                       f"(its built-in tasks) or a zoo task ({', '.join(zoo)}).")
    return out


# --------------------------------------------------------------------------- entry points
def model_shape(ref: ModelRef, registries: Registries) -> ModelShape | None:
    """The shape of a model reference through its source (None: the source cannot tell)."""
    return registries.model_sources.get(ref.source)().shape(ref.name, ref.revision)


def _check(cls: type[Plugin], config: Any, shape: ModelShape, where: str) -> list[str]:
    return [f"{where}.{p}" for p in cls.check(config, shape)]


def _index_of(entries: Sequence[Any] | None, name: str, config: Any, prefix: str) -> str:
    for i, e in enumerate(entries or []):
        if e.name == name and config.model_dump() == type(config).model_validate(e.config).model_dump():
            return f"{prefix}[{i}].config"
    return f'{prefix[:-1]} "{name}" (default config)'


def _raise(problems: list[str]) -> None:
    problems = list(dict.fromkeys(problems))
    if len(problems) == 1:
        raise SpecError(problems[0])
    if problems:
        raise SpecError("Invalid run for the models' shapes:\n" + "\n".join(f"  - {p}" for p in problems))


def validate_plan(spec: RunSpec, cells: Sequence[PlannedCell], registries: Registries) -> None:
    """Check every planned cell's suite and method against its model's shape; one SpecError for all.

    A learner is checked at the suite's ``hook_point`` when its config has one (else at the
    residual stream). Each distinct (plugin, config, model) is checked once.
    """
    shapes: dict[Any, ModelShape | None] = {}
    seen: set[tuple[Any, ...]] = set()
    problems: list[str] = []
    for pc in cells:
        if pc.model_ref not in shapes:
            shapes[pc.model_ref] = model_shape(pc.model_ref, registries)
        shape = shapes[pc.model_ref]
        if shape is None:
            continue
        skey = ("suite", pc.suite_cls, json.dumps(pc.cell.suite_config, sort_keys=True), pc.model_ref)
        if skey not in seen:
            seen.add(skey)
            where = _index_of(spec.suites, pc.suite_cls.name, pc.suite_config, "suites")
            problems += _check(pc.suite_cls, pc.suite_config, shape, where)
        if pc.method_cls is None or pc.method_config is None:
            continue
        hook = getattr(pc.suite_config, "hook_point", None)
        mkey = ("method", pc.method_cls, json.dumps(pc.cell.method_config, sort_keys=True), pc.model_ref, hook)
        if mkey in seen:
            continue
        seen.add(mkey)
        if pc.method_cls.kind == "dictionary_learner":
            if isinstance(hook, str) and hook_point_problems("hook_point", hook, shape):
                continue  # the suite's problem is reported; the learner's width there is unknown
            shape = shape.at(hook) if isinstance(hook, str) else shape
        where = _index_of(spec.methods, pc.method_cls.name, pc.method_config, "methods")
        problems += _check(pc.method_cls, pc.method_config, shape, where)
    _raise(problems)


def validate_learner(cls: type[Plugin], config: Any, shape: ModelShape, hook: str, *, where: str = "--set") -> None:
    """``harness train-sae``: the hook point exists and the learner's config fits its width."""
    problems = hook_point_problems("--hook", hook, shape)
    if not problems and shape.width(hook) is None:
        problems = [f"--hook: {hook!r} is an attention pattern, not activations a dictionary can read. "
                    "Fix: use a resid/attn_out/mlp_out/mlp_post hook point."]
    if not problems:
        problems = [f"{where} {p}" for p in cls.check(config, shape.at(hook))]
    _raise(problems)
