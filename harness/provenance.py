"""Provenance of a run record: versions, git hash, device, times (README: "What `harness run` does")."""

from __future__ import annotations

import functools
import importlib.metadata as md
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from harness import __version__

TRACKED_PACKAGES = ("torch", "transformers", "lm_eval", "pluggy", "pydantic", "numpy", "tokenizers", "safetensors")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@functools.cache
def git_hash() -> str | None:
    """Commit of the harness source tree, with '+dirty' when it has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


@functools.cache
def package_versions() -> dict[str, str]:
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = md.version(name.replace("_", "-") if name == "lm_eval" else name)
        except md.PackageNotFoundError:
            continue
    return out


def device_description(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({platform.processor() or platform.machine()})"


def provenance(device: str, started_at: str, wall_time_s: float) -> dict[str, object]:
    return {
        "harness_version": __version__,
        "git_hash": git_hash(),
        "packages": package_versions(),
        "device": device_description(device),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "started_at": started_at,
        "finished_at": now_iso(),
        "wall_time_s": round(wall_time_s, 3),
    }
