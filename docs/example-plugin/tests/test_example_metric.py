import harness_example_metric

from harness.metric_inputs import ModelInputs


def test_registers_and_computes(harness_registries_with):
    import torch

    regs = harness_registries_with(("example_metric", harness_example_metric))
    metric = regs.metrics.get("embedding_anisotropy")()

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.e = torch.nn.Embedding(50, 8)

        def get_input_embeddings(self):
            return self.e

    value = metric.compute(ModelInputs(model=Tiny()))
    assert -1.0 <= value.value <= 1.0 and value.n == 4096
