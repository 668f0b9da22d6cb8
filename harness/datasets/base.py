"""The ``dataset`` plugin kind: a provider of one or more data roles.

A dataset plugin is a :class:`Dataset` subclass with a ``name``, a pydantic ``Config``
(``extra="forbid"``) and the ``roles`` it provides; :meth:`Dataset.open` returns the role's
contract object (:mod:`harness.datasets.roles`). It is registered through the
``register_datasets`` hook, exactly as the built-in ``world``, ``local`` and ``hf``
providers are (entry point ``datasets``).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

from harness.protocols import Kind, Plugin


class Dataset(Plugin):
    """A data provider. Subclasses set ``roles`` and implement :meth:`open`."""

    kind: ClassVar[Kind] = "dataset"
    #: The roles this provider can open ("corpus", "labelled", "qa", "sequences", "entity_attributes").
    roles: ClassVar[tuple[str, ...]] = ()
    #: True when opening may need the network (a hub data set): a run using it does not switch
    #: the Hugging Face libraries to offline mode.
    network: ClassVar[bool] = False

    @abstractmethod
    def open(self, role: str) -> Any:
        """The object of ``role`` (an instance of ``harness.datasets.ROLES[role]``); bad data is a
        :class:`harness.errors.HarnessError` naming the config field and the fix."""

    def identity(self) -> dict[str, Any]:
        """What identifies the data (provider, path, revision, content hash): enters the cell key
        and the provenance. The default is the name and the validated config."""
        from harness.config import key_dump

        return {"dataset": self.name, "config": key_dump(self.config)}

    def problems(self, role: str) -> list[str]:
        """Cheap plan-time checks (a file exists, its columns are there); one line per problem,
        naming the field and the fix. The default has none."""
        return []

    def describe(self) -> str:
        """Short human description of this configured data set, for boards and ``harness datasets``."""
        return self.name
