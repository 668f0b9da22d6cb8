"""Pydantic base for every config, the run spec, and readable validation errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.errors import SpecError

C = TypeVar("C", bound=BaseModel)


class PluginConfig(BaseModel):
    """Base of every plugin config: unknown keys are errors, never silently dropped."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


#: ``json_schema_extra`` marker of a config field that stays out of the cell key while at its default
#: (:func:`key_dump`): a field added after keys were fixed (so existing keys hold), a data field, an
#: optional selection. Set it with :func:`key_neutral`.
KEY_NEUTRAL = "key_neutral_default"


def key_neutral(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``json_schema_extra`` for a field left out of the cell key at its default:
    ``x: int | None = Field(None, description=..., json_schema_extra=key_neutral())``."""
    return {**(extra or {}), KEY_NEUTRAL: True}


def _is_key_neutral(info: Any) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get(KEY_NEUTRAL))


def key_dump(config: BaseModel) -> dict[str, Any]:
    """``config.model_dump(mode="json")`` without the :func:`key_neutral` fields (data fields among them)
    that are at their default, in nested configs too: what a config contributes to a cell key (and to another config's key, e.g.
    a dataset's identity). The one mechanism for "a field at its default stays out of the key"."""
    data = config.model_dump(mode="json")
    for name, info in type(config).model_fields.items():
        value = getattr(config, name)
        if _is_key_neutral(info) and value == info.get_default(call_default_factory=True):
            data.pop(name, None)
        elif isinstance(value, BaseModel) and name in data:
            data[name] = key_dump(value)  # a nested config's key-neutral fields too (metrics.config)
    return data


def _fields_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str] | None:
    """The field names of the nested config at ``loc`` inside ``model`` (None when it is not a config)."""
    for part in loc:
        info = model.model_fields.get(str(part)) if model is not None else None
        ann = info.annotation if info is not None else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return sorted(model.model_fields) if model is not None else None


def format_validation_error(err: ValidationError, where: str, fields: list[str] | None = None,
                            model: type[BaseModel] | None = None) -> str:
    """One line per problem: the full field path, what was wrong, and how to fix it (an unknown key is
    matched against the keys of the config it is in, nested ones too when ``model`` is given)."""
    lines = [f"Invalid {where}:"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            from harness.errors import did_you_mean

            last = str(e["loc"][-1]) if e["loc"] else path
            nested = _fields_at(model, tuple(e["loc"][:-1])) if len(e["loc"]) > 1 else None
            keys = nested if nested is not None else fields
            hint = did_you_mean(last, keys or [])
            allowed = f" Allowed keys: {', '.join(keys)}." if keys else ""
            lines.append(f"  - {path}: unknown key.{hint}{allowed}")
        else:
            got = e.get("input")
            shown = repr(got) if not isinstance(got, Mapping) else "{...}"
            if len(shown) > 80:
                shown = shown[:77] + "..."
            lines.append(f"  - {path}: {e['msg']} (got {shown}).")
    return "\n".join(lines)


def validate_config(cls: type[C], data: Mapping[str, Any] | BaseModel, *, where: str) -> C:
    """``cls.model_validate(data)``, re-raised as a :class:`SpecError` naming ``where``."""
    if isinstance(data, BaseModel):
        data = data.model_dump()
    if not isinstance(data, Mapping):
        raise SpecError(f"Invalid {where}: expected a mapping of config keys, got {type(data).__name__}.")
    try:
        return cls.model_validate(dict(data))
    except ValidationError as err:
        raise SpecError(format_validation_error(err, where, sorted(cls.model_fields), cls)) from None


# --------------------------------------------------------------------------- run spec
#: Seeds are used by numpy, which accepts 0 <= seed < 2**32.
SEED_LIMIT = 2**32
_REF_RE = re.compile(r"^(?:(?P<source>[a-z][a-z0-9_\-]*):)?(?P<name>[^@]+?)(?:@(?P<revision>[^@]+))?$")


class ModelRef(BaseModel):
    """A model: its source plugin, name (hub name, local path or zoo name) and revision."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field("hf", description="Model source plugin (`harness plugins` lists them): zoo, hf, ...")
    name: str = Field(description="Model name within the source: zoo name, HF hub name or local path.")
    revision: str | None = Field(None, description="Revision (e.g. Pythia-style 'step1000'); None = the default.")

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse ``[source:]name[@revision]``; a bare name is a Hugging Face name or path."""
        m = _REF_RE.match(text.strip())
        if not m or not m.group("name"):
            raise SpecError(
                f'Invalid model reference "{text}". Use [source:]name[@revision], e.g. '
                '"zoo:zoo-m", "zoo:zoo-m@step500" or "EleutherAI/pythia-70m".'
            )
        source = m.group("source") or "hf"
        return cls(source=source, name=m.group("name"), revision=m.group("revision"))

    def __str__(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"{self.source}:{self.name}{rev}"


class ComponentSpec(BaseModel):
    """A plugin chosen by name with its config (validated against the plugin's Config)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Registered plugin name (see `harness plugins`).")
    config: dict[str, Any] = Field(default_factory=dict, description="Config of the plugin; see `harness schema`.")
    label: str | None = Field(None, description="Row label in leaderboards (default: the name).")

    @property
    def display(self) -> str:
        return self.label or self.name


class RunSpec(BaseModel):
    """What `harness run` computes: suites x methods x models x seeds."""

    model_config = ConfigDict(extra="forbid")

    suites: list[ComponentSpec] = Field(
        default_factory=list, description="Suites to run; empty = every registered suite with its default config."
    )
    methods: list[ComponentSpec] | None = Field(
        None,
        description="Methods to compare; None = every registered method of the kinds each suite compares, "
        "default configs; [] = baselines only.",
    )
    models: list[ModelRef] = Field(
        default_factory=list, description="Models; empty = each suite's default models (the embedded zoo)."
    )
    extra_metrics: list[str] = Field(
        default_factory=list,
        description="Model-scope metrics (any plugin's) computed on every cell's evaluated model, after its suite.",
    )
    seeds: list[int] | None = Field(None, min_length=1, description="Seeds; one cell per seed. None = each suite's "
                                    "`default_seeds` (3 seeds for suites whose cells are stochastic, 1 otherwise).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda when available, else cpu.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="Model dtype.")
    output_dir: Path = Field(Path("harness-results"), description="Where run records and artifacts are stored.")
    leaderboard_dir: Path = Field(Path("leaderboards"), description="Where leaderboards are written.")
    executor: ComponentSpec | None = Field(
        None, description="Where cells run: an executor (`harness plugins` lists them) and its config; "
        "None = local, in this process. `harness run --executor` and its flags override it.",
    )

    @field_validator("seeds")
    @classmethod
    def _seeds_in_numpy_range(cls, v: list[int] | None) -> list[int] | None:
        from pydantic_core import PydanticCustomError

        if v is None:
            return v
        bad = [s for s in v if not 0 <= s < SEED_LIMIT]
        if bad:
            raise PydanticCustomError(
                "seed_range",
                "{bad} out of range: a seed must be 0 <= seed < 2**32 (numpy's range, 0..{top}). Fix: use a "
                "non-negative seed below 2**32, e.g. --seed 0",
                {"bad": bad if len(bad) > 1 else bad[0], "top": SEED_LIMIT - 1},
            )
        return v

    @field_validator("models", mode="before")
    @classmethod
    def _parse_model_strings(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [ModelRef.parse(x) if isinstance(x, str) else x for x in v]
        return v

    @field_validator("suites", "methods", mode="before")
    @classmethod
    def _parse_names(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"name": x} if isinstance(x, str) else x for x in v]
        return v


def load_spec(path: Path | None, overrides: Mapping[str, Any] | None = None) -> RunSpec:
    """Read a YAML/JSON run spec (or start from the default) and apply CLI overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        import yaml

        try:
            text = Path(path).read_text()
        except OSError as e:
            raise SpecError(f"Cannot read run spec {path}: {e.strerror}.") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise SpecError(f"Run spec {path} is not valid YAML: {e}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise SpecError(f"Run spec {path} must be a mapping (suites:, methods:, models:, ...).")
        data = dict(loaded or {})
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    where = f"run spec {path}" if path else "run spec"
    return validate_config(RunSpec, data, where=where)
