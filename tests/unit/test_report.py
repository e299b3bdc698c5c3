"""report.md / report.html: gates, metrics, TensorBoard loss curves, samples; the HTML renders in Chromium."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from curiosity_sft.evaluation.gates import any_failed, check_gates
from curiosity_sft.evaluation.report import loss_curves, pick_samples, write_reports

RESULTS = {
    "model": "tiny", "data": "val.jsonl", "data_sha256": "ab" * 32, "model_sha256": "cd" * 32, "examples": 3,
    "perplexity": {"gsm8k": {"perplexity": 9.5}, "overall": {"perplexity": 9.5}},
    "bleu": {"overall": {"bleu": 12.0, "bleu_01": 0.12, "chrf": 30.0}},
    "accuracy": {"gsm8k": {"accuracy": 0.5, "n": 2, "strict": {"accuracy": 0.0, "n": 2}},
                 "overall": {"accuracy": 0.5, "n": 2}},
    "accuracy_by_task": {"gsm8k": {"accuracy": 0.5, "n": 2}},
    "generation": {"tokens_per_second": 100.0},
}
SAMPLES = [
    {"id": "a", "source": "gsm8k", "prompt": "p", "output": "#### 4 <b>", "extracted": "4", "reference": "4", "correct": True},
    {"id": "b", "source": "gsm8k", "prompt": "p", "output": "5", "extracted": "5", "reference": "6", "correct": False},
    {"id": "c", "source": "books", "prompt": "p", "output": "once", "extracted": None, "reference": None, "correct": None},
]


def test_gates_pass_fail_not_run_and_not_measured():
    g = {x.name: x for x in check_gates(RESULTS, 15, 0.7, 0.85)}
    assert (g["perplexity"].status, g["BLEU"].status, g["GSM8K accuracy"].status) == ("pass", "fail", "fail")
    only_ppl = check_gates({"tasks": ["perplexity"], "perplexity": {"overall": {"perplexity": 20.0}}}, 15, 0.7, 0.85)
    assert [x.status for x in only_ppl] == ["fail", "not run", "not run"] and any_failed(only_ppl)
    nothing = check_gates({"tasks": ["perplexity"], "perplexity": {"overall": {"perplexity": None}}}, 15, 0.7, 0.85)
    assert nothing[0].status == "not measured" and any_failed(nothing)  # asked for, measured nothing: no pass
    assert not any_failed(check_gates({"tasks": []}, 15, 0.7, 0.85))
    assert [x.status for x in check_gates({}, 15, 0.7, 0.85)] == ["not measured"] * 3  # no record of what was asked


def _fake_run(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "run"
    w = SummaryWriter(str(run / "runs"))
    for step in range(1, 6):
        w.add_scalar("train/loss", 2.0 / step, step)
    w.add_scalar("eval_loss", 1.1, 5)
    w.close()
    return run


def test_loss_curves_from_tensorboard(tmp_path):
    curves = loss_curves(_fake_run(tmp_path))
    assert set(curves) == {"train/loss", "eval_loss"}
    assert [s for s, _ in curves["train/loss"]] == [1, 2, 3, 4, 5]
    assert curves["train/loss"][1][1] == pytest.approx(1.0)
    assert loss_curves(None) == {} and loss_curves(tmp_path) == {}


def test_samples_pick_correct_and_wrong_per_source():
    picked = pick_samples(SAMPLES)
    assert [s["id"] for s in picked["gsm8k"]] == ["a", "b"] and [s["id"] for s in picked["books"]] == ["c"]


def write(tmp_path):
    out = tmp_path / "eval"
    baseline = {**RESULTS, "gates": [{"name": "perplexity", "value": 30.0}],
                "accuracy": {"gsm8k": {"accuracy": 0.0, "n": 2}}}
    write_reports(out, RESULTS, SAMPLES, check_gates(RESULTS, 15, 0.7, 0.85), baseline, _fake_run(tmp_path))
    return out


def test_report_contents(tmp_path):
    out = write(tmp_path)
    md = (out / "report.md").read_text()
    assert "| perplexity | 9.5 | < 15 | pass |" in md and "| BLEU | 0.12 | > 0.7 | fail |" in md
    assert "| accuracy gsm8k strict (####) | 0 | - |" in md and "**wrong** (`b`)" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3  # loss curves, metrics vs gates, baseline vs this model
    assert "#### 4 &lt;b&gt;" in html  # model output is escaped, never interpreted


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return exe


def test_html_report_renders_in_headless_chromium(tmp_path):
    exe = chromium()
    out = write(tmp_path)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    url = (out / "report.html").as_uri()
    # The DOM after rendering: the gate table and every image element are there.
    dom = subprocess.run([exe, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert "<table id=\"gates\">" in dom and dom.count("<img") == 3
    # A screenshot: the page really paints (a non-trivial PNG).
    shot = tmp_path / "shot.png"
    subprocess.run([exe, *flags, f"--screenshot={shot}", "--window-size=1000,2000", url], capture_output=True, timeout=120)
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
