"""Score an in-memory Hugging Face causal LM on lm-eval tasks through the real lm-eval.

The model is wrapped in ``lm_eval.models.huggingface.HFLM`` (no reload, no copy) and run
by ``lm_eval.simple_evaluate``; an optional intervention (hooks or weight edits) is active
for the whole evaluation. Results are cached per task by :mod:`harness.evaluation.cache`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError
from harness.evaluation.cache import CacheKey, ResultCache, model_fingerprint
from harness.evaluation.tasks import (
    StrPath,
    TaskLoadError,
    normalise_include_paths,
    task_config_hash,
    task_manager,
    task_spec,
    task_version,
    unknown_task_error,
)
from harness.evaluation.types import EvalResult, TaskResult, parse_metrics


@dataclass(frozen=True)
class NamedIntervention:
    """A context-manager factory with a stable id, e.g.
    ``NamedIntervention("ablate-L1-f12", lambda: hooks_that_ablate(model))``."""

    id: str
    factory: Callable[[], contextlib.AbstractContextManager[Any]]

    def __call__(self) -> contextlib.AbstractContextManager[Any]:
        return self.factory()


def intervention_id(intervention: Any) -> str | None:
    """The stable id an intervention declares (``id``, else ``config_hash``); None for none."""
    if intervention is None:
        return None
    ident = getattr(intervention, "id", None) or getattr(intervention, "config_hash", None)
    if not isinstance(ident, str) or not ident:
        raise HarnessError(
            f"intervention {intervention!r} has no stable id: give it a non-empty string attribute "
            "`id` (or `config_hash`) that changes whenever the edit changes, or wrap it as "
            "harness.evaluation.NamedIntervention(id, factory). Cached results are keyed on it."
        )
    return ident


def _intervention_context(intervention: Any, model: Any) -> contextlib.AbstractContextManager[Any]:
    """``harness.protocols.Intervention`` -> ``.apply(model)``; a factory -> ``factory()``."""
    if intervention is None:
        return contextlib.nullcontext()
    apply = getattr(intervention, "apply", None)
    if callable(apply):
        return apply(model)
    if callable(intervention):
        return intervention()
    raise HarnessError(
        f"intervention {intervention!r} is neither a callable returning a context manager "
        "nor an object with .apply(model) (harness.protocols.Intervention)."
    )


def _dedupe(names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        if not isinstance(n, str) or not n:
            raise HarnessError(f"tasks: expected task names (non-empty strings), got {n!r}.")
        if n not in out:
            out.append(n)
    if not out:
        raise HarnessError("tasks: no task names given.")
    return out


def _members(name: str, results: dict[str, Any], tm: Any) -> list[str]:
    """Result keys that belong to requested ``name``: itself, a group's subtasks, a tag's tasks."""
    entry = tm.task_index[name]
    if entry.kind.name == "TAG":
        names = sorted(entry.tags)
    else:
        names = [name]
    out: list[str] = []
    while names:
        n = names.pop(0)
        if n in out:
            continue
        if n in results["results"]:
            out.append(n)
        names.extend(results.get("group_subtasks", {}).get(n, []))
    return out


def _task_results(names: list[str], results: dict[str, Any], config_hash: str) -> dict[str, TaskResult]:
    out = {}
    for n in names:
        samples = results.get("n-samples", {}).get(n, {})
        out[n] = TaskResult(
            task=n,
            metrics=parse_metrics(results["results"][n]),
            higher_is_better=dict(results.get("higher_is_better", {}).get(n, {}) or {}),
            n_samples=samples.get("effective"),
            n_samples_total=samples.get("original"),
            num_fewshot=results.get("n-shot", {}).get(n),
            version=results.get("versions", {}).get(n),
            config_hash=config_hash,
        )
    return out


def evaluate_tasks(
    model: Any,
    tokenizer: Any,
    tasks: Sequence[str],
    *,
    include_paths: Iterable[StrPath] | None = None,
    include_defaults: bool | None = None,
    limit: int | float | None = None,
    num_fewshot: int | None = 0,
    batch_size: int = 16,
    device: str | None = None,
    seed: int = 0,
    intervention: Any = None,
    cache_dir: StrPath | None = None,
    model_id: str | None = None,
    bootstrap_iters: int = 1000,
    max_length: int | None = None,
) -> EvalResult:
    """Score ``model`` on lm-eval ``tasks`` and return acc / acc_norm (+ stderr) per task.

    Args:
        model: an in-memory ``transformers.PreTrainedModel`` (causal LM).
        tokenizer: its tokenizer (a ``PreTrainedTokenizer(Fast)`` instance).
        tasks: lm-eval task, group or tag names.
        include_paths: folders of local task YAMLs; default: ``harness/zoo/tasks`` when it exists.
        include_defaults: also index lm-eval's built-in tasks (piqa, arc_easy, ...). ``None``
            (auto): only when some requested name is not local (indexing them takes ~10 s,
            and their datasets need network or the HF datasets cache).
        limit: at most this many documents per task (a float < 1 is a fraction).
        num_fewshot: few-shot examples (0 = zero-shot; None = each task's default).
        batch_size: HFLM batch size.
        device: move the model there first (in place); None keeps the model where it is
            (HFLM ignores its own ``device`` for an in-memory model).
        seed: python / numpy / torch / few-shot seeds lm-eval sets.
        intervention: None, a callable returning a context manager, or a
            ``harness.protocols.Intervention`` (``.apply(model)``); it must carry a stable
            ``id`` (see :func:`intervention_id`). Active around the whole evaluation.
        cache_dir: folder of the result cache; None disables caching.
        model_id: identifies the weights in the cache key and the result; default: a
            sha256 fingerprint of the weights and tokenizer (:func:`model_fingerprint`).
        bootstrap_iters: lm-eval's bootstrap iterations for stderrs of non-mean metrics
            (0 = no stderrs).
        max_length: context length for HFLM (default: from the model config).

    Raises:
        UnknownTaskError: a name found in no include path (nor, when searched, in lm-eval).
        TaskLoadError: lm-eval could not build a task (e.g. its dataset is not available offline).
    """
    import lm_eval

    started = time.perf_counter()
    names = _dedupe(tasks)
    paths = normalise_include_paths(include_paths)
    local = task_manager(paths, include_defaults=False) if paths else None
    local_names = sorted(local.all_tasks) if local else []
    missing = [n for n in names if n not in local_names]
    use_defaults = bool(missing) if include_defaults is None else include_defaults
    tm = task_manager(paths, include_defaults=True) if use_defaults else local
    for n in names:
        if tm is None or n not in tm.task_index:
            all_names = tm.all_tasks if tm is not None else ()
            raise unknown_task_error(n, local_names, paths, defaults=use_defaults, all_names=all_names)
    assert tm is not None

    interv_id = intervention_id(intervention)
    if device is not None:
        model.to(device)
    if model_id is None:
        model_id = model_fingerprint(model, tokenizer)
    dtype = str(next(model.parameters()).dtype)
    cache = ResultCache(cache_dir) if cache_dir is not None else None

    keys: dict[str, CacheKey] = {}
    hashes: dict[str, str] = {}
    done: dict[str, TaskResult] = {}
    to_run: list[str] = []
    for n in names:
        hashes[n] = task_config_hash(n, tm)
        keys[n] = CacheKey(
            model_id=model_id,
            model_dtype=dtype,
            intervention_id=interv_id,
            task=n,
            task_config_hash=hashes[n],
            task_version=task_version(n, tm),
            limit=limit,
            num_fewshot=num_fewshot,
            bootstrap_iters=bootstrap_iters,
            seed=seed,
            lm_eval_version=lm_eval.__version__,
        )
        hit = cache.get(keys[n]) if cache else None
        if hit is None:
            to_run.append(n)
        else:
            done.update({k: v.model_copy(update={"cached": True}) for k, v in hit.items()})

    if to_run:
        results = _run_lm_eval(
            model, tokenizer, to_run, tm, local_names,
            limit=limit, num_fewshot=num_fewshot, batch_size=batch_size, seed=seed,
            intervention=intervention, bootstrap_iters=bootstrap_iters, max_length=max_length,
        )  # fmt: skip
        for n in to_run:
            fresh = _task_results(_members(n, results, tm), results, hashes[n])
            if cache:
                cache.put(keys[n], fresh)
            done.update(fresh)

    return EvalResult(
        model_id=model_id,
        intervention_id=interv_id,
        tasks=done,
        lm_eval_version=lm_eval.__version__,
        limit=limit,
        num_fewshot=num_fewshot,
        seed=seed,
        wall_time_s=time.perf_counter() - started,
    )


def _load_tasks(names: list[str], tm: Any, local_names: list[str]) -> list[Any]:
    """Build lm-eval Task/Group objects one name at a time, so a failure names its task."""
    built: list[Any] = []
    for n in names:
        try:
            loaded = tm.load([task_spec(n, tm)])
        except Exception as err:  # datasets / hub / YAML errors: re-raised with the task named
            from harness.network import network_hint

            if n in local_names:
                hint = "It is a local task: check its YAML and data files."
            else:
                hint = ("Standard lm-eval tasks download their dataset from the Hugging Face Hub: "
                        "this needs network access or a populated HF datasets cache (HF_DATASETS_CACHE).")
            offline = network_hint()
            if offline and (n not in local_names or _names_hub_dataset(tm, n)):
                hint = f"{hint} {offline}"
            raise TaskLoadError(f'lm-eval could not load task "{n}": {type(err).__name__}: {err}. {hint}') from err
        groups = loaded.get("groups") or {}
        # a group is passed whole (lm-eval then reports its aggregate); a task or tag as its tasks
        built.extend([groups[n]] if n in groups else loaded["tasks"].values())
    return built


#: ``datasets.load_dataset`` builders that read local files (``dataset_path: json`` + data_files).
_DATASETS_LOADERS = frozenset({"json", "csv", "parquet", "text", "arrow", "pandas", "generator", "webdataset"})


def _names_hub_dataset(tm: Any, name: str) -> bool:
    """True when a local task's ``dataset_path`` is a Hub data set name (not a loader nor a local path)."""
    from pathlib import Path

    entry = tm.task_index[name]
    path = (entry.cfg or {}).get("dataset_path")
    if not isinstance(path, str) or "://" in path or path in _DATASETS_LOADERS or Path(path).expanduser().exists():
        return False
    return entry.yaml_path is None or not (entry.yaml_path.parent / path).exists()


def _cheap_env_info(storage: dict[str, Any]) -> None:
    """Stand-in for lm-eval's ``add_env_info`` (versions only, no subprocesses)."""
    import lm_eval
    import transformers

    storage.update(
        {
            "pretty_env_info": "not collected by harness (see harness provenance)",
            "transformers_version": transformers.__version__,
            "lm_eval_version": lm_eval.__version__,
            "upper_git_hash": None,
        }
    )


@contextlib.contextmanager
def _quiet() -> Any:
    """lm-eval logs at INFO/WARNING for every task and draws a progress bar per task and phase;
    inside a harness run (which has its own progress bar) that floods the terminal. Unless
    HARNESS_VERBOSE=1, lm-eval's loggers go to ERROR and tqdm bars created during the call are
    disabled (lm-eval passes ``disable=`` explicitly, so TQDM_DISABLE would not do)."""
    import logging
    import os
    from unittest import mock

    import tqdm

    if os.environ.get("HARNESS_VERBOSE") == "1":
        yield
        return
    loggers = [logging.getLogger(n) for n in ("lm-eval", "lm_eval")]
    levels = [lg.level for lg in loggers]
    original_init = tqdm.std.tqdm.__init__

    def silent_init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        original_init(self, *args, **kwargs)

    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with mock.patch.object(tqdm.std.tqdm, "__init__", silent_init):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@contextlib.contextmanager
def _skip_env_collection() -> Any:
    """``simple_evaluate`` ends with torch's ``get_pretty_env_info`` (it runs ``pip list`` in a
    subprocess: ~2 s per call, 90% of a small task's time on CPU) and ``git describe`` in the
    cwd. harness records its own provenance, so both are swapped for cheap stand-ins for the
    duration of the call (only where lm-eval still has them, so newer versions are unaffected).
    """
    from unittest import mock

    import lm_eval.evaluator as ev

    with contextlib.ExitStack() as stack:
        if hasattr(ev, "add_env_info"):
            stack.enter_context(mock.patch.object(ev, "add_env_info", _cheap_env_info))
        if hasattr(ev, "get_git_commit_hash"):
            stack.enter_context(mock.patch.object(ev, "get_git_commit_hash", lambda: None))
        yield


def _run_lm_eval(
    model: Any,
    tokenizer: Any,
    names: list[str],
    tm: Any,
    local_names: list[str],
    *,
    limit: int | float | None,
    num_fewshot: int | None,
    batch_size: int,
    seed: int,
    intervention: Any,
    bootstrap_iters: int,
    max_length: int | None,
) -> dict[str, Any]:
    """One ``lm_eval.simple_evaluate`` call over ``names`` with the intervention active."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM  # needs `accelerate` (lm-eval's [hf] extra)

    with _quiet():
        objs = _load_tasks(names, tm, local_names)
    was_training = model.training  # HFLM calls model.eval(); the caller's mode is restored below
    try:
        with _quiet():  # HFLM warns that an in-memory model is not a str: expected here
            lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)
        with _quiet(), _skip_env_collection(), _intervention_context(intervention, model):
            results = lm_eval.simple_evaluate(
                model=lm,
                tasks=objs,
                task_manager=tm,
                num_fewshot=num_fewshot,
                limit=limit,
                bootstrap_iters=bootstrap_iters,
                log_samples=False,
                use_cache=None,  # lm-eval's SQLite cache keys on request text only: never used
                random_seed=seed,
                numpy_random_seed=seed,
                torch_random_seed=seed,
                fewshot_random_seed=seed,
            )
    finally:
        model.train(was_training)
    if results is None:  # only non-zero ranks of a distributed run get None
        raise HarnessError("lm-eval returned no results (a non-zero rank of a distributed run?).")
    return results
