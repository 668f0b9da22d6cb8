"""How configs name data: :class:`DatasetRef` fields, opened by role, keyed by identity.

A suite (or method) config declares a data input as a field made by :func:`dataset_field`::

    corpus: DatasetRef = dataset_field("corpus", "Text the SAEs train and evaluate on.")

Its value is ``{"dataset": "<registered name>", "config": {...}}`` or just the name (``"world"``,
``"local"`` needs a config, a preset such as ``"bias_in_bios_set1"``). The core then

* checks every such field at plan time (:func:`dataset_problems`): the name is registered, it
  provides the role, its config is valid, its files exist and have the columns;
* leaves a field at its default out of the cell key's ``suite_config`` (:func:`key_dump`, the
  core's one mechanism for that: a data field is :func:`harness.config.key_neutral`), so
  adding a data field does not change existing keys, and puts the identity of every other
  (provider, path, revision, content hash) into the key's ``datasets`` (:func:`dataset_identities`);
* opens it in a cell: ``cell.data(cfg.corpus, "corpus")`` or :func:`open_role`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.config import key_dump, key_neutral
from harness.errors import HarnessError, SpecError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from harness.datasets.base import Dataset
    from harness.plugins import Registries

__all__ = [
    "DatasetRef",
    "dataset_field",
    "dataset_fields",
    "dataset_identities",
    "dataset_problems",
    "is_world",
    "key_dump",
    "open_dataset",
    "open_role",
]

_ROLE_KEY = "dataset_role"


class DatasetRef(BaseModel):
    """A registered dataset and its config; a plain string is a name with its default config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field("world", description="Registered dataset name (`harness datasets` lists them): world, "
                                              "local, hf, or a preset.")
    config: dict[str, Any] = Field(default_factory=dict, description="The dataset's config (its fields: "
                                                                     "`harness datasets --json`).")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"dataset": data} if isinstance(data, str) else data

    def __str__(self) -> str:
        if not self.config:
            return self.dataset
        inner = ", ".join(f"{k}={v}" for k, v in sorted(self.config.items()))
        return f"{self.dataset}({inner})"


def dataset_field(role: str, description: str, default: Any = None) -> Any:
    """A config field holding a :class:`DatasetRef` (or a list of them) for ``role``.

    ``default`` is a ref, a name, or a list of those; None = the world with its default config."""
    from harness.datasets.roles import role_class

    role_class(role)
    extra = key_neutral({_ROLE_KEY: role})  # at its default (the world) a data field stays out of the key
    if default is None:
        default = DatasetRef()
    if isinstance(default, list):
        refs = [DatasetRef.model_validate(d) for d in default]
        return Field(default_factory=lambda: list(refs), description=description, json_schema_extra=extra)
    ref = DatasetRef.model_validate(default)
    return Field(ref, description=description, json_schema_extra=extra)


def _field_role(info: Any) -> str | None:
    extra = info.json_schema_extra
    return extra.get(_ROLE_KEY) if isinstance(extra, dict) else None


def dataset_fields(config: BaseModel) -> Iterator[tuple[str, str, list[tuple[str, DatasetRef]]]]:
    """``(field, role, [(path, ref), ...])`` for every data field of ``config`` (path e.g. ``probe_sets[1]``)."""
    for name, info in type(config).model_fields.items():
        role = _field_role(info)
        if role is None:
            continue
        value = getattr(config, name)
        if isinstance(value, list):
            yield name, role, [(f"{name}[{i}]", r) for i, r in enumerate(value)]
        elif value is not None:
            yield name, role, [(name, value)]


def _default(config: BaseModel, name: str) -> Any:
    return type(config).model_fields[name].get_default(call_default_factory=True)


def is_world(ref: DatasetRef) -> bool:
    """True when ``ref`` is the embedded generated world (any config)."""
    return ref.dataset == "world"


def _registries(registries: Registries | None) -> Registries:
    if registries is not None:
        return registries
    from harness.plugins import current_registries

    return current_registries()


def dataset_class(name: str, registries: Registries | None = None) -> type[Dataset]:
    """The registered dataset class ``name``; unknown names suggest near ones."""
    regs = _registries(registries)
    reg = regs["dataset"]
    if name not in reg:
        hint = did_you_mean(name, reg.names())
        known = ", ".join(reg.names()) or "none (is the built-in entry point `datasets` disabled?)"
        raise SpecError(f'Unknown dataset "{name}".{hint} Registered datasets: {known}. '
                        "`harness datasets` lists them with their roles.")
    return reg.get(name)


def open_dataset(ref: DatasetRef, registries: Registries | None = None, *, at: str | None = None) -> Dataset:
    """The configured provider of ``ref`` (config validated; errors name ``at``)."""
    cls = dataset_class(ref.dataset, registries)
    return cls(cls.parse_config(ref.config, at=at))


def open_role(ref: DatasetRef | str, role: str, registries: Registries | None = None, *, at: str | None = None) -> Any:
    """Open ``ref`` as ``role`` ("corpus", "labelled", "qa" or "sequences")."""
    from harness.datasets.roles import role_class

    ref = DatasetRef.model_validate(ref)
    contract = role_class(role)
    ds = open_dataset(ref, registries, at=at)
    if role not in ds.roles:
        raise HarnessError(
            f'{at or "dataset"}: dataset "{ref.dataset}" provides {", ".join(ds.roles) or "no roles"}, not "{role}". '
            f"Choose a dataset that provides {role} (`harness datasets` lists the roles of each)."
        )
    obj = ds.open(role)
    if not isinstance(obj, contract):
        raise HarnessError(f'dataset "{ref.dataset}" opened {role} as {type(obj).__name__}, which does not implement '
                           f"harness.datasets.{contract.__name__}. Fix the plugin's open().")
    return obj


def dataset_identities(config: BaseModel, registries: Registries | None = None, *,
                       prefix: str = "", all_fields: bool = False) -> dict[str, dict[str, Any]]:
    """``path -> identity`` of the data fields of ``config`` not at their default (every field with ``all_fields``)."""
    out: dict[str, dict[str, Any]] = {}
    for name, _role, refs in dataset_fields(config):
        if not all_fields and getattr(config, name) == _default(config, name):
            continue
        for path, ref in refs:
            out[prefix + path] = open_dataset(ref, registries, at=prefix + path).identity()
    return out


def dataset_problems(config: BaseModel, registries: Registries | None = None, *, at: str = "") -> list[str]:
    """Plan-time problems of every data field of ``config``, one line each (field path first)."""
    problems: list[str] = []
    for _name, role, refs in dataset_fields(config):
        for path, ref in refs:
            where = f"{at}{path}"
            try:
                ds = open_dataset(ref, registries, at=f"{where}.config")
            except HarnessError as e:
                problems.append(f"{where}: {e}")
                continue
            if role not in ds.roles:
                problems.append(f'{where}: dataset "{ref.dataset}" provides {", ".join(ds.roles) or "no roles"}, '
                                f'not "{role}". Choose one that provides {role} (`harness datasets`).')
                continue
            problems.extend(f"{where}: {p}" for p in ds.problems(role))
    return problems


def needs_network(config: BaseModel, registries: Registries | None = None) -> bool:
    """True when a data field of ``config`` names a provider that may need the network."""
    for _name, _role, refs in dataset_fields(config):
        for _path, ref in refs:
            try:
                if dataset_class(ref.dataset, registries).network:
                    return True
            except HarnessError:
                continue
    return False
