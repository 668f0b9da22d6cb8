import harness_example_metric.learner as learner_plugin


def test_registers_and_round_trips_its_config(harness_registries_with):
    regs = harness_registries_with(("example_learner", learner_plugin))
    cls = regs["dictionary_learner"].get("example_threshold_sae")
    cfg = cls.Config(threshold=0.1)
    assert cls.Config.model_validate_json(cfg.model_dump_json()) == cfg


def test_trains_a_few_steps_and_reloads(harness_registries_with, tmp_path):
    import torch

    from harness.sae import load_sae, train_sae

    regs = harness_registries_with(("example_learner", learner_plugin))
    cls = regs["dictionary_learner"].get("example_threshold_sae")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 16, generator=gen) @ torch.randn(16, 16, generator=gen)
    sae, log = train_sae(cls, cls.Config(expansion_factor=2, lr=3e-3, threshold=0.05), x, steps=60, batch_size=128,
                         log_every=10, progress=False)
    first, last = log.records[0]["loss"], log.records[-1]["loss"]
    assert last < first, (first, last)
    f = sae.encode(x[:64])
    assert bool(((f == 0) | (f > 0.05)).all())  # no latent fires at or below the threshold
    sae.save(tmp_path)
    back = load_sae(tmp_path, regs)
    assert type(back).name == "example_threshold_sae"
    assert torch.allclose(back.decode(back.encode(x[:8])), sae.decode(sae.encode(x[:8])))
