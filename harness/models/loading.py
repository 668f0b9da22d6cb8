"""Load any Hugging Face causal LM (hub name or local folder), safetensors only.

:func:`load_model` is the one entry point: it resolves the name to a local folder
(:func:`resolve_model`; the Hugging Face cache, or the network unless ``HF_HUB_OFFLINE``
is set), refuses pickle checkpoints, picks device and dtype, and returns a
:class:`LoadedModel`. :func:`model_fingerprint` gives a short, stable id of the weights
for cache keys and run records.

Fingerprints, in order of preference:

1. a hub model with a known commit: hash of ``name@commit``;
2. a local folder: hash over the bytes of its ``*.safetensors`` files and ``config.json``;
3. an in-memory model (or ``from_weights=True``): hash over every parameter and buffer
   tensor (name, dtype, shape, bytes).

The fingerprint names the checkpoint, not the dtype it was loaded in: cache keys that
depend on numerics add the dtype themselves (see :mod:`harness.models.cache`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "LoadedModel",
    "ModelLoadError",
    "ResolvedModel",
    "load_model",
    "model_fingerprint",
    "resolve_device",
    "resolve_dtype",
    "resolve_model",
]

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "tokenizer*"]
_DTYPE_ALIASES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "auto": "auto",
}  # fmt: skip


class ModelLoadError(HarnessError):
    """A model could not be found, fetched, or loaded; the message says why and how to fix it."""


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are, without loading any weights."""

    name: str
    revision: str | None
    path: Path
    commit: str | None  #: hub commit hash; None for a local folder
    fingerprint: str


@dataclass
class LoadedModel:
    """A loaded causal LM with its tokenizer and provenance.

    ``tokenizer`` is None when the folder has no tokenizer files (e.g. a bare
    ``save_pretrained`` of a model); :meth:`require_tokenizer` raises a clear error then.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase | None
    name: str
    revision: str | None
    path: Path | None
    commit: str | None
    device: torch.device
    dtype: torch.dtype
    architecture: str
    n_layers: int
    d_model: int
    fingerprint: str | None = field(default=None, repr=False)

    @property
    def config(self) -> Any:
        """The model's (text) config."""
        return self.model.config

    def require_tokenizer(self) -> PreTrainedTokenizerBase:
        """The tokenizer, or a :class:`ModelLoadError` naming the folder that lacks one."""
        if self.tokenizer is None:
            raise ModelLoadError(
                f"Model {self.name!r} was loaded without a tokenizer (no {', '.join(_TOKENIZER_FILES)} in "
                f"{self.path}). Save one next to the weights (tokenizer.save_pretrained(folder)) or pass token ids."
            )
        return self.tokenizer


# --------------------------------------------------------------------------- device / dtype
def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> cuda when available else cpu; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` checked."""
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    text = str(device).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ModelLoadError(
                f"device={device!r} but CUDA is not available (torch {torch.__version__}, "
                f"built with CUDA {torch.version.cuda}). Use device='cpu' or device='auto'."
            )
        dev = torch.device(text)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ModelLoadError(
                f"device={device!r} but only {torch.cuda.device_count()} CUDA device(s) are visible."
            )
        return dev
    raise ModelLoadError(f"Unknown device {device!r}: use 'cpu', 'cuda', 'cuda:N' or 'auto'.")


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``"auto"`` -> float32 on cpu, bfloat16 on cuda when supported (else float32).

    float16 on cpu is refused: many CPU kernels lack it or are slow and inexact.
    """
    import torch

    if isinstance(dtype, torch.dtype):
        name = str(dtype).removeprefix("torch.")
    else:
        name = _DTYPE_ALIASES.get(str(dtype).strip().lower(), "")
    if name not in ("float32", "bfloat16", "float16", "auto"):
        raise ModelLoadError(f"Unknown dtype {dtype!r}: use 'float32', 'bfloat16', 'float16' or 'auto'.")
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if name == "float16" and device.type == "cpu":
        raise ModelLoadError(
            "dtype='float16' on device 'cpu' is not supported: many CPU kernels lack float16 or are slow and "
            "inexact. Use dtype='float32' (or 'bfloat16') on cpu, or float16 on cuda."
        )
    return getattr(torch, name)


# --------------------------------------------------------------------------- resolving
def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set, read at call time."""
    return _env_flag("HF_HUB_OFFLINE") or _env_flag("TRANSFORMERS_OFFLINE")


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text


def _check_weights(folder: Path, label: str) -> None:
    """Refuse folders without safetensors weights; name any pickle checkpoint found."""
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{label}: no config.json in {folder}; this is not a Hugging Face model folder.")
    if any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.name.endswith(_PICKLE_SUFFIXES))
    if pickles:
        raise ModelLoadError(
            f"{label}: refusing to load pickle checkpoint {pickles[0]!r} in {folder} "
            f"(found {', '.join(pickles)}; no *.safetensors). Pickle files can run arbitrary code when loaded, "
            "so harness loads safetensors only. Convert once in a trusted environment: "
            "AutoModelForCausalLM.from_pretrained(folder).save_pretrained(new_folder) writes model.safetensors."
        )
    raise ModelLoadError(f"{label}: no *.safetensors weights in {folder}.")


def _hash_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _hub_fingerprint(name: str, commit: str) -> str:
    return hashlib.sha256(f"hf:{name}@{commit}".encode()).hexdigest()[:16]


def resolve_model(name_or_path: str | os.PathLike[str], *, revision: str | None = None) -> ResolvedModel:
    """Find a model's files (local folder, HF cache, or a download) and fingerprint them.

    Downloads only config, tokenizer and ``*.safetensors`` files; never pickles.
    Raises :class:`ModelLoadError` with a fix when the model cannot be found.
    """
    text = os.fspath(name_or_path)
    local = Path(text).expanduser()
    if local.is_dir():
        if revision is not None:
            raise ModelLoadError(
                f"revision={revision!r} was given for the local folder {text!r}: a folder holds one version. "
                "Pass the folder of that revision instead (or a hub name with revision=...)."
            )
        _check_weights(local, f"Model folder {text!r}")
        files = [*local.glob("*.safetensors"), local / "config.json"]
        return ResolvedModel(text, None, local.resolve(), None, _hash_files(files))
    if _looks_like_path(text) or local.exists():
        raise ModelLoadError(f"Model folder {text!r} does not exist (or is not a folder). Check the path.")
    return _resolve_hub(text, revision)


def _resolve_hub(name: str, revision: str | None) -> ResolvedModel:
    from huggingface_hub import constants, snapshot_download

    offline = hub_offline()
    shown = f"{name!r}" + (f" (revision {revision!r})" if revision else "")
    try:
        folder = Path(
            snapshot_download(name, revision=revision, allow_patterns=_HUB_PATTERNS, local_files_only=offline)
        )
    except Exception as exc:  # noqa: BLE001 - every hub failure becomes one clear message
        why = (
            "HF_HUB_OFFLINE is set, so the network is not tried"
            if offline
            else "it could not be downloaded (no network, or no such repository/revision)"
        )
        raise ModelLoadError(
            f"Cannot load model {shown}: it is not a local folder, it is not in the local Hugging Face cache "
            f"({constants.HF_HUB_CACHE}), and {why} [{type(exc).__name__}: {exc}]. Fix: download it where there "
            f"is network (e.g. `hf download {name}`), then pass the local folder path, or set HF_HOME / "
            "HF_HUB_CACHE to a cache that holds it."
        ) from exc
    _check_weights(folder, f"Model {shown}")
    commit = folder.name if folder.parent.name == "snapshots" else None
    fingerprint = (
        _hub_fingerprint(name, commit)
        if commit
        else _hash_files([*folder.glob("*.safetensors"), folder / "config.json"])
    )
    return ResolvedModel(name, revision, folder, commit, fingerprint)


def _check_safetensors_readable(files: list[Path]) -> None:
    """Open each file's header so a truncated or corrupt file is named before transformers runs."""
    from safetensors import safe_open

    for f in files:
        try:
            with safe_open(str(f), framework="pt") as fh:
                keys = list(fh.keys())
                if keys:
                    fh.get_slice(keys[-1])  # the last tensor's range must lie inside the file
        except Exception as exc:  # noqa: BLE001 - any parse failure means the file is unusable
            raise ModelLoadError(
                f"Weight file {f} is corrupt or truncated ({type(exc).__name__}: {exc}). Download or save it again."
            ) from exc


# --------------------------------------------------------------------------- loading
def load_model(
    name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    attn_implementation: str | None = None,
) -> LoadedModel:
    """Load a causal LM and its tokenizer (if the folder has one) in eval mode.

    Args:
        name_or_path: a hub name (``"EleutherAI/pythia-70m"``) or a local folder.
        revision: hub branch, tag or commit (hub names only).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (cuda when available).
        dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``"auto"`` (fp32 on cpu,
            bf16 on cuda when supported).
        attn_implementation: passed to transformers (None: its default, usually sdpa).
            Attention-pattern hook points work with any choice (see
            :mod:`harness.models.attention`).
    """
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    resolved = resolve_model(name_or_path, revision=revision)
    kwargs: dict[str, Any] = {"use_safetensors": True}
    kwargs["dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"] = torch_dtype
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    weight_files = sorted(resolved.path.glob("*.safetensors"))
    _check_safetensors_readable(weight_files)
    shown = ", ".join(f.name for f in weight_files)
    try:
        model, info = AutoModelForCausalLM.from_pretrained(resolved.path, output_loading_info=True, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(
            f"transformers could not load {resolved.name!r} from {resolved.path} ({shown} with config.json): "
            f"{type(exc).__name__}: {exc}. If the shapes do not match, the weights and config.json are from "
            "different models."
        ) from exc
    missing = sorted(info.get("missing_keys") or [])
    if missing:  # transformers would silently leave these randomly initialised
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ModelLoadError(
            f"{resolved.path}: {shown} lacks weights the model needs: {', '.join(missing[:5])}{more}. "
            "The checkpoint is incomplete or from another architecture; re-save it with save_pretrained."
        )
    model.to(dev).eval()
    tokenizer = None
    if any((resolved.path / f).is_file() for f in _TOKENIZER_FILES):
        try:
            tokenizer = AutoTokenizer.from_pretrained(resolved.path)
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(
                f"Could not load the tokenizer of {resolved.name!r} from {resolved.path}: {exc}"
            ) from exc
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=resolved.name,
        revision=resolved.revision,
        path=resolved.path,
        commit=resolved.commit,
        device=dev,
        dtype=torch_dtype,
        architecture=(getattr(cfg, "architectures", None) or [type(model).__name__])[0],
        n_layers=int(cfg.num_hidden_layers),
        d_model=int(cfg.hidden_size),
        fingerprint=resolved.fingerprint,
    )


def _tensor_fingerprint(module: torch.nn.Module) -> str:
    import torch

    digest = hashlib.sha256()
    state = module.state_dict(keep_vars=False)
    seen: dict[tuple[Any, ...], str] = {}
    for name in sorted(state):
        tensor = state[name]
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\0".encode())
        key = (tensor.device, tensor.data_ptr(), tuple(tensor.shape), tensor.stride(), tensor.dtype)
        if tensor.numel() and key in seen:
            digest.update(f"tied:{seen[key]}".encode())  # tied weights: hash the bytes once
            continue
        seen[key] = name
        flat = tensor.detach().reshape(-1).contiguous().cpu()
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()[:16]


def model_fingerprint(model: LoadedModel | torch.nn.Module, *, from_weights: bool = False) -> str:
    """A stable 16-hex-digit id of a model's weights, for cache keys and run records.

    A :class:`LoadedModel` reuses the fingerprint computed when it was loaded (hub commit or
    file hash) unless ``from_weights=True``; use that after editing weights in place. A bare
    ``nn.Module`` is always hashed tensor by tensor (about a second per few hundred MB).
    """
    if isinstance(model, LoadedModel):
        if model.fingerprint and not from_weights:
            return model.fingerprint
        return _tensor_fingerprint(model.model)
    return _tensor_fingerprint(model)
