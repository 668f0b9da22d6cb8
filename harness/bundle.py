"""Write a self-contained leaderboard bundle (``harness publish``), and load (validate) someone else's.

A bundle folder holds::

    manifest.json                     harness version, time, sha256 of every record file
    records/<suite>/<key>.json        the run records (ok and failed)
    schema/record.schema.json         JSON schema of a record (generated from pydantic)
    schema/leaderboard.schema.json
    leaderboards/<suite>.{md,json}    and leaderboards/site/ (opens offline)

Loading refuses, with a reason each, any record that fails the published schema, whose
key does not match the hash of its content, or whose file hash differs from the manifest.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from harness import __version__
from harness.errors import HarnessError
from harness.provenance import now_iso
from harness.results import RunRecord
from harness.store import Store, atomic_write_text


@dataclass
class LoadedBundle:
    records: list[RunRecord] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_bundle(store: Store, out: Path, registries: object | None = None) -> Path:
    """Write a bundle of every record in ``store`` to ``out`` (which must not hold one already)."""
    from harness.leaderboard import build_leaderboards

    out = Path(out)
    if (out / "manifest.json").exists():
        raise HarnessError(f"{out} already holds a bundle (manifest.json); choose an empty folder.")
    hashes: dict[str, str] = {}
    for rec in store.records():
        rel = Path("records") / rec.cell.suite / f"{rec.key}.json"
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(store.record_path(rec.cell.suite, rec.key), dest)
        hashes[rel.as_posix()] = _sha256(dest)
    if not hashes:
        raise HarnessError(f"The store {store.root} holds no records; run `harness run` first.")
    build_leaderboards(Store(out), out / "leaderboards", registries)  # type: ignore[arg-type]
    schema_dir = out / "schema"
    schema_dir.mkdir(parents=True, exist_ok=True)
    for f in (out / "leaderboards" / "schema").glob("*.json"):
        shutil.copyfile(f, schema_dir / f.name)
    manifest = {"format": "harness-bundle", "version": 1, "harness_version": __version__, "created_at": now_iso(),
                "records": dict(sorted(hashes.items()))}
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return out


def _validator(bundle: Path):  # noqa: ANN202
    import jsonschema

    schema_path = bundle / "schema" / "record.schema.json"
    schema = json.loads(schema_path.read_text()) if schema_path.exists() else RunRecord.model_json_schema()
    return jsonschema.Draft202012Validator(schema)


def load_bundle(bundle: Path) -> LoadedBundle:
    """Validated records of a bundle; each refused file is named with its reason."""
    bundle = Path(bundle)
    manifest_path = bundle / "manifest.json"
    if not manifest_path.is_file():
        raise HarnessError(f"{bundle} is not a harness bundle: no manifest.json. Create one with `harness publish`.")
    try:
        manifest = json.loads(manifest_path.read_text())
        listed: dict[str, str] = dict(manifest["records"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise HarnessError(f"{manifest_path} is malformed ({type(e).__name__}); the bundle cannot be trusted.") from None
    validator = _validator(bundle)
    out = LoadedBundle()
    on_disk = {p.relative_to(bundle).as_posix() for p in (bundle / "records").glob("*/*.json")}
    for rel in sorted(on_disk - set(listed)):
        out.refused.append(f"{rel}: not listed in manifest.json")
    for rel, digest in sorted(listed.items()):
        path = bundle / rel
        if not path.is_file():
            out.refused.append(f"{rel}: listed in manifest.json but missing")
            continue
        if _sha256(path) != digest:
            out.refused.append(f"{rel}: file hash does not match manifest.json (modified after publishing)")
            continue
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            out.refused.append(f"{rel}: not valid JSON ({e.msg} at line {e.lineno})")
            continue
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
        if errors:
            where = ".".join(str(p) for p in errors[0].path) or "(top level)"
            out.refused.append(f"{rel}: fails the record schema at {where}: {errors[0].message}")
            continue
        rec = RunRecord.model_validate(data)
        if rec.cell.key() != rec.key or Path(rel).stem != rec.key:
            out.refused.append(f"{rel}: key does not match the hash of the record's cell (content was altered)")
            continue
        out.records.append(rec)
    return out
