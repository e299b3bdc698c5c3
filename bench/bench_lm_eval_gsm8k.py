"""Our GSM8K scorer against lm-evaluation-harness's, on the real outputs of a GSM8K evaluation.

    # 1. the outputs (once; keep them outside the repository): 200 GSM8K test problems
    flock /tmp/heavy.lock curiosity-sft evaluate --model smollm2-135m-instruct \
        --data ../shared/data/raw/gsm8k/test.jsonl --tasks accuracy --limit 200 --output EVAL_DIR
    # 2. the comparison (seconds, no model)
    python bench/bench_lm_eval_gsm8k.py --samples EVAL_DIR/samples.jsonl [more samples.jsonl ...]

Every output is scored twice: by ours (``scorers.score_gsm8k``, strict and flexible) and by
lm-eval's ``gsm8k`` task as its installed YAML defines it (``evaluation/lm_eval_gsm8k.py``: its
filters and its ``exact_match``). For each filter: both accuracies, how many outputs get the same
verdict and the same extracted value, and every disagreement by kind (``difference_kind``), with
the sample ids so each one can be looked up in ``samples.jsonl``. Writes JSON
(``bench/results/lm_eval_gsm8k.json``) and prints the table for docs/EVALUATION.md.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from curiosity_sft.evaluation.lm_eval_gsm8k import LmEvalGSM8K, difference_kind
from curiosity_sft.evaluation.scorers import normalize_number, score_gsm8k

ROOT = Path(__file__).resolve().parents[1]


def compare(samples: list[dict[str, Any]]) -> dict[str, Any]:
    lm = LmEvalGSM8K()
    outputs, answers = [s["output"] for s in samples], [str(s["reference"]) for s in samples]
    theirs = lm.verdicts(outputs, answers)
    result: dict[str, Any] = {"lm_eval": lm.version, "gsm8k_task_version": lm.task_version, "n": len(samples)}
    for name, strict in (("strict-match", True), ("flexible-extract", False)):
        rows = []
        for s, t in zip(samples, theirs[name], strict=True):
            ours = score_gsm8k(s["output"], str(s["reference"]), strict)
            t_value = normalize_number(t.extracted) if t.extracted is not None else None
            rows.append((s, ours, t, t_value))
        kinds: dict[str, dict[str, Any]] = defaultdict(lambda: {"outputs": 0, "ours_right_lm_wrong": 0,
                                                                "ours_wrong_lm_right": 0, "ids": []})
        for s, ours, t, t_value in rows:
            if ours.extracted == t_value and ours.correct == t.correct:
                continue
            k = kinds[difference_kind(s["output"], strict, ours.extracted, t.extracted)]
            k["outputs"] += 1
            k["ours_right_lm_wrong"] += ours.correct and not t.correct
            k["ours_wrong_lm_right"] += t.correct and not ours.correct
            k["ids"].append(s["id"])
            k.setdefault("examples", []).append({"id": s["id"], "ours": ours.extracted, "lm_eval": t.extracted})
        result[name] = {
            "ours_correct": sum(o.correct for _, o, _, _ in rows), "lm_eval_correct": sum(t.correct for _, _, t, _ in rows),
            "same_verdict": sum(o.correct == t.correct for _, o, t, _ in rows),
            "same_value": sum(o.extracted == tv for _, o, _, tv in rows),
            "differences": dict(sorted(kinds.items(), key=lambda kv: -kv[1]["outputs"]))}
    return result


def markdown(r: dict[str, Any]) -> str:
    lines = [f"lm-eval {r['lm_eval']} (gsm8k task v{r['gsm8k_task_version']}), {r['n']} outputs", "",
             "| filter | ours correct | lm-eval correct | same verdict | same value |", "| --- | --- | --- | --- | --- |"]
    for name in ("strict-match", "flexible-extract"):
        f = r[name]
        lines.append(f"| {name} | {f['ours_correct']} | {f['lm_eval_correct']} | {f['same_verdict']}/{r['n']} | "
                     f"{f['same_value']}/{r['n']} |")
    lines += ["", "| filter | kind | outputs | ours right, lm-eval wrong | ours wrong, lm-eval right |",
              "| --- | --- | --- | --- | --- |"]
    for name in ("strict-match", "flexible-extract"):
        for kind, k in r[name]["differences"].items():
            lines.append(f"| {name} | {kind} | {k['outputs']} | {k['ours_right_lm_wrong']} | {k['ours_wrong_lm_right']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", required=True, nargs="+", help="samples.jsonl of one or more GSM8K evaluations")
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "lm_eval_gsm8k.json"))
    a = ap.parse_args()
    samples = [json.loads(x) for path in a.samples for x in Path(path).read_text().splitlines() if x.strip()]
    samples = [s for s in samples if s.get("task") == "gsm8k" or "strict_correct" in s]
    if not samples:
        raise SystemExit(f"{a.samples}: no GSM8K samples")
    r = compare(samples)
    r["samples"] = {path: sum(1 for x in Path(path).read_text().splitlines() if x.strip()) for path in a.samples}
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(r, indent=2) + "\n")
    print(markdown(r))
    print(f"\nwrote {a.output}")


if __name__ == "__main__":
    main()
