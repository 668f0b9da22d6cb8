"""Hallucination mitigators (fine-tuning protocols) and the suite "hallucination".

Mitigators (kind ``hallucination_mitigator``; ``apply(model, texts, *, seed)`` returns a fine-tuned COPY):
``send`` (Sensitive Neuron Dropout, arXiv 2410.15460), ``continued_training`` (plain fine-tuning),
``random_neuron_dropout`` (SeND's schedule and rate, random neurons), ``standard_dropout`` (dropout
on the MLP hidden units). All share :func:`.finetune.finetune` and its defaults (AdamW, lr 1e-3,
batch 32, 6 epochs), so rows differ only in the mitigation. Heavy code lives in the submodules; the
paired test of SeND against continued training (the board's summary) in :mod:`.paired`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from harness import hookimpl
from harness.config import PluginConfig, key_neutral
from harness.datasets import DatasetRef, dataset_field
from harness.errors import HarnessError
from harness.evaluation.capability import CapabilityConfig
from harness.metric_inputs import GenerationsInputs
from harness.metric_selection import SelectsMetrics, extra_metric_names, keep
from harness.protocols import HallucinationMitigator, Metric, Suite
from harness.results import MetricValue, SuiteOutput
from harness.stats import binomial_stderr, mean_stderr
from harness_plugins.hallucination_detectors.questions import QA_PROMPT

if TYPE_CHECKING:  # pragma: no cover
    from harness.context import CellContext


class _TrainConfig(PluginConfig):
    epochs: int = Field(6, ge=1, description="Fine-tuning epochs over the texts.")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate (1e-3 moves a zoo model within a few epochs).")
    batch_size: int = Field(32, ge=1, description="Texts per optimiser step.")


class _Mitigator(HallucinationMitigator):
    Config = _TrainConfig

    def _model_tok(self, model: Any) -> tuple[Any, Any]:
        tok = getattr(model, "tokenizer", None)
        if tok is None:
            raise TypeError(f"{self.name}.apply needs a harness LoadedModel (model + tokenizer); got {type(model).__name__}.")
        return model.model, tok

    def _finetune(self, model: Any, texts: Any, seed: int, **hooks: Any) -> Any:
        import dataclasses

        from .finetune import finetune

        net, tok = self._model_tok(model)
        c = self.config
        trained = finetune(net, tok, list(texts), epochs=c.epochs, lr=c.lr, batch_size=c.batch_size, seed=seed, **hooks)
        return dataclasses.replace(model, model=trained)

    def apply(self, model: Any, data: Any, *, seed: int) -> Any:
        return self._finetune(model, data, seed)


class ContinuedTraining(_Mitigator):
    name = "continued_training"
    description = "Plain fine-tuning on the fact texts (the reference every mitigator is compared against)."


class PaperProtocol(PluginConfig):
    """SeND's training protocol (arXiv 2410.15460; the authors' ``send/send_pythia.py``), reconstructed: the
    data split into training, tracking and held-out texts; after every epoch the Efficient EigenScore of the
    held-out texts; training stops when that EES has converged."""

    tracking_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="Share of the texts kept out of training whose activations select the "
        "neurons (the authors' script: 10%, after the 80% it trains on).",
    )  # fmt: skip
    heldout_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="Share of the texts kept out of training whose Efficient EigenScore is "
        "measured after every epoch (the authors' script: the last 10%).",
    )  # fmt: skip
    tolerance: float = Field(
        0.01, ge=0, description="Stop after an epoch whose held-out EES changed by at most this fraction of the "
        "previous epoch's (|EES_t - EES_t-1| <= tolerance x |EES_t-1|); 0 = never stop early.",
    )  # fmt: skip
    min_epochs: int = Field(2, ge=1, description="Epochs trained before the stopping rule is applied.")
    n_moments: int = Field(20, ge=2, description="Chebyshev moments of the Efficient EigenScore (paper: 20).")
    n_probes: int = Field(20, ge=1, description="Hutchinson probe vectors of the Efficient EigenScore (paper: 20).")


def ees_converged(values: list[float], tolerance: float, min_epochs: int) -> bool:
    """The stopping rule of :class:`PaperProtocol` on the held-out EES after epochs 0 (before training), 1, ...:
    True once at least ``min_epochs`` epochs ran and the last change is within ``tolerance`` of the previous value."""
    epochs = len(values) - 1
    if epochs < max(min_epochs, 1) or tolerance <= 0:
        return False
    prev, last = values[-2], values[-1]
    return abs(last - prev) <= tolerance * abs(prev)


def split_protocol_texts(texts: list[str], protocol: PaperProtocol) -> tuple[list[str], list[str], list[str]]:
    """(training, tracking, held-out) texts in the data's order: training first, then tracking, then held out
    (the authors' 80 / 10 / 10 order); each part needs at least two texts."""
    n = len(texts)
    n_held = int(round(protocol.heldout_fraction * n))
    n_track = int(round(protocol.tracking_fraction * n))
    n_train = n - n_held - n_track
    if min(n_held, n_track, n_train) < 2:
        raise HarnessError(
            f"paper_protocol: {n} texts split into {n_train} training, {n_track} tracking and {n_held} held-out "
            "texts; each part needs at least 2. Fix: give more texts, or raise paper_protocol.tracking_fraction / "
            "heldout_fraction."
        )
    return texts[:n_train], texts[n_train : n_train + n_track], texts[n_train + n_track :]


class _DropConfig(_TrainConfig):
    every_epochs: int = Field(2, ge=1, description="Re-select and zero neurons every this many epochs.")
    drop_fraction: float = Field(
        0.2, gt=0, lt=1, description="Fraction of the block's MLP neurons zeroed (paper: the top 20-30%)."
    )
    layer: int = Field(-2, description="Block whose MLP neurons are dropped (-2 = penultimate, as in SeND).")
    n_track: int = Field(64, ge=2, description="Tracking texts (the first ones of the data).")


class SensitiveNeuronDropout(_Mitigator):
    name = "send"
    description = (
        "SeND: every `every_epochs` epochs zero the MLP neurons of the penultimate block with the highest "
        "NetChange x Var of their activation at the second-to-last token over checkpoints; kept zero until the next selection."
    )
    paper = "arXiv:2410.15460"

    class Config(_DropConfig):
        variability: Literal["checkpoints", "examples"] = Field(
            "checkpoints", description="Var over checkpoints (paper) or over tracking examples (authors' code)."
        )
        paper_protocol: PaperProtocol | None = Field(
            None, json_schema_extra=key_neutral(),
            description="SeND's own protocol (set `{}` for its defaults): tracking and held-out texts kept out of "
            "training, the held-out Efficient EigenScore after every epoch, and its stopping rule. None = the fixed "
            "schedule on all texts (tracking texts = the first n_track, trained on too).",
        )  # fmt: skip

    @classmethod
    def check(cls, config: PluginConfig, shape: Any) -> list[str]:
        """The dropped block must be a layer of the model."""
        from harness.validation import layer_problems

        return layer_problems("layer", [config.layer], shape)

    def select(self, checkpoints: list, n: int, rng: Any) -> list[int]:
        from .send import sensitivity, top_fraction

        return top_fraction(sensitivity(checkpoints, self.config.variability), self.config.drop_fraction)

    def apply(self, model: Any, data: Any, *, seed: int) -> Any:
        import numpy as np

        from .finetune import n_neurons, zero_neurons
        from .send import track

        net, tok = self._model_tok(model)
        c, texts = self.config, list(data)
        protocol = getattr(c, "paper_protocol", None)
        layer = c.layer % model.n_layers
        n = n_neurons(net, layer)
        rng = np.random.default_rng(seed)
        state: dict[str, Any] = {"ckpts": [], "mask": [], "history": [], "ees": []}
        if protocol is None:
            train_texts, tracking, heldout = texts, texts[: c.n_track], []
        else:
            train_texts, tracking, heldout = split_protocol_texts(texts, protocol)

        def on_epoch(m: Any, epoch: int) -> bool:
            state["ckpts"].append(track(m, tok, tracking, layer))
            if epoch > 0 and epoch % c.every_epochs == 0 and epoch < c.epochs:
                state["mask"] = self.select(state["ckpts"], n, rng)
                state["history"].append((epoch, state["mask"]))
                zero_neurons(m, layer, state["mask"])
                state["ckpts"] = state["ckpts"][-1:]
            if protocol is None:
                return False
            state["ees"].append(heldout_ees(m, tok, heldout, model.n_layers, protocol, seed))
            return ees_converged(state["ees"], protocol.tolerance, protocol.min_epochs)

        def after_step(m: Any) -> None:
            if state["mask"]:
                zero_neurons(m, layer, state["mask"])

        out = self._finetune(model, train_texts, seed, on_epoch=on_epoch, after_step=after_step)
        history: dict[str, Any] = {"layer": layer, "dropped": state["history"]}
        if protocol is not None:
            history["protocol"] = {
                "texts": {"train": len(train_texts), "tracking": len(tracking), "heldout": len(heldout)},
                "heldout_ees": [round(v, 5) for v in state["ees"]],  # after epoch 0 (before training), 1, 2, ...
                "epochs_trained": len(state["ees"]) - 1,
                "stopped_early": len(state["ees"]) - 1 < c.epochs,
            }
        out.model.mitigation_history = history
        return out


def heldout_ees(model: Any, tokenizer: Any, texts: list[str], n_layers: int, protocol: PaperProtocol, seed: int) -> float:
    """Efficient EigenScore of the held-out texts' embeddings (the penultimate block's output at each text's
    second-to-last token, as the authors' script reads ``hidden_states[-2][:, -2]``): K = the held-out texts."""
    from harness_plugins.hallucination_detectors.scores import efficient_eigenscore

    from .send import second_to_last

    z = second_to_last(model, tokenizer, texts, f"blocks.{max(n_layers - 2, 0)}.hook_resid_post")
    return efficient_eigenscore(z, n_moments=protocol.n_moments, n_probes=protocol.n_probes, seed=seed)


class RandomNeuronDropout(SensitiveNeuronDropout):
    name = "random_neuron_dropout"
    description = "SeND's schedule and rate, but the dropped neurons are drawn uniformly at random (control)."
    paper = ""

    def select(self, checkpoints: list, n: int, rng: Any) -> list[int]:
        k = max(1, int(round(self.config.drop_fraction * n)))
        return sorted(int(i) for i in rng.choice(n, size=k, replace=False))


class StandardDropout(_Mitigator):
    name = "standard_dropout"
    description = "Fine-tuning with dropout p on every block's MLP hidden units (inverted dropout, training only)."

    class Config(_TrainConfig):
        p: float = Field(0.1, gt=0, lt=1, description="Dropout probability on the MLP hidden units.")

    def apply(self, model: Any, data: Any, *, seed: int) -> Any:
        import torch.nn.functional as F

        from .finetune import mlp_modules

        p, handles = self.config.p, []

        def on_epoch(m: Any, epoch: int) -> None:  # epoch 0: hook the copy being trained, before any step
            if epoch == 0:
                for layer in range(model.n_layers):
                    down = mlp_modules(m, layer)[1]
                    handles.append(down.register_forward_pre_hook(
                        lambda mod, args: (F.dropout(args[0], p, mod.training), *args[1:])))

        out = self._finetune(model, data, seed, on_epoch=on_epoch)
        for h in handles:
            h.remove()
        return out


MITIGATORS = (SensitiveNeuronDropout, ContinuedTraining, RandomNeuronDropout, StandardDropout)


class KnownFactAccuracy(Metric):
    name = "known_fact_accuracy"
    description = "Greedy exact-match accuracy on the world's frequent (known) facts: what fine-tuning must keep."
    higher_is_better = True
    scope = "generations"
    unit = "fraction"

    def compute(self, inputs: GenerationsInputs) -> MetricValue:
        y = [float(1 - v) for v in inputs.labels]
        if not y:
            raise ValueError("known_fact_accuracy needs at least one question (GenerationsInputs.labels is empty).")
        n, p = len(y), sum(y) / len(y)
        return self.value(p, key=inputs.key, stderr=binomial_stderr(p, n), n=n)


class AnswerEigenScore(Metric):
    name = "answer_eigenscore"
    description = "Mean EigenScore of K sampled answers over questions (key: exact | ees); lower = more consistent."
    paper = "arXiv:2410.15460"
    higher_is_better = False
    scope = "generations"
    unit = "nats"

    def compute(self, inputs: GenerationsInputs) -> list[MetricValue]:
        """Keys ``exact`` (INSIDE EigenScore) and ``ees`` (SeND's Efficient EigenScore) over ``inputs.samples``."""
        import numpy as np

        from harness_plugins.hallucination_detectors.scores import efficient_eigenscore, eigenscore

        if len(inputs.samples) < 2:
            raise ValueError("answer_eigenscore needs the K sampled answers of at least 2 questions (GenerationsInputs.samples).")
        out = []
        for key, fn in (("exact", eigenscore), ("ees", efficient_eigenscore)):
            v = np.asarray([fn(q.embeddings) for q in inputs.samples], float)
            out.append(self.value(float(v.mean()), key=key, stderr=mean_stderr(v), n=len(v)))
        return out


PRESETS: dict[str, int] = {"quick": 6, "full": 16}  # K sampled answers per question
#: Questions per evaluated split of each preset (None = every fact): the default run's 3 seeds x 5 rows fit
#: its time budget with 200; `full` asks every fact.
QUESTIONS: dict[str, int | None] = {"quick": 200, "full": None}


def questions_per_split(cfg: Any) -> int | None:
    """The config's questions per split, else its preset's."""
    return cfg.questions_per_split if cfg.questions_per_split is not None else QUESTIONS[cfg.preset]


class HallucinationSuite(Suite):
    name = "hallucination"
    description = (
        "Fine-tune on the zoo world's rare + medium facts (or a QA set's training items: qa) with each mitigator "
        "(same data, epochs, seed); hallucination rate on rare and held-out facts, accuracy on frequent facts "
        "(all facts of each split), "
        "EigenScore of the answers, zero-shot lm-eval accuracy change vs the un-fine-tuned model; "
        "SeND against continued training by a paired test on the same questions."
    )
    method_kinds = ("hallucination_mitigator",)
    include_baseline = True
    metrics = ("hallucination_rate", "known_fact_accuracy", "answer_eigenscore", "capability_delta", "capability_acc")
    version = "2"  # whole pools, per-question outcomes for the paired test, SeND drops 20%
    default_seeds = (0, 1, 2)
    default_models = ("zoo:zoo-96",)

    class Config(SelectsMetrics, CapabilityConfig):
        metric_scope = "generations"  # registered computed generations metrics are columns (metrics: include/exclude)

        @classmethod
        def not_extra(cls, metric_cls: type[Any]) -> bool:
            """Detectors (``detector = True``) are scored through hallucination_auroc, not as columns."""
            return bool(getattr(metric_cls, "detector", False))

        preset: Literal["quick", "full"] = Field(
            "quick", description="'quick' (K=6 sampled answers per question, 200 questions per split) or 'full' "
            "(K=16, every fact of each evaluated split); questions_per_split and k override them."
        )
        qa: DatasetRef = dataset_field(
            "qa", "Questions with answer aliases and an optional tag column (the split); default: the world's facts."
        )
        qa_prompt: str = Field(
            QA_PROMPT, description="Prompt of a user QA set's question ({question} is replaced; the world's facts are "
            "prompts already); its fine-tuning texts are '<prompt> <first answer>.'."
        )
        train_splits: tuple[str, ...] = Field(
            ("rare", "medium"), description="Splits (tags) fine-tuned on: the world's fact sentences, or a tagged user "
            "QA set's items (an untagged set: a fixed half of its items)."
        )
        questions_per_split: int | None = Field(
            None, ge=2, description="Questions per evaluated split (a sample, seed 0; a split with fewer is asked "
            "whole); None = the preset's (quick 200, full every fact; the world has 732 rare, 130 held-out, 146 "
            "frequent)."
        )
        k: int | None = Field(None, ge=2, description="Sampled answers per question for the EigenScores; None = preset.")

    @classmethod
    def check(cls, config: PluginConfig, shape: Any) -> list[str]:
        """Capability task names must exist (zoo, lm-eval, or under capability_include_paths); ``qa_prompt``
        must format with ``{question}``."""
        from harness_plugins.hallucination_detectors.questions import qa_prompt_problems

        return config.capability_problems() + qa_prompt_problems(config.qa_prompt)

    def run(self, cell: CellContext) -> SuiteOutput:
        import random

        from harness.results import content_hash
        from harness_plugins.hallucination_detectors import generations_inputs
        from harness_plugins.hallucination_detectors.questions import open_qa
        from harness_plugins.hallucination_detectors.sampling import sample_prompts

        cfg = cell.suite_config
        k = cfg.k or PRESETS[cfg.preset]
        qa, world = open_qa(cell, cfg.qa)
        texts, evaluated = _world_data(world, cfg) if world is not None else _user_data(qa, cfg)
        random.Random(cell.seed).shuffle(texts)
        base = loaded = cell.load_model()
        if cell.method is not None:
            loaded = cell.method.apply(loaded, texts, seed=cell.seed)
            cell.evaluated_model = loaded
        out, all_q = [], []
        outcomes, outcome_metrics, question_sets = {}, {}, {}
        for key, metric, questions in evaluated:
            qs = sample_prompts(loaded, [q.prompt for q in questions], [q.answers for q in questions], k=k,
                                temperature=1.0, max_new_tokens=4, pooling="last", seed=cell.seed, progress=cell.progress)
            all_q += qs
            out += cell.compute_metrics(generations_inputs(qs, seed=cell.seed, device=cell.device, key=key),
                                        keep(cfg, [metric]))
            right = metric == "known_fact_accuracy"  # the outcome each metric averages: wrong answers, or right ones
            outcomes[key] = "".join(str(int(q.hallucinated != right)) for q in qs)
            outcome_metrics[key] = f"{metric}[{key}]"
            question_sets[key] = content_hash([q.prompt for q in qs])[:16]
        every = keep(cfg, ["answer_eigenscore"]) + extra_metric_names(cfg, cell.registries)  # a third party's too
        out += cell.compute_metrics(generations_inputs(all_q, seed=cell.seed, device=cell.device), every)
        details = {"train_texts": len(texts), "k": k, "history": getattr(loaded.model, "mitigation_history", None),
                   "questions": {s: len(o) for s, o in outcomes.items()}, "outcomes": outcomes,
                   "outcome_metrics": outcome_metrics, "question_sets": question_sets}
        if cfg.capability_tasks:
            from .capability import capability_values

            values, details["capability"] = capability_values(cell, loaded, base if cell.method is not None else None)
            out += values
        return SuiteOutput(metrics=out, details=details)

    @classmethod
    def summarize(cls, records: list[Any], out_dir: Any) -> str | None:
        """The paired test of SeND against continued training on the same questions (:mod:`.paired`)."""
        from .paired import paired_table

        return paired_table(records)


Evaluated = list[tuple[str, str, list[Any]]]
"""(key, metric, questions) per evaluated split: ``hallucination_rate`` or ``known_fact_accuracy`` of that key."""


def _world_data(world: Any, cfg: Any) -> tuple[list[str], Evaluated]:
    """The world: fact sentences of ``train_splits``; rare / heldout (hallucination rate) and frequent (accuracy)."""
    import random

    from harness_plugins.hallucination_detectors.questions import world_questions

    texts = [f.sentence for s in cfg.train_splits for f in world.facts_by_split(s)]
    rng, evaluated = random.Random(0), []
    for split in ("rare", "heldout", "frequent"):
        metric = "known_fact_accuracy" if split == "frequent" else "hallucination_rate"
        evaluated.append((split, metric, world_questions(world, (split,), questions_per_split(cfg), rng)))
    return texts, evaluated


def _user_data(qa: Any, cfg: Any) -> tuple[list[str], Evaluated]:
    """A user QA set: fine-tune on "<prompt> <first answer>." of the training items, ask every split.

    Tagged: the items whose tag is in ``train_splits`` are the training items; every tag is asked
    (``hallucination_rate[<tag>]``). Untagged: a fixed half of the items (seed 0) is fine-tuned on
    (``hallucination_rate[trained]``), the other half never seen (``hallucination_rate[heldout]``).
    """
    import random

    from harness_plugins.hallucination_detectors.questions import tags_asked, user_questions

    every = user_questions(qa, cfg.qa_prompt)
    tags = tags_asked(every, None)
    if tags == [None]:
        order = list(range(len(every)))
        random.Random(0).shuffle(order)
        half = set(order[: len(every) // 2])
        if not half or len(half) == len(every):
            raise HarnessError(f"qa: {len(every)} question(s); an untagged QA set needs at least 2 (half fine-tuned on, "
                               "half held out). Fix: point qa at a larger set.")
        trained = [q for i, q in enumerate(every) if i in half]
        groups = [("trained", trained), ("heldout", [q for i, q in enumerate(every) if i not in half])]
    else:
        trained = [q for q in every if q.tag in cfg.train_splits]
        if not trained:
            raise HarnessError(f"train_splits: none of {list(cfg.train_splits)} is a tag of the QA set (tags: {tags}). "
                               "Fix: set train_splits to the tags whose items are fine-tuned on.")
        groups = [(t, [q for q in every if q.tag == t]) for t in tags]
    rng, evaluated = random.Random(0), []
    for key, pool in groups:
        n = questions_per_split(cfg)
        asked = pool if n is None else rng.sample(pool, min(n, len(pool)))
        evaluated.append((key, "hallucination_rate", asked))
    return [f"{q.prompt} {q.answers[0]}." for q in trained], evaluated


@hookimpl
def register_hallucination_mitigators(register):
    for cls in MITIGATORS:
        register(cls)


@hookimpl
def register_metrics(register):
    register(KnownFactAccuracy)
    register(AnswerEigenScore)


@hookimpl
def register_suites(register):
    register(HallucinationSuite)
