"""Light base of the built-in SAE plugins: registers without importing torch.

The registered class (e.g. ``harness_plugins.topk.TopK``) carries name, description,
paper and Config; ``create``/``load`` import the torch implementation lazily. The
implementation subclasses both :class:`harness.sae.base.SAEBase` (``torch.nn.Module``)
and the registered class, so ``isinstance(sae, TopK)`` holds for what they return.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, ClassVar

from harness.config import PluginConfig
from harness.errors import HarnessError
from harness.protocols import DictionaryLearner


class LazySAE(DictionaryLearner):
    """Registered facade: ``impl`` = "package.module:Class" of the torch implementation."""

    impl: ClassVar[str]

    @classmethod
    def implementation(cls) -> type[Any]:
        """The class ``impl`` names: "package.module:Class", ".module:Class" (relative to the
        registered class's package) or ":Class" (the registered class's own module, e.g. a
        one-file plugin in ``--plugins-dir``)."""
        if "impl" not in cls.__dict__:  # already the implementation (or a subclass of it)
            return cls
        module, _, attr = cls.impl.partition(":")
        here = cls.__module__
        try:
            if not module:
                mod = sys.modules[here]
            elif module.startswith("."):
                is_package = hasattr(sys.modules.get(here), "__path__")
                mod = importlib.import_module(module, here if is_package else here.rpartition(".")[0] or None)
            else:
                mod = importlib.import_module(module)
            return getattr(mod, attr)
        except (ImportError, AttributeError, TypeError, KeyError) as e:
            raise HarnessError(
                f'Dictionary learner "{cls.name}": its impl "{cls.impl}" cannot be imported ({type(e).__name__}: '
                f'{e}). Use "package.module:Class", ".module:Class" relative to {here}, or ":Class" for a class '
                "in the same file (one-file plugins in --plugins-dir)."
            ) from None

    @classmethod
    def create(cls, d_in: int, config: PluginConfig | dict[str, Any] | None = None, *, seed: int = 0) -> Any:
        return cls.implementation().create(d_in, config, seed=seed)

    @classmethod
    def check(cls, config: PluginConfig, shape: Any) -> list[str]:
        """``k`` (latents kept per token, where the config has one) must be at most d_sae at ``shape.d_in``."""
        from harness.sae.config import SAEConfig
        from harness.validation import at_most_problems, dictionary_size_problems

        d_in = shape.d_in
        if not isinstance(config, SAEConfig) or d_in is None:
            return []
        d_sae = config.resolve_d_sae(d_in)
        size = f"d_sae = {config.d_sae}" if config.d_sae is not None else \
            f"expansion_factor {config.expansion_factor} x d_in {d_in}"
        at = f" at {shape.hook}" if shape.hook else ""
        field = "d_sae" if config.d_sae is not None else "expansion_factor"
        return [
            *dictionary_size_problems(field, d_sae, d_in, f"{size}{at} of {shape.name}"),
            *at_most_problems(
                "k", getattr(config, "k", None), d_sae, "d_sae",
                f"lower k to at most {d_sae}, or raise d_sae / expansion_factor", f"{size}{at} of {shape.name}",
            ),
        ]

    @classmethod
    def load(cls, directory: Path | str) -> Any:
        return cls.implementation().load(directory)
