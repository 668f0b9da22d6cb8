"""Model source "hf": any Hugging Face causal LM by hub name or local folder (safetensors only)."""

from __future__ import annotations

from typing import Any

from harness import hookimpl
from harness.protocols import ModelSource


class HFModels(ModelSource):
    name = "hf"
    description = "Any Hugging Face causal LM by hub name (needs network or the HF cache) or local folder."

    def list_models(self) -> list[str]:
        return []  # anything on the hub or on disk; nothing to enumerate offline

    def resolve(self, name: str, revision: str | None) -> dict[str, Any]:
        from harness.models.loading import resolve_model

        r = resolve_model(name, revision=revision)
        return {"name": r.name, "revision": r.revision, "commit": r.commit, "fingerprint": r.fingerprint}

    def shape(self, name: str, revision: str | None) -> Any:
        from harness.models.loading import resolve_model
        from harness.validation import ModelShape

        r = resolve_model(name, revision=revision)
        return ModelShape.from_folder(r.path, f"hf:{name}" + (f"@{revision}" if revision else ""))

    def load(self, name: str, revision: str | None, *, device: str, dtype: str) -> Any:
        from harness.models.loading import load_model

        return load_model(name, revision=revision, device=device, dtype=dtype)


@hookimpl
def register_models(register):
    register(HFModels)
