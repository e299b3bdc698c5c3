"""The experiment harness's analysis: spread, verdicts, the probability plot, the report's warning."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("bench_curriculum", ROOT / "bench" / "bench_curriculum.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def run(sampler: str, seed: int, gsm8k_loss: float, applied: bool | None = None) -> dict:
    return {"sampler": sampler, "seed": seed, "kind": "fresh", "tokens": 1000, "applied": applied,
            "val_loss": {"gsm8k": gsm8k_loss, "overall": 2.0}, "gsm8k_accuracy": 0.1, "logic_accuracy": 0.2}


def test_a_sampler_beats_stratified_only_beyond_the_seed_spread():
    runs = [run("stratified", s, 2.0 + 0.01 * s) for s in range(3)]
    runs += [run("curiosity", s, 1.8 + 0.01 * s, applied=True) for s in range(3)]  # clearly lower loss
    runs += [run("competence", s, 1.97 + 0.03 * s, applied=True) for s in range(3)]  # better, within the spread
    runs += [run("random", s, 2.3 + 0.01 * s, applied=None) for s in range(3)]  # clearly worse
    agg = bench.aggregate(runs)
    assert agg["fresh/stratified"]["val_loss/gsm8k"]["mean"] == pytest.approx(2.01)
    assert agg["fresh/stratified"]["val_loss/gsm8k"]["std"] == pytest.approx(0.01)
    v = bench.verdicts(agg)
    assert len(v) == 2 and v[0].startswith("fresh: curiosity beats stratified on val_loss/gsm8k")
    assert v[1].startswith("fresh: random is worse than stratified on val_loss/gsm8k")
    report = bench.markdown({"aggregate": agg, "verdicts": v, "loop_uses_curriculum": True, "command": "x",
                             "settings": {"fresh": "32x2"}, "plot": None})
    assert "| curiosity | 3 | " in report and "1.8100 ± 0.0100" in report and "ignored" not in report


def test_the_report_says_when_the_loop_ignored_the_sampler():
    agg = bench.aggregate([run("stratified", 0, 2.0), run("curiosity", 0, 2.0, applied=False)])
    report = bench.markdown({"aggregate": agg, "verdicts": [], "loop_uses_curriculum": False, "command": "x",
                             "settings": {"fresh": "32x2"}, "plot": None})
    assert report.startswith("**The training loop ignored `curriculum.strategy`")


def test_probability_plot_from_metrics(tmp_path):
    recs = [{"step": s, "loss": 1.0, "curriculum/p/gsm8k:easy": 0.5 + 0.01 * s, "curriculum/p/math:hard": 0.5 - 0.01 * s}
            for s in range(1, 11)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert bench.plot_probabilities(tmp_path, tmp_path / "p.png") and (tmp_path / "p.png").stat().st_size > 1000
    # one panel per run that logged probabilities; a missing run is left out
    assert bench.plot_probabilities({"fresh": tmp_path, "lora": tmp_path / "absent"}, tmp_path / "two.png")
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    assert not bench.plot_probabilities(tmp_path, tmp_path / "q.png")
