"""The one worker function every executor runs: a cell's JSON in, its record in the store.

:func:`run_cell` rebuilds the plugin registries in the worker (once per process and plugin
set), re-validates the cell against them (same suite version, same configs, same model
fingerprint, same key), resolves the device *here* (a Ray task on a GPU node sees its GPU),
computes the cell with :func:`harness.cell.compute_cell` exactly like the in-process
runner, and publishes the record atomically. An ``ok`` record already in the store means
the cell is skipped; a finished cell is never overwritten (the store publishes with a hard
link), so concurrent sweeps over one store do not duplicate work in the records.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from harness.plugins import Registries
    from harness.results import RunRecord
    from harness.cell import PlannedCell
    from harness.store import Store

log = logging.getLogger("harness")

_REGISTRIES: dict[str, Registries] = {}  # per worker process: plugin-set JSON -> registries
TIMEOUT_ERROR = "CellTimeout"


@contextmanager
def _plugin_env(entry_points: list[str]) -> Iterator[None]:
    """Load exactly the entry-point plugins the driver loaded (whatever this node's env says)."""
    saved = {k: os.environ.get(k) for k in ("HARNESS_LOAD_PLUGINS", "HARNESS_DISABLE_PLUGINS")}
    os.environ["HARNESS_LOAD_PLUGINS"] = ",".join(entry_points)
    os.environ.pop("HARNESS_DISABLE_PLUGINS", None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def registries_for(plugins: dict[str, Any]) -> Registries:
    """The registries described by a plugin-set payload (cached in this process)."""
    from harness.plugins import Registries, discover

    key = json.dumps(plugins, sort_keys=True)
    if key not in _REGISTRIES:
        extra = [(name, importlib.import_module(module)) for name, module in plugins.get("modules", [])]
        with _plugin_env(plugins.get("entry_points", [])):
            ps = discover(plugins_dirs=[Path(d) for d in plugins.get("plugins_dirs", [])], extra=extra)
        _REGISTRIES[key] = Registries(ps)
    return _REGISTRIES[key]


def rebuild_cell(payload: dict[str, Any], registries: Registries) -> PlannedCell:
    """The :class:`PlannedCell` of a payload, re-validated against this worker's plugins."""
    from harness.config import ModelRef
    from harness.config import key_dump
    from harness.errors import SpecError
    from harness.results import CellKey
    from harness.cell import PlannedCell

    cell = CellKey.model_validate(payload["cell"])
    suite_cls = registries.suites.get(payload["suite"])
    suite_cfg = suite_cls.parse_config(payload["suite_config"], at="suite config sent to the worker")
    method_cls = registries.method(payload["method"]) if payload["method"] else None
    method_cfg = method_cls.parse_config(payload["method_config"]) if method_cls else None
    model_ref = ModelRef.parse(payload["model_ref"])
    source = registries.model_sources.get(model_ref.source)()
    fingerprint = str(source.resolve(model_ref.name, model_ref.revision)["fingerprint"])
    problems = []
    if suite_cls.version != cell.suite_version:
        problems.append(f"suite version {suite_cls.version} != planned {cell.suite_version}")
    if key_dump(suite_cfg) != cell.suite_config:
        problems.append("suite config differs once validated here")
    if method_cls is not None and (method_cls.kind != cell.method_kind
                                   or key_dump(method_cfg) != cell.method_config):
        problems.append("method kind or config differs once validated here")
    plugins = registries.cell_plugins(suite_cls, method_cls, registries.model_sources.get(model_ref.source))
    if plugins != cell.plugins:
        problems.append(f"plugin versions {plugins} != planned {cell.plugins}")
    if fingerprint != cell.model_fingerprint:
        problems.append(f"model fingerprint {fingerprint} != planned {cell.model_fingerprint}")
    from harness.evaluation.folders import task_dirs_identity

    if task_dirs_identity(suite_cfg, at="suite config sent to the worker") != cell.task_dirs:
        problems.append("lm-eval task folders differ from the planned ones (edited since planning, or other files "
                        "on this worker)")
    if cell.key() != payload["key"]:
        problems.append("cell key does not match its content")
    if problems:
        raise SpecError(
            f"Cell {payload['key'][:12]} ({cell.suite} / {payload['label']} / {cell.model}) does not validate in "
            f"the worker: {'; '.join(problems)}. Install the same harness, plugins and models on every worker."
        )
    return PlannedCell(cell, payload["label"], suite_cls, suite_cfg, method_cls, method_cfg, model_ref)


def failure_record(payload: dict[str, Any], error: dict[str, str], *, device: str, started: str,
                   wall_s: float) -> RunRecord:
    """A ``failed`` record for a cell that never produced one itself (timeout, crash, bad worker)."""
    from harness.provenance import provenance
    from harness.results import CellKey, Provenance, RunRecord

    prov = provenance("cpu", started, wall_s)
    prov["device"] = device
    return RunRecord(key=payload["key"], cell=CellKey.model_validate(payload["cell"]), label=payload["label"],
                     status="failed", error=error, provenance=Provenance(**prov))


def record_failure(job: dict[str, Any], error_type: str, message: str, *, started: str, wall_s: float,
                   tb: str = "") -> str:
    """Publish a failed record for ``job`` (unless the cell is recorded ok meanwhile); returns the outcome."""
    from harness.cell import publish_record
    from harness.store import Store

    from harness.results import CellKey

    if CellKey.model_validate(job["cell"]["cell"]).key() != job["cell"]["key"]:
        log.error("cell %s: %s: %s (not recorded: the payload's key does not match its cell)",
                  job["cell"]["key"][:12], error_type, message)
        return "failed"
    error = {"type": error_type, "message": message, "traceback": tb}
    if job.get("sweep"):
        error["sweep"] = job["sweep"]
    rec = failure_record(job["cell"], error, device=f"{job['device']} (as requested)", started=started,
                         wall_s=wall_s)
    return publish_record(rec, Store(Path(job["store"])))


def _start_watchdog(job: dict[str, Any], started: str) -> threading.Timer:
    """After ``job['timeout']`` seconds: record the cell failed and end this worker process.

    Used where the executor cannot kill a cell from outside (Ray tasks, Slurm jobs); the
    local executor kills the cell's process itself.
    """
    t0 = time.perf_counter()

    def fire() -> None:
        try:
            record_failure(job, TIMEOUT_ERROR, f"timeout after {job['timeout']:g}s", started=started,
                           wall_s=time.perf_counter() - t0)
        finally:
            os._exit(3)

    timer = threading.Timer(job["timeout"], fire)
    timer.daemon = True
    timer.start()
    return timer


def _timed_out_in_this_sweep(store: Store, job: dict[str, Any]) -> bool:
    rec = store.get(job["cell"]["cell"]["suite"], job["cell"]["key"])
    return (rec is not None and rec.status == "failed" and rec.error is not None
            and rec.error.get("type") == TIMEOUT_ERROR and bool(job.get("sweep"))
            and rec.error.get("sweep") == job["sweep"])


def run_cell(job: dict[str, Any]) -> dict[str, Any]:
    """Compute one cell described by ``job`` (see :mod:`harness.executors.base`) into its store.

    Returns ``{"key", "outcome": done|failed|skipped, "message"}`` (JSON). Never raises for a
    cell's own failure: that is recorded in the store with its traceback.
    """
    from harness.context import resolve_device
    from harness.provenance import now_iso
    from harness.cell import compute_cell, publish_record
    from harness.store import Store

    payload = job["cell"]
    store = Store(Path(job["store"]))
    key, suite = payload["key"], payload["cell"]["suite"]
    if not job.get("force") and store.is_done(suite, key):
        return {"key": key, "outcome": "skipped", "message": "already recorded"}
    if _timed_out_in_this_sweep(store, job):  # a retry after the watchdog ended the process
        return {"key": key, "outcome": "failed", "message": "timed out"}
    started, t0 = now_iso(), time.perf_counter()
    timer = _start_watchdog(job, started) if job.get("timeout") else None
    try:
        try:
            registries = registries_for(job["plugins"])
            pc = rebuild_cell(payload, registries)
            device = resolve_device(job["device"])
        except Exception as e:  # noqa: BLE001 - a worker that cannot load the cell records why
            from harness.errors import HarnessError

            tb = "" if isinstance(e, HarnessError) else traceback.format_exc()
            outcome = record_failure(job, type(e).__name__, str(e), started=started,
                                     wall_s=time.perf_counter() - t0, tb=tb)
            return {"key": key, "outcome": outcome, "message": f"{type(e).__name__}: {e}"}
        record = compute_cell(pc, store, registries, device=device, progress=bool(job.get("progress")))
        outcome = publish_record(record, store, force=bool(job.get("force")))
        msg = "" if record.error is None else f"{record.error['type']}: {record.error['message']}"
        return {"key": key, "outcome": outcome, "message": msg}
    finally:
        if timer is not None:
            timer.cancel()
