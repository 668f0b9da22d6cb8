"""Which world a loaded model was trained on: only a zoo build knows its generating features.

A zoo checkpoint folder (``<root>/<name>/<revision>/``) holds ``zoo_meta.json``, and its model
folder a ``zoo_model.json`` whose ``build`` records the world seed, the tiny flag and the world
version. :func:`world_of` rebuilds that world; for any other model (a hub model, a user's
folder, a zoo build of another world version) it returns None, so a metric that needs the
world's known features can decline instead of scoring a model on text it never saw.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.zoo.world import WORLD_VERSION, World, world_for


def zoo_build_of(path: str | Path | None) -> dict[str, Any] | None:
    """The ``build`` record of the zoo checkpoint folder ``path``, or None when it is not one."""
    if path is None:
        return None
    folder = Path(path)
    record = folder.parent / "zoo_model.json"
    if not (folder / "zoo_meta.json").is_file() or not record.is_file():
        return None
    try:
        build = json.loads(record.read_text()).get("build")
    except (OSError, ValueError):
        return None
    return build if isinstance(build, dict) and "seed" in build else None


def world_of(loaded: Any) -> World | None:
    """The world a :class:`~harness.models.LoadedModel` was trained on, or None (not a zoo build of
    this world version)."""
    build = zoo_build_of(getattr(loaded, "path", None))
    if build is None or str(build.get("world_version", WORLD_VERSION)) != WORLD_VERSION:
        return None
    return world_for(int(build["seed"]), bool(build.get("tiny", False)))
