"""``harness datasets``: the registered data providers, their roles, and the suites' data fields."""

from __future__ import annotations

import json
from typing import Any

from harness.datasets.ref import dataset_fields


def dataset_rows(registries: Any) -> list[dict[str, Any]]:
    """One row per registered dataset: name, roles, plugin, description, config schema."""
    rows = []
    for entry in registries["dataset"].entries():
        cls = entry.obj
        defaults = {k: f.default for k, f in cls.Config.model_fields.items()
                    if not f.is_required() and f.default is not None and k in ("path", "name", "split")}
        rows.append({"name": entry.name, "roles": list(cls.roles), "plugin": entry.origin,
                     "network": cls.network, "defaults": defaults, "description": cls.description,
                     "config_schema": cls.Config.model_json_schema()})
    return rows


def suite_field_rows(registries: Any) -> list[dict[str, Any]]:
    """One row per data field of every registered suite: suite, field, role, default."""
    return [row for entry in registries.suites.entries() for row in _field_rows("suite", entry.name, entry.obj.Config)]


def _field_rows(owner: str, name: str, config_cls: Any) -> list[dict[str, Any]]:
    """Rows ``{owner: name, field, role, default}`` of the data fields of ``config_cls``'s default config
    (none when the config has required fields)."""
    try:
        cfg = config_cls()
    except Exception:  # noqa: BLE001 - a config with required fields has no default to list
        return []
    return [{owner: name, "field": field, "role": role, "default": ", ".join(str(r) for _p, r in refs) or "[]"}
            for field, role, refs in dataset_fields(cfg)]


def metric_field_rows(registries: Any) -> list[dict[str, Any]]:
    """One row per data field of the config of every metric a suite's ``metrics.config`` can configure (a
    computed metric of the scope of a suite that selects metrics)."""
    from harness.metric_selection import SelectsMetrics
    from harness.protocols import ReportedMetric

    scopes = {e.obj.Config.metric_scope for e in registries.suites.entries() if issubclass(e.obj.Config, SelectsMetrics)}
    return [row for entry in registries.metrics.entries()
            if entry.obj.scope in scopes and not issubclass(entry.obj, ReportedMetric)
            for row in _field_rows("metric", entry.name, entry.obj.Config)]


def print_datasets(registries: Any, as_json: bool) -> int:
    from tabulate import tabulate

    rows, fields, metric_fields = dataset_rows(registries), suite_field_rows(registries), metric_field_rows(registries)
    if as_json:
        print(json.dumps({"datasets": rows, "suite_fields": fields, "metric_fields": metric_fields}, indent=2,
                         default=str))
        return 0
    if not rows:
        print("No datasets registered (is the built-in entry point `datasets` disabled? "
              "check HARNESS_LOAD_PLUGINS / HARNESS_DISABLE_PLUGINS).")
        return 0
    table = [[r["name"], ",".join(r["roles"]), r["defaults"].get("path", "-"), r["description"][:70]] for r in rows]
    print(tabulate(table, headers=["dataset", "roles", "hf path", "description"]))
    if fields:
        print("\nData fields of the suites (set them in a spec: suites[].config.<field>):")
        print(tabulate([[f["suite"], f["field"], f["role"], f["default"]] for f in fields],
                       headers=["suite", "field", "role", "default"]))
    if metric_fields:
        print("\nData fields of the metrics (set them in a spec: suites[].config.metrics.config.<metric>.<field>):")
        print(tabulate([[f["metric"], f["field"], f["role"], f["default"]] for f in metric_fields],
                       headers=["metric", "field", "role", "default"]))
    return 0
