"""Every prepared example records what it is (``meta["task"]``), and scorers and the GSM8K gate go by that,
not by the user-chosen ``source`` label (contract 2 in the ownership guide)."""

from __future__ import annotations

import json

from curiosity_sft.cli import main
from curiosity_sft.data.data_config import DataConfig, SourceSpec
from curiosity_sft.data.prepare import prepare
from curiosity_sft.data.records import BadRecords
from curiosity_sft.data.schema import read_examples
from curiosity_sft.data.sources import detect_format, read_source
from curiosity_sft.data.sources.options import SourceOptions
from curiosity_sft.evaluation.gates import check_gates


def test_every_prepared_example_records_its_task(prepared):
    expected = {"gsm8k": {"gsm8k"}, "math": {"math"}, "logic": {"knights_knaves"}}
    seen = set()
    for split in ("train", "val", "test"):
        for ex in read_examples(prepared / f"{split}.jsonl"):
            task = ex.meta.get("task")
            if ex.source in expected:
                assert task in expected[ex.source], (ex.source, task)
            else:  # the three books
                assert task == ("book_text" if ex.text is not None else "book_continuation"), (ex.source, task)
            seen.add(task)
    assert seen == {"gsm8k", "math", "knights_knaves", "book_text", "book_continuation"}


def test_logic_rl_generic_and_reasoning_gym_metadata(tmp_path):
    def read(name, rec):
        p = tmp_path / name
        p.write_text(json.dumps(rec) + "\n")
        return [ex for _, ex in read_source(p, detect_format(p), SourceOptions(), BadRecords())][0]

    krl = read("people2.jsonl", {"quiz": "Zoey says ...", "names": ["Zoey", "Ava"], "solution_text": "Zoey is a knight"})
    assert krl.meta["task"] == "knights_knaves"
    assert "task" not in read("mine.jsonl", {"prompt": "p", "completion": "c"}).meta  # generic data: no task
    md = {"premises": ["P"], "variables": ["P", "Q"], "example_answer": "(P ∨ Q)"}
    prop = read("logic.jsonl", {"task": "propositional_logic", "question": "What follows?", "answer": None, "metadata": md})
    assert prop.meta["task"] == "propositional_logic"
    assert prop.meta["reasoning_gym"] == md  # what scoring needs travels with it


def test_renamed_gsm8k_source_keeps_its_scorer_and_gate(demo_raw, tmp_path):
    out = tmp_path / "prep"
    prepare(demo_raw, out, val_ratio=0.2, seed=0, show_progress=False,
            data_config=DataConfig(sources=[SourceSpec(name="grade_school", paths=["gsm8k"])]))
    val = read_examples(out / "val.jsonl")
    assert val and {e.source for e in val} == {"grade_school"}
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps({"id": e.id, "output": f"So it is {e.answer}.\n#### {e.answer}"}) + "\n"
                               for e in val))
    assert main(["score", "--samples", str(samples), "--data", str(out / "val.jsonl"), "--output", str(tmp_path / "s")]) == 0
    res = json.loads((tmp_path / "s" / "results.json").read_text())
    entry = res["accuracy"]["grade_school"]
    assert entry["accuracy"] == 1.0 and entry["strict"]["accuracy"] == 1.0  # GSM8K's strict/flexible scorer
    assert res["accuracy_by_task"]["gsm8k"]["n"] == len(val)
    assert {g["name"]: g["status"] for g in res["gates"]}["GSM8K accuracy"] == "pass"


def test_gsm8k_gate_reads_the_task_not_the_source():
    results = {"tasks": ["accuracy"], "tasks_in_data": ["gsm8k"],
               "accuracy": {"gsm8k": {"accuracy": 1.0, "n": 5}},  # a source *called* gsm8k, holding other tasks
               "accuracy_by_task": {"gsm8k": {"accuracy": 0.2, "n": 5}}}
    gate = {g.name: g for g in check_gates(results, 15, 0.7, 0.85)}["GSM8K accuracy"]
    assert gate.value == 0.2 and gate.status == "fail"
    other = check_gates({"tasks": ["accuracy"], "tasks_in_data": ["math"], "accuracy_by_task": {}}, 15, 0.7, 0.85)
    assert {g.name: g.status for g in other}["GSM8K accuracy"] == "not run"  # no GSM8K in the data: not applicable
