"""The built-in datasets, registered through ``register_datasets`` like any third-party plugin
(entry point ``datasets``, so a ``HARNESS_LOAD_PLUGINS`` list that runs a suite on the world
must include it): the providers of :mod:`harness.datasets.providers` and the presets of
:mod:`harness.datasets.presets`."""

from __future__ import annotations

from harness import hookimpl
from harness.datasets.presets import PRESETS
from harness.datasets.providers import HFDataset, LocalDataset, WorldDataset


@hookimpl
def register_datasets(register):  # noqa: ANN001
    register(WorldDataset)
    register(LocalDataset)
    register(HFDataset)
    for preset in PRESETS:
        register(preset)
