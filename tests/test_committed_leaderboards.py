"""The committed leaderboards/ matches what the current code produces: the schema, not the numbers."""

import json

import jsonschema
import pytest
from conftest import REPO

from harness.leaderboard import LeaderboardDoc
from harness.results import RunRecord

BOARDS = sorted((REPO / "leaderboards").glob("*.json"))


def test_leaderboards_committed():
    assert BOARDS, "run `harness run` and commit leaderboards/"
    assert (REPO / "leaderboards" / "site" / "index.html").exists()


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_committed_board_matches_current_schema(path):
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, LeaderboardDoc.model_json_schema())
    board = LeaderboardDoc.model_validate(doc)
    assert (REPO / "leaderboards" / f"{board.suite}.md").exists()
    assert (REPO / "leaderboards" / "site" / f"{board.suite}.html").exists()
    for rel in board.plots.values():
        assert (REPO / "leaderboards" / "site" / rel).exists(), rel


def _without_docs(schema):
    """The schema without its descriptions (the words may change, the structure may not)."""
    if isinstance(schema, dict):
        return {k: _without_docs(v) for k, v in schema.items() if k != "description"}
    if isinstance(schema, list):
        return [_without_docs(v) for v in schema]
    return schema


def _models(schema):
    """Every object model of a schema (the top level and its $defs) by title."""
    return {schema["title"]: schema, **schema.get("$defs", {})}


def test_committed_schemas_are_current():
    folder = REPO / "leaderboards" / "schema"
    assert json.loads((folder / "record.schema.json").read_text()) == RunRecord.model_json_schema()
    committed, current = json.loads((folder / "leaderboard.schema.json").read_text()), LeaderboardDoc.model_json_schema()
    if committed == current:
        return
    # Boards published before the current fields existed (the next `harness run` republishes them):
    # the current schema only adds optional fields (and the models they use), so every committed
    # board still loads; no committed field changed or disappeared.
    old, new = _models(committed), _models(current)
    for name, model in old.items():
        assert name in new, f"model {name} disappeared from the leaderboard schema"
        props = new[name].get("properties", {})
        for field, spec in model.get("properties", {}).items():
            assert field in props, f"{name}.{field} disappeared"
            assert _without_docs(props[field]) == _without_docs(spec), f"{name}.{field} changed"
        added = set(props) - set(model.get("properties", {}))
        assert set(new[name].get("required", [])) <= set(model.get("required", [])), f"{name}: new required fields"
        assert all("default" in props[f] for f in added), f"{name}: added fields without a default"
