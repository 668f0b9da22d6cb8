"""The local executor: in-process, or a pool of worker processes on this machine.

``workers`` unset (the default) picks the number by :func:`auto_workers`: ``HARNESS_WORKERS``
when set, else one per visible GPU on a GPU device, else one per CPU core (at most
:data:`AUTO_CPU_WORKERS`), never more than the cells to compute. Small models on a CPU
use one core badly, so two one-thread processes on a 2-core machine finish a default
run in about half the time of one two-thread process (``benchmarks/main_run.py``).

One worker and no ``cell_timeout``: cells run one after the other in this process, as
they always did. Otherwise each of ``workers`` slots is a spawned process that computes one
cell at a time through :func:`harness.executors.worker.run_cell`; on a machine with GPUs
slot *i* is pinned to GPU *i mod n* with ``CUDA_VISIBLE_DEVICES`` (HELM's multi-GPU runner
style), on CPU the slots just run in parallel (with the CPU threads shared among them).

With ``cell_timeout`` a cell still running after that many seconds has its process killed,
is recorded ``failed`` ("timeout after Ns") and the sweep goes on with a fresh process. A
slot process that dies (segfault, OOM kill) has its cell retried ``max_retries`` times, then
recorded failed.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from harness.errors import SpecError
from harness.executors.base import (
    Executor,
    ExecutorConfig,
    OnCell,
    RunSummary,
    Tally,
    make_job,
    plugin_set_payload,
    split_todo,
)

if TYPE_CHECKING:  # pragma: no cover
    from harness.plugins import Registries
    from harness.cell import PlannedCell
    from harness.store import Store

log = logging.getLogger("harness")


#: The most worker processes ``workers`` unset starts on a CPU (each holds its own copy of the model).
AUTO_CPU_WORKERS = 4


def auto_workers(device: str) -> int:
    """Worker processes when ``workers`` is unset: ``HARNESS_WORKERS`` if set, else one per visible GPU
    (a device other than ``cpu`` with GPUs), else one per CPU core, at most :data:`AUTO_CPU_WORKERS`."""
    env = os.environ.get("HARNESS_WORKERS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise SpecError(f"HARNESS_WORKERS={env!r}: must be a whole number >= 1 (1 = cells in this process); "
                            "unset it for the automatic choice")
        return n
    if device != "cpu":
        gpus = visible_gpus()
        if gpus:
            return len(gpus)
        if device != "auto":  # an explicit accelerator without visible GPUs (e.g. mps): in this process
            return 1
    return max(1, min(os.cpu_count() or 1, AUTO_CPU_WORKERS))


def visible_gpus() -> list[str]:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES when set, else torch's count."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no torch / no driver: no GPUs
        return []


def _slot_main(conn: Connection, env: dict[str, str]) -> None:
    """A slot process: set its env (GPU pinning) before anything imports torch, then serve jobs."""
    os.environ.update(env)
    from harness.executors.worker import run_cell

    try:  # import what every cell needs before the cell's clock starts
        import harness.cell  # noqa: F401
        import torch  # noqa: F401
    except ImportError:  # pragma: no cover
        pass
    while True:
        try:
            job = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if job is None:
            return
        conn.send({"started": True})
        conn.send(run_cell(job))


@dataclass
class _Slot:
    index: int
    env: dict[str, str]
    proc: Any = None
    conn: Connection | None = None
    job: tuple[PlannedCell, dict[str, Any], int] | None = None  # (cell, job, attempt)
    started: float | None = None  # when the slot began the cell (None: not yet)
    started_iso: str = ""


class LocalConfig(ExecutorConfig):
    """Options of the local executor."""

    workers: int | None = Field(
        None, description="Worker processes (one per GPU, pinned with CUDA_VISIBLE_DEVICES; on CPU in parallel, "
        "the cores shared among them). 1 = in this process. Default: $HARNESS_WORKERS, else one per GPU on a GPU "
        f"device, else one per CPU core (at most {AUTO_CPU_WORKERS}); never more than the cells to compute.",
        json_schema_extra={"cli": "--workers", "metavar": "N"})

    @field_validator("workers")
    @classmethod
    def _at_least_one(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("must be at least 1")
        return v


class LocalExecutor(Executor):
    """Cells on this machine: in-process, or ``workers`` spawned processes (one per GPU)."""

    name = "local"
    description = "this machine (in this process, or a pool of worker processes)"
    Config = LocalConfig

    def __init__(self, config: LocalConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        c = self.config
        self.workers, self.cell_timeout, self.max_retries = c.workers, c.cell_timeout, c.max_retries

    # ------------------------------------------------------------------ in-process
    def _run_inline(self, todo: list[PlannedCell], store: Store, registries: Registries, device: str,
                    force: bool, progress: bool, tally: Tally) -> None:
        from harness.context import resolve_device
        from harness.cell import compute_cell, publish_record

        resolved = resolve_device(device) if todo else "cpu"
        for pc in todo:
            if not force and store.is_done(pc.cell.suite, pc.key):  # recorded meanwhile by another sweep
                tally.add(pc, "skipped")
                continue
            record = compute_cell(pc, store, registries, device=resolved, progress=progress)
            outcome = publish_record(record, store, force=force)
            tally.add(pc, outcome, record if outcome != "skipped" else None)

    def run(self, cells: list[PlannedCell], store: Store, registries: Registries, *, device: str = "auto",
            force: bool = False, progress: bool = True, on_cell: OnCell | None = None) -> RunSummary:
        tally = Tally(store, on_cell)
        todo = split_todo(cells, store, force, tally)
        n = self.slot_count(device, len(todo))
        if n == 1 and self.cell_timeout is None:
            self._run_inline(todo, store, registries, device, force, progress, tally)
        elif todo:
            self._run_pool(n, todo, store, registries, device, force, tally)
        return tally.summary

    def slot_count(self, device: str, cells: int) -> int:
        """Processes for ``cells`` cells to compute: ``workers``, else :func:`auto_workers`; never more than the
        cells (at least 1)."""
        return max(1, min(self.workers if self.workers is not None else auto_workers(device), cells))

    # ------------------------------------------------------------------ pool
    def _slot_envs(self, device: str, n: int) -> list[dict[str, str]]:
        gpus = visible_gpus() if device != "cpu" else []
        envs = []
        for i in range(n):
            env: dict[str, str] = {}
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
            elif n > 1:  # CPU: share the cores instead of oversubscribing them n times
                threads = str(max(1, (os.cpu_count() or 1) // n))
                for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                    env[var] = os.environ.get(var, threads)
            envs.append(env)
        if gpus and n > len(gpus):
            log.warning("%d workers share %d GPU(s); cells on one GPU compete for its memory.", n, len(gpus))
        return envs

    @staticmethod
    def _start(ctx: Any, slot: _Slot) -> None:
        parent, child = ctx.Pipe()
        slot.proc = ctx.Process(target=_slot_main, args=(child, slot.env), name=f"harness-worker-{slot.index}")
        slot.proc.start()
        child.close()
        slot.conn = parent

    @staticmethod
    def _stop(slot: _Slot, *, kill: bool) -> None:
        if slot.proc is None:
            return
        if kill:
            slot.proc.kill()
        else:
            try:
                slot.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        slot.proc.join(timeout=None if kill else 10)
        if slot.proc.is_alive():
            slot.proc.kill()
            slot.proc.join()
        slot.conn.close()
        slot.proc, slot.conn = None, None

    def _run_pool(self, n: int, todo: list[PlannedCell], store: Store, registries: Registries, device: str,
                  force: bool, tally: Tally) -> None:
        _Pool(self, n, todo, store, registries, device, force, tally).run()


class _Pool:
    """One pool sweep: hand cells out to idle slots, wait for a message or a deadline, settle.

    A slot's message is "started" (its cell's clock starts) or the cell's result; a slot whose
    process died has its cell retried (``max_retries``) or recorded failed; a cell running past
    ``cell_timeout`` has its process killed and is recorded failed.
    """

    def __init__(self, ex: LocalExecutor, n: int, todo: list[PlannedCell], store: Store, registries: Registries,
                 device: str, force: bool, tally: Tally) -> None:
        plugins = plugin_set_payload(registries)
        sweep = uuid.uuid4().hex
        self.ex, self.tally = ex, tally
        self.queue: deque[tuple[PlannedCell, dict[str, Any], int]] = deque(
            (pc, {**make_job(pc, store, plugins, device=device, force=force), "sweep": sweep}, 0) for pc in todo
        )
        self.ctx = mp.get_context("spawn")
        self.slots = [_Slot(i, env) for i, env in enumerate(ex._slot_envs(device, n))]

    def run(self) -> None:
        try:
            while self.queue or self.busy():
                self.hand_out()
                ready = self.wait()
                self.settle(ready, time.monotonic())
        finally:
            for slot in self.slots:
                LocalExecutor._stop(slot, kill=slot.job is not None)

    def busy(self) -> list[_Slot]:
        return [s for s in self.slots if s.job]

    def hand_out(self) -> None:
        """Give the next queued cell to each idle slot (restarting a slot whose process is gone)."""
        from harness.provenance import now_iso

        for slot in self.slots:
            if slot.job is None and self.queue:
                if slot.proc is not None and not slot.proc.is_alive():
                    LocalExecutor._stop(slot, kill=True)
                if slot.proc is None:
                    LocalExecutor._start(self.ctx, slot)
                slot.job, slot.started, slot.started_iso = self.queue.popleft(), None, now_iso()
                slot.conn.send(slot.job[1])

    def wait(self) -> list[Any]:
        """Block until a busy slot sends a message or dies, or the earliest cell deadline passes."""
        busy = self.busy()
        timeout = None
        clocks = [s.started for s in busy if s.started is not None]
        if self.ex.cell_timeout is not None and clocks:
            timeout = max(0.0, min(clocks) + self.ex.cell_timeout - time.monotonic())
        return wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout=timeout)

    def settle(self, ready: list[Any], now: float) -> None:
        """Act on each busy slot: a message or a death if it is ready, else a passed deadline."""
        for slot in self.busy():
            if slot.conn in ready or slot.proc.sentinel in ready:
                self._receive(slot, now)
            elif (self.ex.cell_timeout is not None and slot.started is not None
                  and now - slot.started >= self.ex.cell_timeout):
                self._timed_out(slot, now)

    def _receive(self, slot: _Slot, now: float) -> None:
        from harness.provenance import now_iso

        try:
            result = slot.conn.recv()
        except (EOFError, OSError):  # the process died mid-cell
            self._died(slot, now)
            return
        if "started" in result:  # the slot began the cell: its clock starts now
            slot.started, slot.started_iso = time.monotonic(), now_iso()
            return
        pc = slot.job[0]
        slot.job = None
        self.tally.add(pc, result["outcome"])

    def _died(self, slot: _Slot, now: float) -> None:
        from harness.executors.worker import record_failure

        pc, job, attempt = slot.job
        slot.proc.join(5)
        code = slot.proc.exitcode
        LocalExecutor._stop(slot, kill=True)
        slot.job = None
        if attempt < self.ex.max_retries:
            log.warning("worker died on cell %s (exit code %s); retrying", pc.key[:12], code)
            self.queue.appendleft((pc, job, attempt + 1))
            return
        outcome = record_failure(job, "WorkerDied", f"worker process died (exit code {code})",
                                 started=slot.started_iso, wall_s=now - (slot.started or now))
        self.tally.add(pc, outcome)

    def _timed_out(self, slot: _Slot, now: float) -> None:
        from harness.executors.worker import TIMEOUT_ERROR, record_failure

        pc, job, _ = slot.job
        LocalExecutor._stop(slot, kill=True)
        slot.job = None
        timeout = self.ex.cell_timeout
        log.error("cell %s / %s / %s: timeout after %gs, killed", pc.cell.suite, pc.label, pc.cell.model, timeout)
        outcome = record_failure(job, TIMEOUT_ERROR, f"timeout after {timeout:g}s",
                                 started=slot.started_iso, wall_s=now - (slot.started or now))
        self.tally.add(pc, outcome)
