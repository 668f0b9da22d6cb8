"""Model source "zoo": the embedded Pythia-style miniature suite (committed checkpoints).

An unknown name or revision raises :class:`harness.zoo.ZooModelNotFoundError` (a HarnessError:
one line, exit 2) from ``resolve`` and ``shape``, i.e. while the run is planned.
"""

from __future__ import annotations

from typing import Any

from harness import hookimpl
from harness.protocols import ModelSource


class ZooModels(ModelSource):
    name = "zoo"
    description = "The embedded miniature Pythia-style suite trained on the generated world (offline)."

    def list_models(self) -> list[str]:
        from harness.zoo import list_zoo_models

        return list_zoo_models()

    def resolve(self, name: str, revision: str | None) -> dict[str, Any]:
        from harness.models.loading import resolve_model
        from harness.zoo import zoo_model_path

        path = zoo_model_path(name, revision or "main")
        r = resolve_model(path)
        return {"name": name, "revision": revision or "main", "fingerprint": r.fingerprint}

    def shape(self, name: str, revision: str | None) -> Any:
        from harness.validation import ModelShape
        from harness.zoo import zoo_model_path

        rev = f"@{revision}" if revision else ""
        return ModelShape.from_folder(zoo_model_path(name, revision or "main"), f"zoo:{name}{rev}")

    def load(self, name: str, revision: str | None, *, device: str, dtype: str) -> Any:
        from dataclasses import replace

        from harness.models.loading import load_model
        from harness.zoo import zoo_model_path

        loaded = load_model(zoo_model_path(name, revision or "main"), device=device, dtype=dtype)
        return replace(loaded, name=name, revision=revision or "main")


@hookimpl
def register_models(register):
    register(ZooModels)
