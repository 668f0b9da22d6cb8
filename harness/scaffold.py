"""`harness new-plugin NAME --kind KIND`: a ready-to-install plugin package.

Creates ``harness-<name>/`` with a pyproject registering the entry point (group
``harness``), the module with a working example of the kind, a README with a citation
block, and a test that passes as generated.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.errors import HarnessError
from harness.kinds import get_kind, kind_names

_METRIC_BODY = '''
class {cls}(Metric):
    """Mean absolute parameter value of the model (replace with your metric)."""

    name = "{name}"
    description = "Mean |w| over every parameter of the model, times a scale."
    higher_is_better = False
    scope = "model"  # compute receives harness.metric_inputs.ModelInputs
    unit = ""

    class Config(PluginConfig):
        scale: float = Field(1.0, description="Multiplies the mean.")

    def compute(self, inputs: ModelInputs) -> MetricValue:
        module = getattr(inputs.model, "model", inputs.model)  # a harness LoadedModel or a bare torch module
        total, count = 0.0, 0
        for p in module.parameters():
            total += float(p.detach().abs().sum())
            count += p.numel()
        return self.value(self.config.scale * total / count, n=count)
'''

_SUITE_BODY = '''
class {cls}Params(Metric):
    """Parameter count of the model, in millions."""

    name = "{name}_params"
    description = "Number of model parameters (millions)."
    higher_is_better = False
    scope = "model"  # compute receives harness.metric_inputs.ModelInputs
    unit = "M"

    def compute(self, inputs: ModelInputs) -> float:
        return sum(p.numel() for p in inputs.model.model.parameters()) / 1e6


class {cls}(Suite):
    """Scores each model by its size (replace with your benchmark)."""

    name = "{name}"
    description = "Model size in millions of parameters."
    metrics = ("{name}_params",)
    default_models = ("zoo:zoo-s",)

    class Config(PluginConfig):
        pass

    def run(self, cell: CellContext) -> SuiteOutput:
        inputs = ModelInputs(model=cell.load_model(), seed=cell.seed, device=cell.device)
        # every computed model-scope metric named here; values the suite computes itself use
        # cell.metric(name).value(...) (declare those as harness.protocols.ReportedMetric)
        return SuiteOutput(metrics=cell.compute_metrics(inputs, ["{name}_params"]))
'''

_LEARNER_BODY = '''
class {cls}Config(SAEConfig):
    """Every field of SAEConfig (expansion_factor / d_sae, lr, unit_norm_decoder, ...) plus yours."""

    l1_coefficient: float = Field(1e-2, ge=0, description="Weight of the L1 penalty on the latents.")


class {cls}(LazySAE):
    """Registered without importing torch; create()/load() import the implementation in .model."""

    name = "{name}"
    description = "ReLU SAE with an L1 penalty (replace with your learner)."
    paper = None  # e.g. "arXiv:2406.04093"
    Config = {cls}Config
    impl = ".model:{cls}SAE"  # relative to this package (":Class" = this very module)
'''

_LEARNER_MODEL = '''"""The torch side of {name}: SAEBase gives W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in],
b_dec (SAELens names), encode / decode, initialisation, dead-latent tracking, save / load
(cfg.json + sae_weights.safetensors, readable by SAELens) and the trainer's hooks."""

import torch

from harness.sae.base import SAEBase

from . import {cls}


class {cls}SAE(SAEBase, {cls}):
    architecture = "standard"  # SAELens architecture written to cfg.json: standard | topk | jumprelu

    def encode(self, x):
        return torch.relu(self.encode_pre(x))  # encode_pre: (x - b_dec if configured) @ W_enc + b_enc

    def loss(self, x, step, total_steps):
        """(loss, logs). Logs the trainer aggregates: mse, l0, and sse / sst (explained variance)."""
        f = self.encode(x)
        x_hat = self.decode(f)
        e = x - x_hat
        mse = e.pow(2).sum(-1).mean()
        loss = mse + self.config.l1_coefficient * f.abs().sum(-1).mean()
        with torch.no_grad():
            active = f > 0
            self.update_firing(active.any(0), x.shape[0])  # dead-latent bookkeeping
            logs = {{"mse": mse.detach(), "l0": active.sum(-1).float().mean(),
                    "sse": e.pow(2).sum(), "sst": (x - x.mean(0)).pow(2).sum()}}
        return loss, logs
'''

_GENERIC_BODY = '''
class {cls}({base}):
    """{doc}"""

    name = "{name}"
    description = "Describe your method in one line."
    paper = None  # e.g. "arXiv:2509.22994"

    class Config(PluginConfig):
        strength: float = Field(1.0, description="An example hyper-parameter.")

    # Implement the abstract methods of harness.protocols.{base}; see its docstrings.
'''


def _module(name: str, kind: str) -> str:
    cls = "".join(p.capitalize() for p in re.split(r"[_\-]", name))
    spec = get_kind(kind)
    base, hook = spec.base_name, spec.hook
    imports = ["from pydantic import Field", "", "from harness import hookimpl", "from harness.config import PluginConfig"]
    if spec.scaffold == "dictionary_learner":
        imports = ["from pydantic import Field", "", "from harness import hookimpl", "from harness.sae.config import SAEConfig",
                   "from harness.sae.plugin import LazySAE"]
        body, registered = _LEARNER_BODY.format(cls=cls, name=name), [cls]
    elif spec.scaffold == "metric":
        imports += ["from harness.metric_inputs import ModelInputs", "from harness.protocols import Metric",
                    "from harness.results import MetricValue"]
        body, registered = _METRIC_BODY.format(cls=cls, name=name), [cls]
    elif spec.scaffold == "suite":
        imports += ["from harness.context import CellContext", "from harness.metric_inputs import ModelInputs",
                    "from harness.protocols import Metric, Suite", "from harness.results import SuiteOutput"]
        body, registered = _SUITE_BODY.format(cls=cls, name=name), [cls]
    else:
        imports.append(f"from {spec.base_module} import {base}")
        doc = f"A {kind.replace('_', ' ')} (fill in the abstract methods of {base})."
        body, registered = _GENERIC_BODY.format(cls=cls, name=name, base=base, doc=doc), [cls]
    hooks = f"\n\n@hookimpl\ndef {hook}(register):\n" + "".join(f"    register({c})\n" for c in registered)
    if spec.scaffold == "suite":
        hooks += f"\n\n@hookimpl\ndef register_metrics(register):\n    register({cls}Params)\n"
    return f'"""harness plugin {name}: a {kind.replace("_", " ")}."""\n\n' + "\n".join(imports) + "\n" + body + hooks


def _test(name: str, kind: str) -> str:
    pkg = f"harness_{name.replace('-', '_')}"
    extra, imports = "", ""
    if get_kind(kind).scaffold == "dictionary_learner":
        extra = (
            f'\n\ndef test_trains_and_loss_falls(harness_registries_with, tmp_path):\n'
            f'    import torch\n\n'
            f'    from harness.sae import load_sae, train_sae\n\n'
            f'    regs = harness_registries_with(("{name}", {pkg}))\n'
            f'    cls = regs["dictionary_learner"].get("{name}")\n'
            f'    gen = torch.Generator().manual_seed(0)\n'
            f'    x = torch.randn(4096, 16, generator=gen) @ torch.randn(16, 16, generator=gen)\n'
            f'    sae, log = train_sae(cls, cls.Config(expansion_factor=2, lr=3e-3), x, steps=200, batch_size=256,\n'
            f'                         log_every=20, progress=False)\n'
            f'    first, last = log.records[0]["loss"], log.records[-1]["loss"]\n'
            f'    assert last < 0.5 * first, (first, last)\n'
            f'    sae.save(tmp_path)\n'
            f'    back = load_sae(tmp_path, regs)\n'
            f'    assert torch.allclose(back.decode(back.encode(x[:8])), sae.decode(sae.encode(x[:8])))\n'
        )
    elif get_kind(kind).scaffold == "metric":
        imports = "import torch\n\nfrom harness.metric_inputs import ModelInputs\n\n"
        extra = (
            f'\n\ndef test_computes(harness_registries_with):\n'
            f'    regs = harness_registries_with(("{name}", {pkg}))\n'
            f'    metric = regs.metrics.get("{name}")()\n'
            f'    net = torch.nn.Linear(3, 2)  # 6 weights + 2 biases\n'
            f'    with torch.no_grad():\n'
            f'        net.weight.fill_(2.0)\n'
            f'        net.bias.fill_(-2.0)\n'
            f'    value = metric.compute(ModelInputs(model=net))\n'
            f'    assert value.value == 2.0 and value.n == 8\n'
        )
    return (
        f"{imports}import {pkg}\n\n\n"
        f"def test_registers_and_round_trips(harness_registries_with):\n"
        f'    regs = harness_registries_with(("{name}", {pkg}))\n'
        f'    cls = regs["{kind}"].get("{name}")\n'
        f"    cfg = cls.Config()\n"
        f"    assert cls.Config.model_validate_json(cfg.model_dump_json()) == cfg\n" + extra
    )


def scaffold(name: str, kind: str, parent: Path) -> Path:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise HarnessError(f'Plugin name "{name}" must be lowercase letters, digits and "_", starting with a letter.')
    if kind not in kind_names():
        get_kind(kind)  # raises, naming the known kinds
    pkg = f"harness_{name}"
    root = Path(parent) / f"harness-{name.replace('_', '-')}"
    if root.exists():
        raise HarnessError(f"{root} already exists; choose another name or --dir.")
    (root / pkg).mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "harness-{name.replace("_", "-")}"\nversion = "0.1.0"\n'
        f'description = "harness plugin: {name}"\nrequires-python = ">=3.11"\n'
        f'dependencies = ["harness-interp"]\n\n'
        f'[project.entry-points.harness]\n{name} = "{pkg}"\n\n'
        f'[tool.setuptools]\npackages = ["{pkg}"]\n'
    )
    (root / pkg / "__init__.py").write_text(_module(name, kind))
    if get_kind(kind).scaffold == "dictionary_learner":
        cls = "".join(p.capitalize() for p in re.split(r"[_\-]", name))
        (root / pkg / "model.py").write_text(_LEARNER_MODEL.format(cls=cls, name=name))
    (root / "tests" / f"test_{name}.py").write_text(_test(name, kind))
    (root / "README.md").write_text(
        f"# harness-{name.replace('_', '-')}\n\nA harness {kind.replace('_', ' ')} plugin.\n\n"
        f"## Install and check\n\n```\npip install -e .\nharness plugins | grep {name}\npytest\n```\n\n"
        "## Paper\n\n```bibtex\n@article{key,\n  title = {Title},\n  author = {Authors},\n"
        "  journal = {arXiv preprint arXiv:XXXX.XXXXX},\n  year = {2026}\n}\n```\n\n"
        "## Faithful vs reconstructed\n\n- Faithful to the paper / authors' code: ...\n- Our choices: ...\n"
    )
    return root
