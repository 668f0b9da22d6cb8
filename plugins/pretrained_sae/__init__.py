"""Dictionary learner "pretrained_sae": evaluate an SAE that already exists instead of training one.

``methods: [{name: pretrained_sae, config: {path: saes/my-sae}, label: my-sae}]`` gives the
sae board a row for the SAE saved in that folder (written by ``harness train-sae``, SAELens,
sparsify or dictionary_learning; :func:`harness.sae.load_sae` reads them). The class is a
factory: ``create`` loads the folder (a learner of the class its files name), and the sae
suite, seeing ``pretrained = True``, neither trains nor sweeps it.

The config's ``content_hash`` (sha256 of the folder's ``cfg.json``, ``config.json`` and
``*.safetensors``) is filled in when the config is read, so it is part of the cell key: a
changed SAE gets new cells, never a stale record. Light module: torch loads in ``create``.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from harness import hookimpl
from harness.config import PluginConfig
from harness.errors import HarnessError
from harness.protocols import DictionaryLearner

#: Files whose bytes make an SAE folder's identity (weights and the configs that say how to read them).
HASHED = ("cfg.json", "config.json")


@lru_cache(maxsize=64)
def _hash_files(files: tuple[tuple[str, int, int], ...]) -> str:
    h = hashlib.sha256()
    for name, _, _ in files:
        p = Path(name)
        h.update(p.name.encode() + b"\0")
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return "sha256:" + h.hexdigest()


def content_hash(folder: str | Path) -> str | None:
    """sha256 over the SAE files of ``folder`` (names and bytes, sorted; cached by size and mtime);
    None when the folder has none of them."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    paths = sorted({*(folder / n for n in HASHED if (folder / n).is_file()), *folder.glob("*.safetensors")})
    if not paths:
        return None
    return _hash_files(tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths))


class PretrainedConfig(PluginConfig):
    path: str | None = Field(
        None, description="Folder of the saved SAE (cfg.json + *.safetensors, or a dictionary_learning ae.safetensors)."
    )
    format: Literal["auto", "harness", "saelens", "sparsify", "dictionary_learning"] = Field(
        "auto", description="Format of the folder; auto = from its files (harness covers SAELens folders)."
    )
    content_hash: str | None = Field(
        None,
        description="sha256 of the folder's SAE files; filled in when the config is read (so it is part of the cell "
        "key). Set it to pin an SAE: a folder whose files differ is refused.",
    )
    allow_hook_mismatch: bool = Field(
        False,
        description="Evaluate even where cfg.json's hook_name is not the suite's hook point (an SAE read at another "
        "hook point than it was trained on; refused by default).",
    )

    @model_validator(mode="before")
    @classmethod
    def _resolve_hash(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("content_hash") is None and isinstance(data.get("path"), str):
            found = content_hash(data["path"])
            if found is not None:
                data = {**data, "content_hash": found}
        return data


def _read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise HarnessError(f"{path} is not readable JSON ({e}).") from None
    return loaded if isinstance(loaded, dict) else {}


def _header_shape(path: Path, key: str) -> list[int] | None:
    """A tensor's shape from a safetensors header (no tensor is read)."""
    import struct

    try:
        with path.open("rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
    except (OSError, ValueError, struct.error):
        return None
    entry = header.get(key)
    return list(entry["shape"]) if isinstance(entry, dict) and "shape" in entry else None


def describe(folder: Path, fmt: str) -> dict[str, Any]:
    """What the folder says without loading weights: ``format`` (harness / saelens / sparsify /
    dictionary_learning), ``d_in`` and ``hook_name`` where known. Raises HarnessError for a folder
    :func:`harness.sae.load_sae` would refuse (unknown format, SAELens options harness lacks)."""
    from harness.sae.io import SPARSIFY_WEIGHTS, detect_format, learner_for_cfg

    found = detect_format(folder)
    if fmt != "auto" and {fmt, found} != {"harness", "saelens"} and fmt != found:
        raise HarnessError(f"{folder} looks like a {found} folder, not {fmt}; use format: auto or {found}.")
    if found == "harness":
        cfg = _read_json(folder / "cfg.json")
        learner_for_cfg(cfg)  # refuses SAELens options harness does not implement, naming each
        found = "harness" if isinstance(cfg.get("harness"), dict) or cfg.get("harness_learner") else "saelens"
        hook = cfg.get("hook_name") or (cfg.get("metadata") or {}).get("hook_name")
        return {"format": found, "d_in": cfg.get("d_in"), "hook_name": hook}
    if found == "sparsify":
        cfg = _read_json(folder / "cfg.json")
        shape = _header_shape(folder / SPARSIFY_WEIGHTS, "encoder.weight")  # [d_sae, d_in]
        return {"format": found, "d_in": cfg.get("d_in", shape[1] if shape else None), "hook_name": None}
    cfg = _read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    return {"format": found, "d_in": (cfg.get("trainer") or {}).get("activation_dim"), "hook_name": None}


class PretrainedSAE(DictionaryLearner):
    """Factory: :meth:`create` returns the learner saved in ``config.path`` (never a fresh one)."""

    name = "pretrained_sae"
    description = "An SAE already trained (harness train-sae, SAELens, sparsify, dictionary_learning): loaded, not trained."
    Config = PretrainedConfig
    #: The sae suite evaluates the SAE as saved: no training, no sweep.
    pretrained: ClassVar[bool] = True

    @classmethod
    def create(cls, d_in: int, config: PluginConfig | dict[str, Any] | None = None, *, seed: int = 0) -> Any:
        """Load ``config.path`` (seed unused: nothing is initialised) and check it reads width ``d_in``."""
        from harness.sae.io import load_sae

        cfg = cls.parse_config(config)
        problems = cls._folder_problems(cfg)
        if problems:
            raise HarnessError(f'dictionary learner "{cls.name}": ' + " ".join(problems))
        folder = Path(cfg.path)  # type: ignore[arg-type]
        info = describe(folder, cfg.format)
        sae = load_sae(folder, format=cfg.format)
        if int(sae.d_in) != int(d_in):
            raise HarnessError(f"{cls.name} path: the SAE in {folder} reads d_in = {sae.d_in}, but the activations it "
                               f"is evaluated on have width {d_in}. Fix: evaluate it at the hook point it was trained on.")
        sae.pretrained_source = {"format": info["format"], "path": str(folder), "content_hash": cfg.content_hash,
                                 "learner": getattr(sae, "name", type(sae).__name__), "hook_name": info["hook_name"]}
        return sae

    @classmethod
    def load(cls, directory: Path | str) -> Any:
        """Any saved SAE folder (:func:`harness.sae.load_sae`, format auto)."""
        from harness.sae.io import load_sae

        return load_sae(directory)

    @classmethod
    def _folder_problems(cls, config: Any) -> list[str]:
        if config.path is None:
            return ["path: not set; pretrained_sae needs the folder of a saved SAE. Fix: config: {path: DIR}, or "
                    "`harness eval-sae DIR --model M --hook H`."]
        folder = Path(config.path)
        if not folder.is_dir():
            return [f"path: no folder {config.path!r}. Fix: give the folder holding the SAE's cfg.json and weights."]
        found = content_hash(folder)
        if config.content_hash is not None and found != config.content_hash:
            return [f"content_hash: {config.path} now hashes to {found}, not the pinned {config.content_hash}. Fix: "
                    "point path at the SAE you pinned, or drop content_hash to evaluate the folder as it is."]
        return []

    @classmethod
    def check(cls, config: PluginConfig, shape: Any) -> list[str]:
        """The folder exists and is a format harness reads; its d_in is the width at the suite's hook
        point (``shape.d_in``), and its cfg.json hook_name (if any) is that hook point."""
        problems = cls._folder_problems(config)
        if problems:
            return problems
        try:
            info = describe(Path(config.path), config.format)  # type: ignore[attr-defined, arg-type]
        except HarnessError as e:
            return [f"path: {e}"]
        at = f" at {shape.hook}" if shape.hook else ""
        if info["d_in"] is not None and shape.d_in is not None and int(info["d_in"]) != shape.d_in:
            problems.append(f"path: the SAE in {config.path} reads d_in = {info['d_in']}, but {shape.name} has width "
                            f"{shape.d_in}{at}. Fix: evaluate it on the model and hook point it was trained on.")
        hook = info["hook_name"]
        if hook and shape.hook and not config.allow_hook_mismatch:  # type: ignore[attr-defined]
            try:
                trained_at = shape.resolve(str(hook)).name
            except Exception:  # noqa: BLE001 - a name this model does not know: compare as written
                trained_at = str(hook)
            if trained_at != shape.hook:
                problems.append(f"path: the SAE in {config.path} was trained at hook_name {hook!r} (cfg.json), but the "
                                f"suite reads {shape.hook!r}. Fix: set the suite's hook_point (eval-sae --hook) to "
                                f"{hook!r}, or allow_hook_mismatch: true to evaluate it there anyway.")
        return problems


@hookimpl
def register_dictionary_learners(register):
    register(PretrainedSAE)
