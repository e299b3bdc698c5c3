"""Hostile outputs on puzzles the project has never seen, scored end to end through ``curiosity-sft score``.

400 reasoning-gym puzzles generated here (tests/rg_puzzles.py): 200 knights-and-knaves with role
words other than knight/knave, 100 zebra, 100 propositional logic. Before the scorers used
reasoning-gym's own rules, the echoed format hint scored correct on 40/200 (every puzzle whose
inhabitants all tell the truth), the hedged and the negated zebra answers on 100/100 each, a
restated premise on 100/100 (docs/EVALUATION.md has the command). Each must now score 0, while
the reference answers still score right, so the scorers are strict without being blind.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

import rg_puzzles
from curiosity_sft.cli import main
from curiosity_sft.evaluation.eval_data import load_eval_data


@pytest.fixture(scope="module")
def puzzles(tmp_path_factory):
    """(data file, raw records, examples): a raw reasoning-gym file named as a test split."""
    path = rg_puzzles.write_puzzles(tmp_path_factory.mktemp("rg") / "test.jsonl")
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    examples = load_eval_data(path)
    assert [e.prompt_messages[-1]["content"] for e in examples] == [r["question"].strip() for r in raw]
    return path, raw, examples


def score(tmp_path, data, samples, name):
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    out = tmp_path / f"scored_{name}"
    assert main(["score", "--samples", str(path), "--data", str(data), "--output", str(out)]) == 0
    return json.loads((out / "results.json").read_text()), [json.loads(x) for x in (out / "samples.jsonl").open()]


def test_the_puzzles_are_new(puzzles):
    _, raw, _ = puzzles
    kk = [r for r in raw if r["task"] == "knights_knaves"]
    assert Counter(r["task"] for r in raw) == {"knights_knaves": 200, "zebra_puzzles": 100, "propositional_logic": 100}
    assert all(r["metadata"]["knight_knave_terms"]["knight"] != "knight" for r in kk)
    assert len({r["metadata"]["knight_knave_terms"]["knight"] for r in kk}) >= 5
    # the old scorer's blind spot: puzzles where the echoed hint names everyone's (truthful) role
    assert sum(rg_puzzles.truthful_everyone(r["answer"], r["metadata"]) for r in kk) == 40


def test_hostile_outputs_score_zero(puzzles, tmp_path):
    data, raw, examples = puzzles
    by_kind: dict[str, list[dict]] = {}
    for rec, ex in zip(raw, examples, strict=True):
        for kind, output in rg_puzzles.hostile_outputs(rec["task"], rec["question"], rec["answer"], rec["metadata"]).items():
            by_kind.setdefault(kind, []).append({"id": ex.id, "output": output})
    expected_n = {"echoed format hint": 200, "hedged": 100, "negated": 100, "restated premise": 100}
    for kind, samples in by_kind.items():
        results, scored = score(tmp_path, data, samples, kind.replace(" ", "_"))
        assert results["accuracy"]["overall"] == {"accuracy": 0.0, "n": expected_n[kind]}, kind
        assert all(s["correct"] is False for s in scored), kind
    # reasoning-gym alone still gives a restated (non-atomic) premise full credit: that rule is ours
    _, restated = score(tmp_path, data, by_kind["restated premise"], "restated_again")
    assert sum(s.get("scorer_note") == "restates a premise" for s in restated) > 50


def test_reference_answers_score_right(puzzles, tmp_path):
    data, raw, examples = puzzles
    samples = [{"id": ex.id, "output": f"Let me work through the clues.\n\nThe answer is {rec['answer']}"}
               for rec, ex in zip(raw, examples, strict=True) if rec["task"] in ("knights_knaves", "zebra_puzzles")]
    results, _ = score(tmp_path, data, samples, "references")
    by_task = results["accuracy_by_task"]
    assert by_task["knights_knaves"] == {"accuracy": 1.0, "n": 200} and by_task["zebra_puzzles"] == {"accuracy": 1.0, "n": 100}
    # propositional logic: the conclusion reasoning-gym's generator chose is right unless it restates a premise
    prop = [{"id": ex.id, "output": f"Conclusion: {rec['metadata']['example_answer']}"}
            for rec, ex in zip(raw, examples, strict=True) if rec["task"] == "propositional_logic"]
    results, scored = score(tmp_path, data, prop, "prop_references")
    assert all(s["correct"] or s.get("scorer_note") == "restates a premise" or s["scorer_credit"] < 1 for s in scored)
    assert results["accuracy"]["overall"]["accuracy"] > 0.5
