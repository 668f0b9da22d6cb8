"""Torch-free toy plugins for core tests: a model source, a method, a metric and a suite."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import Field

from harness import hookimpl
from harness.config import PluginConfig
from harness.protocols import Intervention, ModelSource, ReportedMetric, Suite, UnlearningMethod
from harness.results import SuiteOutput


class ToySource(ModelSource):
    name = "toy"
    description = "Models that are just names."

    def list_models(self):
        return ["a", "b"]

    def resolve(self, name, revision):
        return {"name": name, "revision": revision, "fingerprint": f"toy-{name}-{revision}"}

    def load(self, name, revision, *, device, dtype):
        return {"name": name, "size": len(name)}


class ToyIntervention(Intervention):
    def __init__(self, strength: float) -> None:
        self.id = f"toy-{strength}"
        self.strength = strength

    def apply(self, model):  # pragma: no cover - not used by the toy suite
        from contextlib import nullcontext

        return nullcontext(model)


class ToyEraser(UnlearningMethod):
    name = "toy_eraser"
    description = "Erases by a fixed strength."

    class Config(PluginConfig):
        strength: float = Field(0.5, ge=0, le=1, description="How much is erased.")

    def fit(self, model, forget, retain, *, seed):
        return ToyIntervention(self.config.strength)


class ToyScore(ReportedMetric):
    name = "toy_score"
    description = "Residual signal after erasure."
    higher_is_better = False
    scope = "intervention"


class ToySuite(Suite):
    name = "toy_suite"
    description = "A toy comparison of erasers."
    method_kinds = ("unlearning_method",)
    metrics = ("toy_score",)
    default_models = ("toy:a",)

    class Config(PluginConfig):
        fail_label: str | None = Field(None, description="Raise for this method (tests fault isolation).")
        calls: list[str] = Field(default_factory=list, description="unused")
        hang_label: str | None = Field(None, description="Hang (sleep an hour) for this method (tests timeouts).")
        sleep_s: float = Field(0.0, ge=0, description="Sleep this long in every cell (tests parallelism).")
        bad_output_label: str | None = Field(None, description="Return a bad output for this method (fault tests).")
        bad_output: str = Field("nan", description="nan | inf | type: what the bad output is.")
        crash_once_dir: str | None = Field(
            None, description="The first method cell to run kills its process (os._exit(13)), leaving a marker "
            "file in this folder; later cells run normally (tests worker death and retries)."
        )

    def run(self, cell):
        model = cell.load_model()
        method = cell.method
        if method is not None and method.name == self.config.fail_label:
            raise RuntimeError("boom")
        if method is not None and method.name == self.config.hang_label:
            time.sleep(3600)
        if self.config.sleep_s:
            time.sleep(self.config.sleep_s)
        if method is not None and self.config.crash_once_dir:
            folder = Path(self.config.crash_once_dir)
            folder.mkdir(parents=True, exist_ok=True)
            try:
                with open(folder / "crashed", "x") as fh:  # exactly one cell wins the marker
                    fh.write(f"{cell.model_ref} seed {cell.seed} pid {os.getpid()}")
            except FileExistsError:
                pass
            else:
                os._exit(13)
        if method is not None and method.name == self.config.bad_output_label:
            if self.config.bad_output == "type":
                return {"toy_score": 1.0}  # not a SuiteOutput
            return SuiteOutput(metrics=[cell.metric("toy_score").value(float(self.config.bad_output), n=1)])
        strength = method.fit(model, None, None, seed=cell.seed).strength if method else 0.0
        signal = (1.0 - strength) * model["size"] + 0.01 * cell.seed
        return SuiteOutput(metrics=[cell.metric("toy_score").value(signal, n=1)])


@hookimpl
def register_models(register):
    register(ToySource)


@hookimpl
def register_unlearning_methods(register):
    register(ToyEraser)


@hookimpl
def register_metrics(register):
    register(ToyScore)


@hookimpl
def register_suites(register):
    register(ToySuite)
