"""bench/bench_train.py's arithmetic: medians, spread, the best TRL run, the goal and equal-quality checks."""

from __future__ import annotations

import importlib.util

from conftest import ROOT

spec = importlib.util.spec_from_file_location("bench_train", ROOT / "bench" / "bench_train.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def _rep(tokens_per_s: float, loss: float, precision: str = "fp32") -> dict:
    return {"tokens": tokens_per_s * 10, "seconds": 10.0, "heldout_loss": loss, "peak_rss_gib": 3.0,
            "flops": 100e9 * 10, "precision": precision, "steps": 12}


def test_summary_takes_medians_and_compares_with_the_fastest_trl_run():
    results = {"matmul_gflops": {"size": 1024, "fp32": 200.0, "bf16": 400.0}, "threads": 2, "load_start": 0.1,
               "load_end": 0.2, "runs": {
                   "trl_tuned_fp32": [_rep(100, 1.10), _rep(90, 1.10), _rep(300, 1.10)],  # one disturbed repeat
                   "trl_tuned_bf16": [_rep(80, 1.11, "bf16")] * 3,
                   "ours": [_rep(160, 1.08), _rep(150, 1.08), _rep(155, 1.08)],
                   "ours_fp32": [_rep(155, 1.08)] * 3, "ours_bf16": [_rep(170, 1.09, "bf16")] * 3}}
    s = bench.summarise(results)
    assert s["goal"]["best_trl"] == "trl_tuned_fp32"
    assert s["runs"]["trl_tuned_fp32"]["tokens_per_second_median"] == 100  # the median ignores the outlier
    assert (s["runs"]["trl_tuned_fp32"]["tokens_per_second_min"], s["runs"]["trl_tuned_fp32"]["tokens_per_second_max"]) == (90, 300)
    assert s["goal"]["speedup"] == 1.55 and s["goal"]["reached_1_5x"] and s["goal"]["loss_equal_or_lower"]
    assert abs(s["goal"]["heldout_loss_vs_fp32"]["ours_bf16"] - (1.09 / 1.08 - 1)) < 1e-12
    assert s["runs"]["ours_bf16"]["mfu_median"] == 100e9 / 400e9  # against the bf16 rate
    results["summary"] = s
    md = bench.table(results)
    assert "| **this engine at its defaults" in md and "1.55x its real tokens/s (goal 1.5x: reached)" in md
