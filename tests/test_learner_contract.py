"""The learner contract is checked when a learner is created; LazySAE's impl resolves from
a one-file plugin; an SAE-suite cell with a broken learner fails at creation, named."""

import textwrap

import pytest

torch = pytest.importorskip("torch")

from harness.errors import HarnessError  # noqa: E402
from harness.plugins import discover, Registries  # noqa: E402
from harness.protocols import LearnerSpec  # noqa: E402
from harness.sae.contract import LearnerContractError  # noqa: E402

ONE_FILE_LEARNER = textwrap.dedent(
    '''
    import torch

    from harness import hookimpl
    from harness.sae.base import SAEBase
    from harness.sae.config import SAEConfig
    from harness.sae.plugin import LazySAE


    class Mine(LazySAE):
        name = "mine"
        description = "A one-file learner."
        Config = SAEConfig
        impl = ":MineSAE"  # a class of this very file


    class MineSAE(SAEBase, Mine):
        SHAPE_BUG = False

        def encode(self, x):
            f = torch.relu(self.encode_pre(x))
            return f[:, : self.d_sae // 2] if self.SHAPE_BUG else f

        def loss(self, x, step, total_steps):
            f = self.encode(x)
            return (self.decode(f) - x).pow(2).sum(-1).mean(), {}


    class Broken(Mine):
        name = "broken"
        impl = ":BrokenSAE"


    class BrokenSAE(MineSAE, Broken):
        SHAPE_BUG = True


    class Missing(Mine):
        name = "missing"
        impl = "no_such_module_xyz:Foo"


    @hookimpl
    def register_dictionary_learners(register):
        register(Mine)
        register(Broken)
        register(Missing)
    '''
)


@pytest.fixture
def regs(tmp_path):
    (tmp_path / "mine.py").write_text(ONE_FILE_LEARNER)
    return Registries(discover(entry_points=False, plugins_dirs=[tmp_path]))


def test_impl_resolves_in_a_one_file_plugin(regs):
    learners = regs["dictionary_learner"]
    sae = LearnerSpec(learners.get("mine"), learners.get("mine").Config(d_sae=32)).create(8, seed=0)
    assert sae.encode(torch.randn(3, 8)).shape == (3, 32)


def test_wrong_encode_shape_is_refused_at_creation_naming_method_and_shapes(regs):
    cls = regs["dictionary_learner"].get("broken")
    with pytest.raises(LearnerContractError) as e:
        LearnerSpec(cls, cls.Config(d_sae=32)).create(8, seed=0)
    assert str(e.value) == ('Dictionary learner "broken": encode(x of shape [4, 8]) returned shape [4, 16]; '
                            "expected [4, 32].")


def test_train_sae_checks_the_contract_too(regs):
    from harness.sae import train_sae

    cls = regs["dictionary_learner"].get("broken")
    with pytest.raises(LearnerContractError, match="returned shape"):
        train_sae(cls, cls.Config(d_sae=32), torch.randn(64, 8), steps=2, batch_size=32, progress=False)


def test_unimportable_impl_names_the_learner_and_the_fix(regs):
    cls = regs["dictionary_learner"].get("missing")
    with pytest.raises(HarnessError, match='Dictionary learner "missing": its impl "no_such_module_xyz:Foo" cannot be '
                                           'imported .*":Class" for a class in the same file'):
        cls.create(8, cls.Config(d_sae=16))


def test_probe_leaves_rng_and_mode_untouched():
    from harness.sae.contract import check_learner
    from harness.testing import registries_with

    cls = registries_with(builtins=True)["dictionary_learner"].get("vsae_topk")  # samples noise when training
    sae = cls.create(8, cls.Config(d_sae=32, k=4), seed=0)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    check_learner(sae, 8, "vsae_topk")
    assert torch.equal(torch.get_rng_state(), before) and sae.training
