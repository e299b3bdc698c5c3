"""``prepare`` on all of ``../shared/data/raw`` with the real SmolLM2 tokenizer (skipped when absent).

The per-source numbers are reference values from the run recorded in docs/DATA.md; a change to
any filter that moves them must update both, on purpose.
"""

from __future__ import annotations

import json

import pytest

from curiosity_sft.cli import main

# docs/DATA.md, "The shared data": read -> (exact dup, near dup, contaminated, too long) -> val, train
EXPECTED = {
    "books": {"read": 408, "exact_duplicate": 0, "near_duplicate": 0, "contaminated": 0, "too_long": 0, "val": 20, "train": 388},
    "gsm8k": {"read": 7473, "exact_duplicate": 0, "near_duplicate": 0, "contaminated": 4, "too_long": 0, "val": 373, "train": 7096},
    "logic": {"read": 3200, "exact_duplicate": 6, "near_duplicate": 2, "contaminated": 0, "too_long": 0, "val": 160, "train": 3032},
    "math": {"read": 7500, "exact_duplicate": 0, "near_duplicate": 5, "contaminated": 839, "too_long": 164, "val": 325, "train": 6167},
}


@pytest.mark.slow
def test_prepare_all_shared_data(shared_raw, tmp_path):
    out = tmp_path / "prepared"
    assert main(["prepare", "--input", str(shared_raw), "--output", str(out)]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert {s: {k: f[k] for k in EXPECTED[s]} for s, f in m["filters"].items()} == EXPECTED
    # the official test splits are complete and untouched
    assert m["counts"]["test"] == {"gsm8k": 1319, "math": 5000}
    for source, f in m["filters"].items():
        dropped = f["exact_duplicate"] + f["near_duplicate"] + f["contaminated"] + f["too_long"]
        assert f["read"] - dropped == f["train"] + f["val"], source
    assert all(v["max"] <= 1024 for v in m["length"]["train"].values())
    assert {i["path"] for i in m["inputs"]} == {
        "children_books/alice_in_wonderland.txt", "children_books/peter_pan.txt", "children_books/the_jungle_book.txt",
        "gsm8k/test.jsonl", "gsm8k/train.jsonl", "logic_puzzles/logic_puzzles.jsonl", "math/MATH_train.tar.gz",
        "math/test.jsonl"}
    dropped = [json.loads(line) for line in (out / "dropped.jsonl").read_text().split("\n") if line]
    # an exact duplicate shares its id with the copy that was kept; every other drop is gone for good
    dropped_ids = {d["id"] for d in dropped if d["reason"] != "exact_duplicate"}
    train_ids = {json.loads(line)["id"] for line in (out / "train.jsonl").read_text().split("\n") if line}
    test_ids = {json.loads(line)["id"] for line in (out / "test.jsonl").read_text().split("\n") if line}
    assert len(dropped) == 4 + 6 + 2 + 5 + 839 + 164 and not dropped_ids & train_ids and not test_ids & train_ids
