"""`harness schema`: the JSON schema of the run spec plus every registered plugin's config."""

from __future__ import annotations

from typing import Any

from harness.config import RunSpec
from harness.plugins import Registries


def full_schema(registries: Registries, only: str | None = None) -> dict[str, Any]:
    """``{"run_spec": ..., "plugins": {kind: {name: config schema}}}`` (or one plugin's schema)."""
    plugins: dict[str, dict[str, Any]] = {}
    for kind, entry in registries.all_entries():
        schema = entry.obj.Config.model_json_schema()
        schema.setdefault("description", entry.obj.description)
        if only is not None and entry.name == only:
            return {"plugin": entry.name, "kind": kind, "config": schema}
        plugins.setdefault(kind, {})[entry.name] = schema
    if only is not None:
        from harness.errors import UnknownNameError, did_you_mean

        names = [e.name for _, e in registries.all_entries()]
        raise UnknownNameError(f'Unknown plugin "{only}".{did_you_mean(only, names)} Known: {", ".join(sorted(names))}.')
    return {"run_spec": RunSpec.model_json_schema(), "plugins": plugins}
