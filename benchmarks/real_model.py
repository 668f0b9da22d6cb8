"""Every suite at small budgets on a random-initialised Pythia-70M-shaped model with local-file data.

The model is built from ``../shared/data/pythia-70m-shape`` (Pythia-70M's real config and
tokenizer, no weights; pass ``--shape DIR`` for another folder) and saved as a local Hugging
Face folder; the data sets are generated here as local files in SAEBench's and INSIDE's
schemas (a text corpus; bias_in_bios-style ``hard_text`` / ``profession`` / ``gender`` rows;
TriviaQA-style ``question`` / ``answer.aliases`` rows; memorisation-style text sequences).
Each suite runs as its own ``harness run`` process (a fresh store), so the table's peak RSS
is that suite's alone.

    python benchmarks/real_model.py [--suites sae unlearning ...] [--keep DIR]

Prints: suite, cells, failed, wall time (s), peak RSS (MB). The numbers measure what a user
of a real 70M model pays per suite at these budgets on this machine; the scores of a random
model are meaningless and are not printed.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHAPE = REPO.parent / "shared" / "data" / "pythia-70m-shape"

WORDS = ("the a one some every river city garden market teacher doctor nurse engineer painter farmer lawyer "
         "writes builds paints heals teaches grows argues walks reads near under over before after quickly "
         "slowly bright dark old new small large green blue red quiet loud").split()
PROFESSIONS = ("nurse", "professor", "engineer", "painter", "lawyer")
GENDERS = ("female", "male")


def build_model(shape: Path, out: Path) -> Path:
    """A random-initialised causal LM of ``shape``'s config, saved with its tokenizer to ``out``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(shape)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out, safe_serialization=True)
    for f in shape.iterdir():
        if f.name.startswith("tokenizer") or f.name == "special_tokens_map.json":
            shutil.copy(f, out / f.name)
    return out


def memorisation_rows(model_dir: Path, n: int = 20, prefix: int = 4, suffix: int = 4) -> list[dict[str, Any]]:
    """Token sequences in a Pile-memorisation schema (``tokens``): ``n`` the model reproduces by greedy
    decoding (memorised by construction: a random model memorised nothing else) and ``n`` random ones."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = [i[0] for w in WORDS if len(i := tok(" " + w, add_special_tokens=False).input_ids) == 1]
    g = torch.Generator().manual_seed(0)
    prompts = torch.tensor(ids)[torch.randint(len(ids), (3 * n, prefix), generator=g)]
    seq = torch.cat([torch.full((len(prompts), 1), tok.eos_token_id), prompts], 1)
    with torch.no_grad():
        for _ in range(suffix):
            seq = torch.cat([seq, model(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)], 1)
    memorised = [s for s in seq[:, 1:].tolist() if tok(tok.decode(s), add_special_tokens=False).input_ids == s][:n]
    randoms = torch.tensor(ids)[torch.randint(len(ids), (n, prefix + suffix), generator=g)].tolist()
    return [{"tokens": s} for s in memorised + randoms]


def _sentence(rng: random.Random, n: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def write_data(root: Path, model_dir: Path) -> dict[str, Path]:
    """The local data sets, in SAEBench's and INSIDE's schemas."""
    rng = random.Random(0)
    root.mkdir(parents=True, exist_ok=True)

    def jsonl(name: str, rows: list[dict[str, Any]]) -> Path:
        path = root / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    corpus = jsonl("corpus.jsonl", [{"text": " ".join(_sentence(rng) for _ in range(8))} for _ in range(800)])

    def bio(i: int) -> dict[str, Any]:
        job, gender = PROFESSIONS[i % len(PROFESSIONS)], GENDERS[(i // len(PROFESSIONS)) % 2]
        pron = "She" if gender == "female" else "He"
        return {"hard_text": f"{pron} works as a {job}. {_sentence(rng)}", "profession": job, "gender": gender}

    bios_train = jsonl("bias_in_bios_train.jsonl", [bio(i) for i in range(400)])
    bios_test = jsonl("bias_in_bios_test.jsonl", [bio(i) for i in range(400, 600)])
    qa = jsonl("trivia_qa.jsonl", [{"question": f"Which word follows {w}?", "answer": {"aliases": [rng.choice(WORDS)]},
                                    "split": ["frequent", "rare", "heldout"][i % 3]}
                                   for i, w in enumerate(rng.choice(WORDS) for _ in range(120))])
    sequences = jsonl("sequences.jsonl", memorisation_rows(model_dir))
    return {"corpus": corpus, "bios_train": bios_train, "bios_test": bios_test, "qa": qa, "sequences": sequences}


def local(path: Path, **cfg: Any) -> dict[str, Any]:
    return {"dataset": "local", "config": {"path": str(path), **cfg}}


def suite_configs(data: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Each suite's config: small budgets, every data field a local file."""
    corpus = local(data["corpus"])
    bios = local(data["bios_train"], test_path=str(data["bios_test"]), text_column="hard_text",
                 label_column="profession", spurious_column="gender")
    qa = local(data["qa"], answers_column="answer.aliases", tag_column="split")
    return {
        "sae": {"preset": "quick", "corpus": corpus, "eval_start_doc": 600, "probe_sets": [bios], "scr_tpp_set": bios,
                "capability_tasks": []},
        "superposition": {"preset": "quick", "corpus": corpus},
        "scaling": {"preset": "quick", "corpus": corpus},
        "unlearning": {"sequences": local(data["sequences"], tokens_column="tokens"), "retain": corpus,
                       "prefix_len": 4, "suffix_len": 4, "min_per_class": 2, "frozen_folds": 2,
                       "retain_sequences": 8, "capability_tasks": []},
        "hallucination": {"preset": "quick", "qa": qa, "capability_tasks": []},
        "hallucination_detection": {"preset": "quick", "qa": qa},
        "lm_eval": {},
    }


def run_suite(name: str, config: dict[str, Any], model: Path, root: Path) -> dict[str, Any]:
    import yaml

    spec = {"suites": [{"name": name, "config": config}], "models": [f"hf:{model}"], "seeds": [0],
            "output_dir": str(root / name / "results"), "leaderboard_dir": str(root / name / "leaderboards")}
    spec_path = root / f"{name}.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    code = ("import resource, sys\nfrom harness.cli import main\nrc = main(sys.argv[1:])\n"
            "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\nsys.exit(rc)")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, "run", "--spec", str(spec_path), "--no-progress"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak = next((int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB")), 0)
    records = [json.loads(p.read_text()) for p in (root / name / "results" / "records").glob("*/*.json")]
    failed = [r for r in records if r["status"] != "ok"]
    return {"suite": name, "cells": len(records), "failed": len(failed), "wall_s": wall, "peak_rss_mb": peak / 1024,
            "rc": proc.returncode, "error": (failed[0]["error"]["message"][:200] if failed else
                                             (proc.stderr[-400:] if proc.returncode not in (0,) else ""))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", type=Path, default=DEFAULT_SHAPE, help="Folder with config.json + tokenizer files.")
    p.add_argument("--suites", nargs="*", help="Suites to run (default: all of the table).")
    p.add_argument("--keep", type=Path, help="Work in this folder and keep it (model, data, stores).")
    args = p.parse_args()
    if not (args.shape / "config.json").is_file():
        print(f"{args.shape}: no config.json (Pythia-70M's shape folder is absent); pass --shape DIR.", file=sys.stderr)
        return 2
    from tabulate import tabulate

    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        model = build_model(args.shape, root / "model")
        data = write_data(root / "data", model)
        print(f"model and data ready in {time.perf_counter() - t0:.0f} s ({model})", file=sys.stderr)
        configs = suite_configs(data)
        rows = []
        for name in args.suites or list(configs):
            r = run_suite(name, configs[name], model, root)
            rows.append(r)
            print(f"{name}: {r['wall_s']:.0f} s, {r['peak_rss_mb']:.0f} MB, rc {r['rc']} {r['error']}", file=sys.stderr)
    print(tabulate([[r["suite"], r["cells"], r["failed"], f"{r['wall_s']:.0f}", f"{r['peak_rss_mb']:.0f}",
                     r["error"][:80]] for r in rows],
                   headers=["suite", "cells", "failed", "wall s", "peak RSS MB", "first error"]))
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
