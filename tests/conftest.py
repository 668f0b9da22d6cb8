from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "toy"))
# Runs in the tests compute in-process (the local executor's automatic worker count would spawn a pool
# per run, and test-registered plugins live only in this process); tests of the pool set workers.
os.environ.setdefault("HARNESS_WORKERS", "1")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def toy_registries():
    import toy_plugins

    from harness.testing import registries_with

    return registries_with(("toy", toy_plugins))


def make_distribution(root: Path, name: str, entry_points: dict[str, str], version: str = "0.1") -> Path:
    """A minimal installed-distribution record under ``root`` (put ``root`` on sys.path / PYTHONPATH)."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    eps = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[harness]\n{eps}")
    return root

