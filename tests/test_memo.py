"""The process-level memo (harness.memo): budget, least-recently-used order, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from harness.memo import Memo, budget_bytes, digest, memo, nbytes


def test_memo_keeps_within_its_budget_dropping_the_least_recently_used():
    m = Memo(max_bytes=3000)
    calls = []

    def make(name: str, size: int):
        def compute():
            calls.append(name)
            return np.zeros(size, dtype=np.uint8)

        return compute

    a = m.get("a", make("a", 1000))
    assert m.get("a", make("a", 1000)) is a and calls == ["a"]  # a hit returns the kept object
    m.get("b", make("b", 1000))
    m.get("a", make("a", 1000))  # a is now the most recently used
    m.get("c", make("c", 1500))  # over budget: b (least recent) goes
    assert m.used <= 3000
    m.get("a", make("a", 1000))
    m.get("b", make("b", 1000))
    assert calls == ["a", "b", "c", "b"]
    big = m.get("big", make("big", 10_000))  # larger than the whole budget: computed, not kept
    assert big.shape == (10_000,) and "big" not in m._values
    assert m.stats()["hits"] == 3 and m.stats()["misses"] == 5


def test_budget_from_the_environment(monkeypatch):
    monkeypatch.setenv("HARNESS_MEMO_MB", "2")
    assert budget_bytes() == 2 * 2**20 and memo().max_bytes == 2 * 2**20
    monkeypatch.setenv("HARNESS_MEMO_MB", "0")
    calls = []
    memo().get(("off",), lambda: calls.append(1) or np.ones(4))
    memo().get(("off",), lambda: calls.append(1) or np.ones(4))
    assert calls == [1, 1]  # 0 turns it off
    for bad in ("lots", "-1"):
        monkeypatch.setenv("HARNESS_MEMO_MB", bad)
        with pytest.raises(ValueError, match="HARNESS_MEMO_MB.*Fix"):
            budget_bytes()


def test_sizes_and_digests():
    import torch

    assert nbytes(torch.zeros(10, 4)) == 160
    assert nbytes([np.zeros(8), {"x": torch.zeros(2, dtype=torch.float64)}]) >= 64 + 16
    assert digest(["a", "b"]) == digest(["a", "b"]) != digest(["ab"])
