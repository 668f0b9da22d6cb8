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


def test_committed_schemas_are_current():
    folder = REPO / "leaderboards" / "schema"
    assert json.loads((folder / "leaderboard.schema.json").read_text()) == LeaderboardDoc.model_json_schema()
    assert json.loads((folder / "record.schema.json").read_text()) == RunRecord.model_json_schema()
