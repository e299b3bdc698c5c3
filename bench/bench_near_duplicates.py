#!/usr/bin/env python
"""Recall of near-duplicate removal, measured through ``curiosity-sft prepare`` (issue 12, item 3).

GSM8K training problems from ``../shared/data/raw`` are each paired with a copy that differs by
one inserted word in the question; only pairs whose Jaccard similarity of 5-token shingles (the
filter's own shingling: words and symbols, lower case) is at least ``--min-jaccard`` are used.
The 2 x N records go into a fresh raw folder, ``prepare`` runs on it in a new process (the code on
``PYTHONPATH``), and a pair counts as caught when ``dropped.jsonl`` names one of the two as a
near duplicate of the other. A drop that names anything else is a false removal.

    python bench/bench_near_duplicates.py [--pairs 150] [--seeds 0 1 2] [--words 1] [--min-jaccard 0.95] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from curiosity_sft.data.schema import stable_id

ROOT = Path(__file__).resolve().parents[1]
TOKEN = re.compile(r"\w+|[^\w\s]")
CALC = re.compile(r"<<[^<>]*>>")
SHINGLE = 5
WORDS = ("also", "then", "still", "only", "just", "really", "later", "again")


def shingle_set(text: str) -> set[str]:
    w = TOKEN.findall(text.lower())
    return {" ".join(w[i:i + SHINGLE]) for i in range(max(1, len(w) - SHINGLE + 1))}


def jaccard(a: str, b: str) -> float:
    x, y = shingle_set(a), shingle_set(b)
    return len(x & y) / len(x | y)


def seen_text(rec: dict) -> str:
    """What the filter compares: the question and the solution as prepare keeps it (calculator notes stripped)."""
    return rec["question"].strip() + "\n" + CALC.sub("", rec["answer"]).strip()


def make_pairs(problems: list[dict], n: int, min_jaccard: float, seed: int,
               inserted: int = 1) -> list[tuple[dict, dict, float]]:
    """``n`` (original, copy with ``inserted`` words inserted, Jaccard) triples, drawn with ``seed``."""
    rng = random.Random(seed)
    order = list(range(len(problems)))
    rng.shuffle(order)
    pairs = []
    for i in order:
        rec = problems[i]
        words = rec["question"].split()
        for _ in range(inserted):
            k = rng.randrange(1, len(words))
            words = [*words[:k], rng.choice(WORDS), *words[k:]]
        copy = {**rec, "question": " ".join(words)}
        j = jaccard(seen_text(rec), seen_text(copy))
        if j >= min_jaccard:
            pairs.append((rec, copy, j))
        if len(pairs) == n:
            return pairs
    raise SystemExit(f"only {len(pairs)} pairs reach Jaccard {min_jaccard}")


def run_prepare(pairs: list[tuple[dict, dict, float]], tmp: Path) -> dict:
    raw, out = tmp / "raw", tmp / "out"
    (raw / "gsm8k").mkdir(parents=True)
    with open(raw / "gsm8k" / "train.jsonl", "w", encoding="utf-8") as f:
        for a, b, _ in pairs:
            f.write(json.dumps(a) + "\n" + json.dumps(b) + "\n")
    cmd = [sys.executable, "-m", "curiosity_sft", "prepare", "--input", str(raw), "--output", str(out),
           "--model", "none"]
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    dropped = [json.loads(line) for line in (out / "dropped.jsonl").read_text().splitlines() if line]
    pair_of = {stable_id("gsm8k", rec["question"]): k for k, (a, b, _) in enumerate(pairs) for rec in (a, b)}
    caught = false = 0
    for d in dropped:
        if d["reason"] != "near_duplicate":
            continue
        if d["id"] != d["detail"] and pair_of.get(d["id"], -1) == pair_of.get(d["detail"], -2):
            caught += 1
        else:
            false += 1
    return {"caught": caught, "false_removals": false, "dropped_reasons": sorted({d["reason"] for d in dropped})}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", default=str(ROOT.parent / "shared" / "data" / "raw"))
    p.add_argument("--pairs", type=int, default=150)
    p.add_argument("--min-jaccard", type=float, default=0.95)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--words", type=int, default=1, help="words inserted into each copy")
    p.add_argument("--json", help="write the figures here as JSON")
    a = p.parse_args()
    problems = [json.loads(line) for line in (Path(a.input) / "gsm8k" / "train.jsonl").read_text().splitlines() if line]
    rows = []
    for seed in a.seeds:
        pairs = make_pairs(problems, a.pairs, a.min_jaccard, seed, a.words)
        with tempfile.TemporaryDirectory() as tmp:
            r = run_prepare(pairs, Path(tmp))
        js = [j for _, _, j in pairs]
        rows.append({"seed": seed, "pairs": len(pairs), **r, "recall": r["caught"] / len(pairs),
                     "jaccard_min": round(min(js), 4), "jaccard_median": round(statistics.median(js), 4)})
        print(f"seed {seed}: caught {r['caught']}/{len(pairs)} pairs ({r['caught'] / len(pairs):.1%}), "
              f"false removals {r['false_removals']}, pair Jaccard min {min(js):.3f} median {statistics.median(js):.3f}")
    caught, total = sum(r["caught"] for r in rows), sum(r["pairs"] for r in rows)
    print(f"all seeds: {caught}/{total} ({caught / total:.1%})")
    if a.json:
        Path(a.json).write_text(json.dumps({"command": " ".join(sys.argv), "pythonpath": os.path.relpath(os.environ["PYTHONPATH"]) if os.environ.get("PYTHONPATH") else None,
                                            "runs": rows, "recall": caught / total}, indent=2) + "\n")


if __name__ == "__main__":
    main()
