"""``evaluate`` end to end on a tiny model: prepared and raw inputs, every output file, gates, exit codes,
the output folder, input checks before any model load, held-out selection, generation budgets."""

from __future__ import annotations

import json
import tarfile

import pytest

from curiosity_sft.cli import main
from curiosity_sft.data.schema import Example, chat, read_examples
from curiosity_sft.errors import DataError
from curiosity_sft.evaluation.eval_data import load_eval_data, subset
from curiosity_sft.evaluation.evaluate import evaluate, generation_budgets
from curiosity_sft.evaluation.scoring import reference_budget
from curiosity_sft.evaluation.tasks import is_scorable
from curiosity_sft.io import written_by

SAMPLE_KEYS = {"id", "source", "task", "prompt", "output", "extracted", "reference", "correct", "max_new_tokens"}


@pytest.fixture
def bundle(tiny_model, tok):
    tok.pad_token = tok.pad_token or tok.eos_token
    return tiny_model.eval(), tok, "tiny"


@pytest.fixture
def no_model_load(monkeypatch, bundle):
    """``--model tiny`` gives the tiny model; the `loaded` list records whether it was loaded."""
    import curiosity_sft.evaluation.evaluate as ev

    loaded: list[str] = []
    monkeypatch.setattr(ev, "load_for_inference", lambda spec: loaded.append(spec) or bundle)
    return loaded


def test_mixed_val_set_all_outputs(prepared, bundle, tmp_path):
    out = tmp_path / "eval"
    res = evaluate("tiny", prepared / "val.jsonl", out, limit=12, max_new_tokens=6, batch_size=4, max_length=384,
                   show_progress=False, model_bundle=bundle)
    for name in ("results.json", "samples.jsonl", "report.md", "report.html", "manifest.json"):
        assert (out / name).is_file(), name
    assert written_by(out) == "evaluate"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    saved = json.loads((out / "results.json").read_text())
    assert saved["examples"] == 12 and len(saved["model_sha256"]) == 64 and saved["config"]["gate_min_bleu"] == 0.7
    assert saved["scorers"]["reasoning-gym"] and saved["settings"]["max_length"] == 384
    sources = {e.source for e in subset(load_eval_data(prepared / "val.jsonl"), 12)}
    assert set(res["perplexity"]) == sources | {"overall"}
    assert "overall" in res["bleu"] and set(res["accuracy"]) >= {"overall"}
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert samples and all(SAMPLE_KEYS <= set(s) for s in samples)
    assert {g["name"]: g["status"] for g in res["gates"]}["perplexity"] == "fail"  # an untrained model


def test_tasks_select_metrics(prepared, bundle):
    res = evaluate("tiny", prepared / "val.jsonl", None, limit=6, tasks=("perplexity",), show_progress=False,
                   model_bundle=bundle)
    assert "perplexity" in res and "bleu" not in res and "accuracy" not in res and "generation" not in res
    assert [g["status"] for g in res["gates"]] == ["fail", "not run", "not run"]


def test_limit_is_deterministic(prepared):
    exs = load_eval_data(prepared / "val.jsonl")
    five = [e.id for e in subset(exs, 5)]
    assert five == [e.id for e in subset(list(reversed(exs)), 5)][::-1]  # by id, not by position
    assert len(five) == 5 and set(five) < {e.id for e in subset(exs, 6)}  # a larger limit adds, never swaps


# --- item 1: the output folder ------------------------------------------------------------------

def test_output_folder_is_replaced_only_when_ours(prepared, tmp_path, no_model_load, capsys, monkeypatch):
    args = ["evaluate", "--model", "tiny", "--data", str(prepared / "val.jsonl"), "--limit", "3", "--tasks", "perplexity"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    assert main([*args, "--output", str(mine), "--overwrite"]) == 2  # a user's folder: never, whatever the flags
    assert (mine / "notes.txt").read_text() == "my notes" and "was not written by" in capsys.readouterr().err
    out = tmp_path / "eval"
    assert main([*args, "--output", str(out)]) == 0
    first = (out / "results.json").read_text()
    assert main([*args, "--output", str(out)]) == 2 and "--overwrite" in capsys.readouterr().err
    assert main([*args, "--output", str(out), "--overwrite", "--limit", "2"]) == 0
    assert json.loads((out / "results.json").read_text())["examples"] == 2
    # a crash while writing the reports: the previous output stays whole, no half-written folder appears
    import curiosity_sft.evaluation.evaluate as ev

    def crash(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ev, "write_reports", crash)
    before = (out / "results.json").read_text()
    with pytest.raises(RuntimeError, match="disk full"):
        main(["evaluate", "--model", "tiny", "--data", str(prepared / "val.jsonl"), "--limit", "4", "--tasks",
              "perplexity", "--output", str(out), "--overwrite"])
    assert (out / "results.json").read_text() == before != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval", "mine"]
    assert no_model_load == ["tiny"] * 3  # the refused runs never loaded a model


# --- item 8: a metric over nothing is not measured ---------------------------------------------

def test_nothing_measured_is_not_a_pass(prepared, tmp_path, no_model_load, capsys, caplog):
    base = ["evaluate", "--model", "tiny", "--data", str(prepared / "val.jsonl"), "--set", "gate_max_perplexity=1e9"]
    assert main([*base, "--tasks", "perplexity", "--limit", "2", "--fail-on-gates"]) == 0  # measured, generous gate
    capsys.readouterr()
    for extra in (["--limit", "0"], ["--max-length", "9"]):  # nothing evaluated / every example too long
        res_dir = tmp_path / f"e{extra[1]}"
        assert main([*base, "--tasks", "perplexity", *extra, "--output", str(res_dir)]) == 0
        res = json.loads((res_dir / "results.json").read_text())
        assert res["perplexity"]["overall"]["perplexity"] is None and res["perplexity"]["overall"]["tokens"] == 0
        assert res["gates"][0]["status"] == "not measured"
        assert "| perplexity | - | < 1e+09 | not measured" in (res_dir / "report.md").read_text()
        with pytest.raises(SystemExit) as e:
            main([*base, "--tasks", "perplexity", *extra, "--fail-on-gates"])
        assert e.value.code == 1 and "perplexity (not measured)" in caplog.text
    # GSM8K examples in the data, accuracy asked, none scored: the GSM8K gate fails --fail-on-gates too
    with pytest.raises(SystemExit):
        main([*base, "--tasks", "accuracy", "--limit", "0", "--fail-on-gates"])


def test_cli_fail_on_gates_and_compare(prepared, tmp_path, no_model_load, capsys):
    base = tmp_path / "base"
    args = ["evaluate", "--model", "tiny", "--data", str(prepared / "val.jsonl"), "--limit", "4",
            "--max-new-tokens", "4", "--tasks", "perplexity,accuracy"]
    assert main([*args, "--output", str(base)]) == 0
    assert json.loads(capsys.readouterr().out)["gates"]["perplexity"] == "fail"
    with pytest.raises(SystemExit) as e:
        main([*args, "--output", str(tmp_path / "tuned"), "--compare", str(base / "results.json"), "--fail-on-gates"])
    assert e.value.code == 1
    assert "| perplexity overall |" in (tmp_path / "tuned" / "report.md").read_text()
    assert main([*args, "--tasks", "rouge"]) == 2


# --- item 11: BLEU budgets ---------------------------------------------------------------------

def test_bleu_budget_is_sized_to_each_reference(tok):
    story = " ".join(f"Word{i} went down the lane." for i in range(120))  # a long continuation
    long_chat = Example("s", "books", messages=chat("Continue the story:", story), meta={"task": "book_continuation"})
    gsm = Example("g", "gsm8k", messages=chat("q?", "It is 4.\n#### 4"), answer="4", meta={"task": "gsm8k"})
    n_ref = len(tok(story, add_special_tokens=False)["input_ids"])
    budgets = generation_budgets([long_chat, gsm], tok, ("bleu", "accuracy"), max_new_tokens=16)
    assert n_ref > 450 and budgets["s"] >= 1.25 * n_ref and budgets["s"] % 32 == 0 and budgets["s"] == reference_budget(n_ref)
    assert budgets["g"] == 32  # reference-sized (a short answer) and at least max_new_tokens for a scored example
    assert generation_budgets([long_chat, gsm], tok, ("accuracy",), max_new_tokens=16) == {"g": 16}


def test_bleu_is_reported_per_source_with_budgets(prepared, bundle):
    res = evaluate("tiny", prepared / "val.jsonl", None, limit=10, max_new_tokens=4, tasks=("bleu",),
                   show_progress=False, model_bundle=bundle)
    sources = {e.source for e in subset(load_eval_data(prepared / "val.jsonl"), 10) if e.messages is not None}
    assert set(res["bleu"]) == sources | {"overall"}
    assert all({"bleu", "n", "cut_at_budget"} <= set(v) for v in res["bleu"].values())
    assert res["generation"]["budgets"] and all(int(b) % 32 == 0 for b in res["generation"]["budgets"])


# --- item 13: held-out examples only, scoring metadata in the prepared file --------------------

MATH_REC = {"problem": "What is $1+2$?", "level": "Level 1", "type": "Algebra", "solution": "It is $\\boxed{3}$."}


def _archive(path, members):
    import io

    with tarfile.open(path, "w:gz") as tar:
        for name, rec in members.items():
            data = json.dumps(rec).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_a_math_archive_gives_its_test_members_only(tmp_path):
    mixed = _archive(tmp_path / "MATH.tar.gz", {"MATH/train/algebra/1.json": MATH_REC,
                                                "MATH/test/algebra/2.json": {**MATH_REC, "problem": "What is $2+2$?",
                                                                             "solution": "$\\boxed{4}$"}})
    assert [e.answer for e in load_eval_data(mixed)] == ["4"]
    assert [e.answer for e in load_eval_data(mixed, "train")] == ["3"]
    assert sorted(e.answer for e in load_eval_data(mixed, "all")) == ["3", "4"]
    train_only = _archive(tmp_path / "MATH_train.tar.gz", {"MATH/train/algebra/1.json": MATH_REC})
    with pytest.raises(DataError, match="no held-out examples: this is training data"):
        load_eval_data(train_only)


def test_raw_training_files_are_refused_unless_asked(shared_raw, tmp_path, no_model_load, capsys):
    logic = shared_raw / "logic_puzzles" / "logic_puzzles.jsonl"
    assert main(["evaluate", "--model", "tiny", "--data", str(logic), "--tasks", "accuracy"]) == 2
    err = capsys.readouterr().err
    assert "training data" in err and "--split" in err and len(err.strip().splitlines()) == 1 and not no_model_load
    assert main(["evaluate", "--model", "tiny", "--data", str(shared_raw / "math" / "MATH_train.tar.gz")]) == 2
    assert len(load_eval_data(shared_raw / "gsm8k" / "test.jsonl")) == 1319
    prop = [e for e in load_eval_data(logic, "all") if e.meta.get("task") == "propositional_logic"]
    assert len(prop) == 400 and all(is_scorable(e) for e in prop)
    assert prop[0].meta["reasoning_gym"]["premises"] == ["P", "((P ∧ Q) ∧ (P ∨ P))"]


def test_prepared_propositional_examples_are_scorable(tmp_path, tok):
    from curiosity_sft.data.prepare import prepare

    raw = tmp_path / "raw"
    raw.mkdir()
    recs = [{"task": "propositional_logic", "question": f"Given:\n1. P\n.2. (P → Q{i})\n.What follows?", "answer": None,
             "metadata": {"premises": ["P", f"(P → Q{i})"], "variables": ["P", f"Q{i}"], "example_answer": f"Q{i}",
                          "complexity": 1}} for i in range(40)]
    (raw / "logic.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    prepare(raw, tmp_path / "prep", val_ratio=0.25, show_progress=False)
    val = read_examples(tmp_path / "prep" / "val.jsonl")
    assert val and all(is_scorable(e) and e.meta["reasoning_gym"]["variables"] for e in val)


# --- item 14: every input checked before a model is loaded -------------------------------------

def test_bad_inputs_fail_before_any_model_load(prepared, tmp_path, no_model_load, capsys):
    val = str(prepared / "val.jsonl")
    run = tmp_path / "run"
    run.mkdir()
    (run / "latest.pt").write_bytes(b"PK\x03\x04 truncated")  # what a killed copy leaves
    (tmp_path / "afile").write_text("x")
    (tmp_path / "notjson.json").write_text("{nope")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    cases = [
        (["--model", "tiny", "--data", str(tmp_path / "missing.jsonl")], "evaluation data file not found"),
        (["--model", "tiny", "--data", val, "--compare", str(tmp_path / "none.json")], "--compare file not found"),
        (["--model", "tiny", "--data", val, "--compare", str(tmp_path / "notjson.json")], "not valid JSON"),
        (["--model", "tiny", "--data", val, "--compare", str(tmp_path / "other.json")], "not an evaluation's results.json"),
        (["--model", "tiny", "--data", val, "--output", str(tmp_path / "afile")], "names a file, not a folder"),
        (["--model", str(run / "latest.pt"), "--data", val], "not a readable PyTorch checkpoint"),
        (["--model", str(tmp_path / "gone" / "latest.pt"), "--data", val], "model file not found"),
        (["--model", "tiny", "--data", val, "--limit", "-1"], "--limit must be >= 0"),
        (["--model", "tiny", "--data", val, "--max-length", "0"], "--max-length must be a positive"),
    ]
    for argv, fragment in cases:
        assert main(["evaluate", *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err, (argv, err)
    assert no_model_load == []  # not one of them got as far as loading a model


def test_a_checkpoint_that_fails_to_unpickle_is_one_line(prepared, tmp_path, capsys):
    import zipfile

    bad = tmp_path / "latest.pt"
    with zipfile.ZipFile(bad, "w") as z:  # a whole zip with a damaged pickle inside
        z.writestr("latest/data.pkl", b"\x80\x04garbage")
        z.writestr("latest/version", b"3\n")
    assert main(["evaluate", "--model", str(bad), "--data", str(prepared / "val.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot read the checkpoint" in err and len(err.splitlines()) == 1


# --- one source for shared settings ------------------------------------------------------------

TINY_RUN = ["model_name=smollm2-135m-instruct", "hidden_dim=64", "num_layers=2", "batch_size=2", "max_length=150",
            "learning_rate=1e-3", "max_steps=2", "eval_steps=2", "save_steps=2", "logging_steps=1",
            "eval_batch_size=4", "peft_enable=false"]


def test_evaluation_perplexity_is_exp_training_eval_loss(prepared, tmp_path, tok, caplog):
    """max_length comes from the checkpoint's run (150 here, against the old evaluate default of 1024),
    so perplexity is measured on the examples training validated on: exactly exp(eval_loss)."""
    import logging
    import math

    from curiosity_sft.training.batching import encode_all

    run = tmp_path / "run"
    argv = ["train", "--output", str(run), "--set", f"train_file={prepared / 'train.jsonl'}",
            "--set", f"val_file={prepared / 'val.jsonl'}"]
    for s in TINY_RUN:
        argv += ["--set", s]
    assert main(argv) == 0
    eval_loss = json.loads((run / "manifest.json").read_text())["final_eval_loss"]
    val = read_examples(prepared / "val.jsonl")
    over = sum(len(e.input_ids) > 150 for e in encode_all(val, tok, 10**6).kept)
    assert 0 < over < len(val)  # the setting matters for this data
    with caplog.at_level(logging.INFO, logger="curiosity_sft"):
        res = evaluate(str(run / "latest.pt"), prepared / "val.jsonl", tasks=("perplexity",), show_progress=False)
    assert res["settings"]["max_length"] == 150 and res["settings"]["max_length_from"] == str(run / "config.yaml")
    assert f"max_length 150 (from {run / 'config.yaml'})" in caplog.text  # says what it inherited
    overall = res["perplexity"]["overall"]
    assert overall["loss"] == pytest.approx(eval_loss, rel=1e-5) and overall["skipped_over_max_length"] == over
    assert overall["perplexity"] == pytest.approx(math.exp(eval_loss), rel=1e-5)
    explicit = evaluate(str(run), prepared / "val.jsonl", tasks=("perplexity",), max_length=1024, show_progress=False)
    assert explicit["settings"]["max_length_from"] == "--max-length"  # an explicit flag wins
    assert explicit["perplexity"]["overall"]["skipped_over_max_length"] == 0


# --- item 16: the demo's fine-tuned report -----------------------------------------------------

@pytest.mark.slow
def test_demo_finetuned_report_has_loss_curves_and_the_base(tmp_path, monkeypatch, bundle):
    import curiosity_sft.demo as demo
    import curiosity_sft.evaluation.evaluate as ev
    from curiosity_sft.data.synthetic import write_raw_dataset
    from curiosity_sft.demo import run_demo

    real = ev.load_for_inference
    monkeypatch.setattr(ev, "load_for_inference", lambda spec: bundle if spec == "smollm2-135m-instruct" else real(spec))
    monkeypatch.setattr(demo, "write_raw_dataset", lambda out, seed: write_raw_dataset(
        out, seed, n_gsm8k=60, n_math=30, n_logic=30, n_test=12))  # the demo's pipeline on less data
    run_demo(tmp_path / "demo", overrides=[*TINY_RUN, "max_length=384", "eval_max_new_tokens=4", "max_steps=2"])
    tuned = tmp_path / "demo" / "eval_finetuned"
    html = (tuned / "report.html").read_text()
    assert "<h2>Loss curves</h2>" in html and "<h2>Baseline vs this model</h2>" in html
    md = (tuned / "report.md").read_text()
    base = json.loads((tmp_path / "demo" / "eval_base" / "results.json").read_text())
    ppl = base["perplexity"]["overall"]["perplexity"]
    assert "| perplexity overall | " in md and f"{ppl:.4g} |" in md  # the base model's value beside ours
    assert json.loads((tuned / "results.json").read_text())["model_spec"].endswith("latest.pt")


# --- item 15: `score` re-scores saved generations without a model ------------------------------

def test_score_reproduces_evaluate_and_refuses_bad_samples(prepared, tmp_path, no_model_load, capsys):
    val = str(prepared / "val.jsonl")
    assert main(["evaluate", "--model", "tiny", "--data", val, "--tasks", "accuracy", "--max-new-tokens", "4",
                 "--output", str(tmp_path / "ev")]) == 0
    samples = tmp_path / "ev" / "samples.jsonl"
    assert main(["score", "--samples", str(samples), "--data", val, "--output", str(tmp_path / "sc")]) == 0
    ev = json.loads((tmp_path / "ev" / "results.json").read_text())
    sc = json.loads((tmp_path / "sc" / "results.json").read_text())
    assert sc["accuracy"] == ev["accuracy"] and sc["accuracy_by_task"] == ev["accuracy_by_task"] and sc["accuracy"]
    assert written_by(tmp_path / "sc") == "score" and no_model_load == ["tiny"]  # score loaded no model
    strip = ("prompt", "max_new_tokens", "new_tokens", "cut_at_budget")
    rescored = [json.loads(x) for x in (tmp_path / "sc" / "samples.jsonl").open()]
    assert [{k: v for k, v in s.items() if k not in strip} for s in rescored] == [
        {k: v for k, v in json.loads(x).items() if k not in strip} for x in samples.open()]
    # an edited output is re-judged: the auditable path for scorer changes
    first = json.loads(samples.read_text().splitlines()[0])
    bad = tmp_path / "bad.jsonl"
    for lines, fragment in (([{"id": "nope", "output": "4"}], "is not an example of"),
                            ([{"id": first["id"]}], "needs a string `id` and a string `output`"),
                            ([{"id": first["id"], "output": "a"}] * 2, "repeats (first on line 1)")):
        bad.write_text("".join(json.dumps(x) + "\n" for x in lines))
        assert main(["score", "--samples", str(bad), "--data", val]) == 2
        err = capsys.readouterr().err.strip()
        assert fragment in err and len(err.splitlines()) == 1, err
    assert main(["score", "--samples", str(samples), "--data", val, "--output", str(tmp_path / "sc")]) == 2  # ours: --overwrite
