"""``prepare`` end to end on a small raw folder written here: outputs, determinism, bad inputs."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import stat
import subprocess
import sys
import tarfile

import pytest

from curiosity_sft.cli import main
from curiosity_sft.config import SFTConfig
from curiosity_sft.data.prepare import prepare
from curiosity_sft.errors import ConfigError
from curiosity_sft.io import written_by

LEAK = "A train leaves the station at 3 pm going 60 miles per hour toward a city that is 180 miles away"


def gsm(q: str, n: int) -> dict:
    return {"question": q, "answer": f"It takes {n} steps.\n#### {n}"}


def jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture
def raw(tmp_path):
    root = tmp_path / "raw"
    (root / "gsm8k").mkdir(parents=True)
    train = [gsm(f"Tom has {i} apples and buys {i + 3} more pears at the market. How many fruits does he have?", i)
             for i in range(20)]
    train += [gsm(f"{LEAK}. When does it arrive?", 6), train[0]]  # one leaked test question, one exact repeat
    (root / "gsm8k" / "train.jsonl").write_text(jsonl(train))
    (root / "gsm8k" / "test.jsonl").write_text(jsonl([gsm(f"{LEAK}. When does it get there?", 6)]))
    (root / "puzzles").mkdir()
    (root / "puzzles" / "logic.jsonl").write_text(jsonl(
        {"task": "syllogism", "question": f"All cats number {i} are animals. Is cat {i} an animal?", "answer": "Yes"}
        for i in range(10)))
    with tarfile.open(root / "MATH.tar.gz", "w:gz") as t:
        for split, i in [("train", 1), ("train", 2), ("test", 3)]:
            data = json.dumps({"problem": f"What is {i}+{i}?", "level": f"Level {i}", "type": "Algebra",
                               "solution": f"$\\boxed{{{2 * i}}}$"}).encode()
            info = tarfile.TarInfo(f"MATH/{split}/algebra/{i}.json")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return root


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().split("\n") if line]


def test_outputs_filters_and_manifest(raw, tmp_path):
    r = prepare(raw, tmp_path / "out", val_ratio=0.2, seed=1, show_progress=False)
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m == r.manifest
    assert r.counts["test"] == {"gsm8k": 1, "math": 1}
    assert m["filters"]["gsm8k"] == {"read": 22, "exact_duplicate": 1, "near_duplicate": 0, "contaminated": 1,
                                     "too_long": 0, "truncated": 0, "capped": 0, "val": 4, "train": 16, "mixed": 16}
    assert m["counts"]["val"] == {"gsm8k": 4, "logic": 2} and m["counts"]["train"] == {"gsm8k": 16, "logic": 8, "math": 2}
    [leak] = [d for d in read_jsonl(tmp_path / "out" / "dropped.jsonl") if d["reason"] == "contaminated"]
    assert leak["detail"].startswith("a train leaves the station at 3 pm")
    assert m["decontamination"]["top_shared_ngrams"] == [{"ngram": leak["detail"], "examples": 1}]
    test_ids = {e["id"] for e in read_jsonl(tmp_path / "out" / "test.jsonl")}
    trained = read_jsonl(tmp_path / "out" / "train.jsonl") + read_jsonl(tmp_path / "out" / "val.jsonl")
    assert not test_ids & {e["id"] for e in trained} and not any(LEAK in json.dumps(e) for e in trained)
    assert {i["path"]: i["split"] for i in m["inputs"]} == {"MATH.tar.gz": "test/train", "gsm8k/test.jsonl": "test",
                                                           "gsm8k/train.jsonl": "train", "puzzles/logic.jsonl": "train"}
    assert all(len(i["sha256"]) == 64 for i in m["inputs"])
    assert m["length"]["unit"] == "tokens" and set(m["length"]["train"]["gsm8k"]) == {"examples", "p50", "p95", "max", "total"}
    assert m["mixing"]["before"] == m["mixing"]["after"]
    assert m["config"]["seed"] == 1 and m["code_version"]["package"]


def test_same_inputs_and_seed_give_byte_identical_outputs(raw, tmp_path):
    prepare(raw, tmp_path / "a", seed=3, show_progress=False, model="none")
    # another process with another string-hash salt: nothing may depend on set or hash() order
    code = f"from curiosity_sft.data.prepare import prepare; prepare({str(raw)!r}, {str(tmp_path / 'b')!r}, seed=3, " \
           "show_progress=False, model='none')"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONHASHSEED": "12345"})
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["dropped.jsonl", "manifest.json", "test.jsonl", "train.jsonl", "val.jsonl"]
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    prepare(raw, tmp_path / "c", seed=4, show_progress=False, model="none")
    assert (tmp_path / "c" / "val.jsonl").read_bytes() != (tmp_path / "a" / "val.jsonl").read_bytes()


def test_data_config_weights_caps_and_forced_format(raw, tmp_path):
    cfg = tmp_path / "data.yaml"
    cfg.write_text("sources:\n"
                   "  - name: arithmetic\n    paths: [gsm8k]\n    max_examples: 10\n    weight: 1\n"
                   "  - name: puzzles\n    paths: puzzles/logic.jsonl\n    format: generic\n    weight: 3\n"
                   "max_length: 512\n")
    r = prepare(raw, tmp_path / "out", val_ratio=0.0, seed=0, show_progress=False, data_config=cfg, model="none")
    m = r.manifest
    assert set(r.counts["train"]) == {"arithmetic", "puzzles"} and r.counts["test"] == {"arithmetic": 1}
    # 22 read - 1 repeat - 1 leak = 20, capped to 10; then 1:3 in tokens with 10 puzzles of fewer tokens
    assert m["filters"]["arithmetic"]["capped"] == 10 and m["filters"]["arithmetic"]["train"] == 10
    assert r.counts["train"] == {"arithmetic": 4, "puzzles": 23}
    after = m["mixing"]["after"]
    assert after["puzzles"]["share"] == pytest.approx(0.75, abs=0.08)  # 3:1 in tokens


def test_decontamination_against_test_splits_can_be_turned_off(raw, tmp_path):
    cfg = tmp_path / "data.yaml"
    cfg.write_text("decontaminate_test_splits: false\n")
    r = prepare(raw, tmp_path / "out", seed=1, show_progress=False, data_config=cfg, model="none")
    assert r.manifest["filters"]["gsm8k"]["contaminated"] == 0
    assert r.manifest["decontamination"]["eval_sets"][0]["examples"] == 0


@pytest.mark.parametrize("text,match", [
    ("sources:\n  - name: a\n    paths: [x]\n    wieght: 2\n", r"data.yaml:4: unknown key `sources.0.wieght` \(did you mean `weight`"),
    ("max_length: lots\n", r"data.yaml:1: `max_length`: .*integer"),
    ("sources: [\n", r"data.yaml:2: not valid YAML"),
])
def test_data_config_errors_name_key_file_and_line(raw, tmp_path, text, match):
    cfg = tmp_path / "data.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=match):
        prepare(raw, tmp_path / "out", data_config=cfg, show_progress=False, model="none")


@pytest.mark.parametrize("argv,fragment", [
    (["--ngram", "1"], "error: <command line>: `ngram`: Input should be greater than 2"),
    (["--max-length", "8"], "error: <command line>: `max_length`"),
    (["--val-ratio", "1.5"], "error: <command line>: --val-ratio must be in [0, 1)"),
])
def test_bad_options_are_one_line_exit_2(raw, tmp_path, capsys, argv, fragment):
    assert main(["prepare", "--input", str(raw), "--output", str(tmp_path / "out"), "--model", "none", *argv]) == 2
    assert fragment in capsys.readouterr().err


def test_decontaminate_against_an_extra_eval_file(raw, tmp_path, capsys):
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "LICENSE").write_text("MIT")  # a folder of eval sets may hold other files
    evals = tmp_path / "evals" / "test.jsonl"
    evals.write_text(jsonl([{"question": "All cats number 3 are animals. Is cat 3 an animal? Answer yes or no please "
                                         "and explain why in one short sentence", "answer": "Yes"}]))
    assert main(["prepare", "--input", str(raw), "--output", str(tmp_path / "out"), "--model", "none",
                 "--decontaminate", str(evals.parent), "--ngram", "8"]) == 0
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["decontamination"]["dropped"]["logic"] == 1 and m["decontamination"]["ngram"] == 8
    # an evaluation set with prompts only (no answers) works too
    evals.write_text(jsonl([{"prompt": "All cats number 4 are animals. Is cat 4 an animal? Reply now", "id": 1}]))
    assert main(["prepare", "--input", str(raw), "--output", str(tmp_path / "out"), "--model", "none",
                 "--decontaminate", str(evals), "--ngram", "8", "--overwrite"]) == 0
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["decontamination"]["dropped"]["logic"] == 1


BAD_GSM = json.dumps(gsm("q?", 1))


@pytest.mark.parametrize("name,content,match", [
    ("bad.jsonl", f"{BAD_GSM}\n{{oops\n".encode(), r"bad.jsonl:2: malformed JSON"),
    ("bad.jsonl", f'{BAD_GSM}\n{{"question": "q2?"}}\n'.encode(), r"bad.jsonl:2: GSM8K record needs a string `answer`"),
    ("bad.jsonl", f'{BAD_GSM}\n{{"question": 7, "answer": "#### 1"}}\n'.encode(), r"bad.jsonl:2: .*string `question`"),
    ("bad.jsonl", f"{BAD_GSM}\n".encode() + b'{"question": "\xff"}\n', r"bad.jsonl:2: not UTF-8"),
    ("bad.jsonl", b"", r"bad.jsonl: empty file"),
    ("bad.jsonl", b"\x00\x01\x02binary", r"bad.jsonl: binary file"),
    ("book.txt", b"Once\n\xff\xfe upon", r"book.txt:2: not UTF-8"),
    ("bad.tar.gz", b"not a tar", r"bad.tar.gz: not a readable tar archive"),
    ("train.parquet", b"PAR1 not really", r"train.parquet: not a readable parquet file"),
    ("x.jsonl", b'{"foo": 1}\n', r"x.jsonl:1: unrecognised record with keys \['foo'\]"),
])
def test_bad_input_names_file_and_line_and_writes_nothing(tmp_path, capsys, name, content, match):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / name).write_bytes(content)
    assert main(["prepare", "--input", str(tmp_path / "raw"), "--output", str(tmp_path / "out"), "--model", "none"]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["raw"]


def test_hostile_archive_and_unrecognised_folder_exit_2(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    with tarfile.open(raw / "MATH.tar", "w") as t:
        info = tarfile.TarInfo("../../etc/evil.json")
        info.size = 2
        t.addfile(info, io.BytesIO(b"{}"))
    assert main(["prepare", "--input", str(raw), "--output", str(tmp_path / "out"), "--model", "none"]) == 2
    assert "MATH.tar: archive member `../../etc/evil.json`" in capsys.readouterr().err
    (raw / "MATH.tar").unlink()
    (raw / "notes.csv").write_text("a,b\n")
    assert main(["prepare", "--input", str(raw), "--output", str(tmp_path / "out"), "--model", "none"]) == 2
    assert "no data files found" in capsys.readouterr().err


def test_bad_archive_member_is_named(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    with tarfile.open(raw / "MATH.tar.gz", "w:gz") as t:
        good = json.dumps({"problem": "1+1?", "solution": "$\\boxed{2}$"}).encode()
        for name, data in [("MATH/train/algebra/1.json", good),
                           ("MATH/train/algebra/2.json", b'{"problem": "oops"')]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    assert main(["prepare", "--input", str(raw), "--output", str(tmp_path / "out"), "--model", "none"]) == 2
    assert "MATH.tar.gz:MATH/train/algebra/2.json: bad JSON" in capsys.readouterr().err


def test_on_error_skip_counts_bad_records(raw, tmp_path, caplog):
    (raw / "gsm8k" / "train.jsonl").write_text((raw / "gsm8k" / "train.jsonl").read_text() + "{oops\n[1]\n")
    out = tmp_path / "out"
    assert main(["prepare", "--input", str(raw), "--output", str(out), "--model", "none"]) == 2
    assert main(["prepare", "--input", str(raw), "--output", str(out), "--model", "none", "--on-error", "skip"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["skipped_records"] == {str(raw / "gsm8k" / "train.jsonl"): 2}
    assert "skipped 2 bad records" in caplog.text
    (raw / "empty.jsonl").write_bytes(b"")  # a whole bad file is skipped and counted too
    assert main(["prepare", "--input", str(raw), "--output", str(out), "--model", "none", "--on-error", "skip",
                 "--overwrite"]) == 0
    assert json.loads((out / "manifest.json").read_text())["skipped_records"][str(raw / "empty.jsonl")] == 1


def test_output_inside_the_input_folder_is_not_read_back(raw, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = prepare("raw", "raw/prepared", show_progress=False, model="none")
    second = prepare("raw", "raw/prepared", show_progress=False, model="none", overwrite=True)
    assert second.manifest["inputs"] == first.manifest["inputs"]


def test_failed_run_keeps_the_previous_output(raw, tmp_path):
    out = tmp_path / "out"
    prepare(raw, out, show_progress=False, model="none")
    before = (out / "train.jsonl").read_bytes()
    (raw / "broken.jsonl").write_text("{oops\n")
    with pytest.raises(Exception, match="malformed JSON"):
        prepare(raw, out, show_progress=False, model="none", overwrite=True)
    assert (out / "train.jsonl").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]


def test_docs_data_md_documents_every_data_config_key():
    from conftest import ROOT
    from curiosity_sft.data.data_config import DataConfig, SourceSpec

    doc = (ROOT / "docs" / "DATA.md").read_text()
    missing = [k for k in [*DataConfig.model_fields, *SourceSpec.model_fields] if f"| `{k}` |" not in doc]
    assert not missing, f"docs/DATA.md lacks {missing}"


def test_math_release_folder_is_one_input_per_subject_and_split(tmp_path):
    for split, i in [("train", 1), ("train", 2), ("test", 3)]:
        d = tmp_path / "raw" / "MATH" / split / "algebra"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i}.json").write_text(json.dumps({"problem": f"What is {i}*{i}?", "level": "Level 1", "type": "Algebra",
                                                 "solution": f"$\\boxed{{{i * i}}}$"}))
    (tmp_path / "raw" / "MATH" / "test" / "algebra" / "4.json").write_text(
        json.dumps({"problem": "What is 4*4?", "level": "Level 1", "type": "Algebra", "solution": "$\\boxed{16}$"}))
    r = prepare(tmp_path / "raw", tmp_path / "out", val_ratio=0, show_progress=False, model="none")
    assert [(i["path"], i["split"]) for i in r.manifest["inputs"]] == [("MATH/test/algebra/", "test"),
                                                                      ("MATH/train/algebra/", "train")]
    assert r.counts["train"] == {"math": 2} and r.counts["test"] == {"math": 2}


def run_cli(capsys, *argv) -> tuple[int, str]:
    """``curiosity-sft prepare ...`` in process: (exit code, stderr)."""
    code = main(["prepare", *map(str, argv)])
    return code, capsys.readouterr().err


def one_line_error(err: str, fragment: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert "Traceback" not in err


def test_a_foreign_file_in_the_output_folder_is_never_deleted(raw, tmp_path, capsys):
    """Issue 12, item 1: a user's folder is refused (with or without --overwrite), and stays as it was."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):
        code, err = run_cli(capsys, "--input", raw, "--output", out, "--model", "none", *extra)
        assert code == 2
        one_line_error(err, "not empty and was not written by `curiosity-sft prepare`")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"


def test_only_our_own_output_is_replaced_and_only_with_overwrite(raw, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(capsys, "--input", raw, "--output", out, "--model", "none")[0] == 0
    assert written_by(out) == "prepare"
    assert json.loads((out / "manifest.json").read_text())["written_by"]["command"] == "prepare"
    code, err = run_cli(capsys, "--input", raw, "--output", out, "--model", "none")
    assert code == 2
    one_line_error(err, "pass --overwrite")
    assert run_cli(capsys, "--input", raw, "--output", out, "--model", "none", "--overwrite")[0] == 0
    (out / "my_notes.md").write_text("mine")  # a file the user added to our output since
    code, err = run_cli(capsys, "--input", raw, "--output", out, "--model", "none", "--overwrite")
    assert code == 2
    one_line_error(err, "also holds my_notes.md, which prepare did not write")
    assert (out / "my_notes.md").read_text() == "mine" and (out / "train.jsonl").exists()


def test_an_input_inside_the_output_folder_is_an_error_that_says_so(raw, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(capsys, "--input", raw, "--output", out, "--model", "none")[0] == 0
    inner = out / "raw"
    raw.rename(inner)  # the user keeps their raw data inside the output folder
    code, err = run_cli(capsys, "--input", inner, "--output", out, "--model", "none", "--overwrite")
    assert code == 2
    one_line_error(err, "is inside the output folder")
    assert (inner / "gsm8k" / "train.jsonl").exists()
    evals = tmp_path / "evals.jsonl"
    evals.write_text(jsonl([gsm("What is 2+2?", 4)]))
    inner.rename(raw)
    evals.rename(out / "evals.jsonl")
    code, err = run_cli(capsys, "--input", raw, "--output", out, "--model", "none", "--overwrite",
                        "--decontaminate", out / "evals.jsonl")
    assert code == 2
    one_line_error(err, "is inside the output folder")
    assert (out / "evals.jsonl").exists()


def test_output_naming_a_file_or_the_current_folder_is_one_line(raw, tmp_path, capsys, monkeypatch):
    target = tmp_path / "train.jsonl"
    target.write_text("keep me\n")
    code, err = run_cli(capsys, "--input", raw, "--output", target, "--model", "none")
    assert code == 2
    one_line_error(err, "names a file, not a folder")
    assert target.read_text() == "keep me\n"
    monkeypatch.chdir(raw)
    for here in (".", "./", ".."):
        code, err = run_cli(capsys, "--input", raw, "--output", here, "--model", "none", "--overwrite")
        assert code == 2
        one_line_error(err, "is the current folder or one of its parents")
    assert sorted(p.name for p in raw.iterdir()) == ["MATH.tar.gz", "gsm8k", "puzzles"]


def test_output_folder_gets_the_permissions_of_the_umask(raw, tmp_path):
    """Issue 12, item 2: ``mkdtemp`` made the published folder 0700."""
    old = os.umask(0o022)
    try:
        prepare(raw, tmp_path / "out", show_progress=False, model="none")
    finally:
        os.umask(old)
    assert oct(stat.S_IMODE((tmp_path / "out").stat().st_mode)) == oct(0o755)
    assert oct(stat.S_IMODE((tmp_path / "out" / "train.jsonl").stat().st_mode)) == oct(0o644)


def test_max_length_and_tokenizer_have_one_default_the_training_configs(raw, tmp_path, capsys, caplog):
    """One source for shared settings: flag > data config > --config/--set > SFTConfig's default."""
    caplog.set_level(logging.INFO, logger="curiosity_sft")
    def settings(*argv):
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        assert run_cli(capsys, "--input", raw, "--output", out, *argv)[0] == 0
        m = json.loads((out / "manifest.json").read_text())
        return m["config"]["max_length"], m["config"]["model"], m["settings_from"]

    train_cfg = tmp_path / "train.yaml"
    train_cfg.write_text("max_length: 300\nmodel_name: smollm2-135m-instruct\n")
    length, model, origin = settings("--model", "none")
    assert length == SFTConfig().max_length and origin["max_length"] == "training default (SFTConfig.max_length)"
    length, model, origin = settings("--config", train_cfg)
    assert (length, model) == (300, "smollm2-135m-instruct")
    assert origin == {"max_length": f"training config {train_cfg}", "model": f"training config {train_cfg}"}
    assert f"max_length 300 from training config {train_cfg}" in caplog.text
    length, _, origin = settings("--config", train_cfg, "--set", "max_length=200", "--model", "none")
    assert length == 200 and origin["max_length"] == f"training config {train_cfg} --set max_length=200"
    assert origin["model"] == "--model"
    length, _, origin = settings("--config", train_cfg, "--max-length", "100", "--model", "none")
    assert length == 100 and origin["max_length"] == "--max-length"
    data_cfg = tmp_path / "data.yaml"
    data_cfg.write_text("max_length: 400\nmodel: null\n")
    length, model, origin = settings("--config", train_cfg, "--data-config", data_cfg)
    assert (length, model) == (400, None) and origin["max_length"] == f"data config {data_cfg}"
    assert "max_length 400 is above the training config's 300" in caplog.text
    code, err = run_cli(capsys, "--input", raw, "--output", tmp_path / "x", "--config", train_cfg, "--set", "max_lenght=9")
    assert code == 2
    one_line_error(err, "unknown key `max_lenght`")


def book_text(chapters: int = 6, paragraphs: int = 8) -> str:
    words = ("fox", "owl", "river", "lantern", "hill", "garden", "moon", "boat", "bread", "kite", "drum", "well")
    out = []
    for c in range(chapters):
        out.append(f"CHAPTER {c + 1}. The {words[c % len(words)]}")
        for p in range(paragraphs):
            w = [words[(c * 7 + p * 3 + i) % len(words)] for i in range(6)]
            out.append(f"In chapter {c + 1}, part {p + 1}, the children found a {w[0]} near the {w[1]} and carried it "
                       f"past the {w[2]} and the {w[3]} until the {w[4]} and the {w[5]} were far behind them at last.")
    return "\n\n".join(out) + "\n"


def test_both_examples_of_a_book_passage_land_in_the_same_split(tmp_path):
    """Issue 12, item 5: a passage's text example and its "continue the story" chat were split independently."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "my_book.txt").write_text(book_text())
    r = prepare(raw, tmp_path / "out", val_ratio=0.3, seed=0, show_progress=False, model="none", max_length=200)
    rows = {name: read_jsonl(tmp_path / "out" / f"{name}.jsonl") for name in ("train", "val")}
    groups = {name: {e["meta"]["split_group"] for e in exs} for name, exs in rows.items()}
    kinds = {e["meta"]["kind"] for e in rows["val"]}
    assert kinds == {"passage", "continuation"} and len(groups["val"]) >= 4
    assert not groups["train"] & groups["val"]
    assert r.counts["val"]["books"] == pytest.approx(0.3 * (r.counts["val"]["books"] + r.counts["train"]["books"]),
                                                     abs=2)


def test_validation_files_go_to_val_and_every_file_is_accounted_for(raw, tmp_path, caplog):
    """Issue 12, item 6: files named val*/dev*/validation* were trained on."""
    caplog.set_level(logging.INFO, logger="curiosity_sft")
    dev = [gsm(f"Ann has {i} red kites and {i + 2} blue kites at the park today. How many kites does she have?", 2 * i + 2)
           for i in range(5)]
    (raw / "gsm8k" / "dev.jsonl").write_text(jsonl(dev))
    train = (raw / "gsm8k" / "train.jsonl").read_text()
    (raw / "gsm8k" / "train.jsonl").write_text(train + jsonl([dev[0]]))  # a dev problem repeated in train
    (raw / "puzzles" / "logic_validation.jsonl").write_text(jsonl(
        [{"task": "syllogism", "question": "All owls number 1 are birds. Is owl 1 a bird?", "answer": "Yes"}]))
    (raw / "puzzles" / "devices.jsonl").write_text(jsonl(  # `dev` only as a word of the name
        [{"task": "syllogism", "question": "All phones are devices. Is a phone a device?", "answer": "Yes"}]))
    r = prepare(raw, tmp_path / "out", val_ratio=0.2, seed=1, show_progress=False, model="none")
    m = r.manifest
    rows = {i["path"]: i for i in m["inputs"]}
    assert rows["gsm8k/dev.jsonl"]["split"] == "val" and "dev.jsonl" in rows["gsm8k/dev.jsonl"]["split_reason"]
    assert rows["puzzles/logic_validation.jsonl"]["split"] == "val"
    assert rows["puzzles/devices.jsonl"]["split"] == "train" and rows["gsm8k/test.jsonl"]["split"] == "test"
    assert all(i["split_reason"] for i in m["inputs"])
    val = read_jsonl(tmp_path / "out" / "val.jsonl")
    gsm_val = {e["messages"][0]["content"] for e in val if e["source"] == "gsm8k"}
    assert gsm_val == {d["question"] for d in dev}  # exactly the dev file: no random split on top
    trained = read_jsonl(tmp_path / "out" / "train.jsonl")
    assert not gsm_val & {e["messages"][0]["content"] for e in trained}
    assert m["filters"]["gsm8k"]["exact_duplicate"] == 2  # the old repeat and the dev problem copied into train
    assert "gsm8k/dev.jsonl: 5 gsm8k examples -> val (file name `dev.jsonl`): validation only" in caplog.text
    assert ("gsm8k/train.jsonl: 23 gsm8k examples -> train (no test or validation name): trained on, all of it: "
            "the source has a validation file") in caplog.text
    assert "gsm8k/test.jsonl: 1 gsm8k examples -> test (file name `test.jsonl`): evaluation" in caplog.text
    assert "MATH.tar.gz: 2 math examples -> train (archive members under `test/`): trained on, less a 20%" in caplog.text
    for source, f in m["filters"].items():
        dropped = f["exact_duplicate"] + f["near_duplicate"] + f["contaminated"] + f["too_long"] + f["capped"]
        assert f["read"] - dropped == f["train"] + f["val"], source


def test_every_prepared_example_has_a_difficulty_normalised_within_its_source_or_a_reason(raw, tmp_path):
    """Issue 12, item 7 and contract 3: difficulty in [0, 1] per source (and task), else null with a reason."""
    (raw / "my_book.txt").write_text(book_text())
    (raw / "mine.jsonl").write_text(jsonl([{"prompt": f"Say {i}", "completion": f"{i}"} for i in range(4)]))
    (raw / "puzzles" / "zebra.jsonl").write_text(jsonl(
        {"task": "zebra_puzzles", "params": {"num_people": people, "num_characteristics": traits},
         "question": f"Zebra puzzle {i} with {people} houses and {traits} traits: who owns the fish?", "answer": "bob"}
        for i, (people, traits) in enumerate([(3, 3), (3, 3), (3, 4), (4, 4), (4, 4), (4, 4)])))
    prepare(raw, tmp_path / "out", val_ratio=0.2, seed=0, show_progress=False, model="none", max_length=200)
    rows = [e for name in ("train", "val", "test") for e in read_jsonl(tmp_path / "out" / f"{name}.jsonl")]
    groups = {}
    for e in rows:
        assert "difficulty" in e
        if e["difficulty"] is None:
            assert e["meta"]["difficulty_reason"], e
        else:
            assert 0 <= e["difficulty"] <= 1 and "difficulty_measure" in e["meta"]
            groups.setdefault((e["source"], e["meta"].get("task")), []).append(e["difficulty"])
    for key, values in groups.items():
        assert min(values) == 0 and max(values) == 1, key  # normalised within the source (and task)
    zebra = sorted(e["difficulty"] for e in rows if e["meta"].get("task") == "zebra_puzzles")
    # measures 0, 0, 3/7, 1, 1, 1 -> mid-ranks 0.5, 2, 4 of 5 -> rescaled to 0 .. 1
    assert zebra == [0, 0, pytest.approx(1.5 / 3.5, abs=1e-4), 1, 1, 1]
    reasons = {(e["source"], e["meta"]["difficulty_reason"]) for e in rows if e["difficulty"] is None}
    assert reasons == {("logic", "`syllogism` puzzles carry no size parameter"),
                       ("mine", "source `mine` gives no difficulty measure"),  # generic data
                       # every GSM8K problem of the fixture has a one-step solution (train and test alike)
                       ("gsm8k", "all 23 examples of `gsm8k` have the same difficulty measure: nothing to order them by")}
    assert prepare(raw, tmp_path / "out", show_progress=False, model="none", overwrite=True)  # it reads back
    from curiosity_sft.data.schema import read_examples
    assert read_examples(tmp_path / "out" / "train.jsonl")
