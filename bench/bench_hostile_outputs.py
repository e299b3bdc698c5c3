"""How many hostile outputs a version of the scorers accepts, on 400 reasoning-gym puzzles it has never seen.

    python bench/bench_hostile_outputs.py                                  # this checkout's scorers
    PYTHONPATH=/path/to/other/checkout/src python bench/bench_hostile_outputs.py   # another version's

The puzzles and hostile outputs are tests/rg_puzzles.py's (200 knights-and-knaves with role
words other than knight/knave, 100 zebra, 100 propositional logic, generated locally with
reasoning-gym). Scoring goes through ``load_eval_data`` and ``score_example``, which every
version of the package has, so the same script measures before and after a scorer change.
Also counts what reasoning-gym's own scorer alone gives full credit. Figures: docs/EVALUATION.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import curiosity_sft  # noqa: E402
import rg_puzzles  # noqa: E402
from curiosity_sft.evaluation.evaluate import load_eval_data  # noqa: E402
from curiosity_sft.evaluation.tasks import is_scorable, score_example  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", help="write the counts as JSON here")
    a = ap.parse_args()
    import reasoning_gym

    with tempfile.TemporaryDirectory() as tmp:
        path = rg_puzzles.write_puzzles(Path(tmp) / "test.jsonl")
        raw = [json.loads(x) for x in path.read_text().splitlines()]
        examples = load_eval_data(path)
    assert len(examples) == len(raw)
    accepted, reasoning_gym_full, total = Counter(), Counter(), Counter()
    for rec, ex in zip(raw, examples, strict=True):
        for kind, out in rg_puzzles.hostile_outputs(rec["task"], rec["question"], rec["answer"], rec["metadata"]).items():
            key = f"{rec['task']}: {kind}"
            total[key] += 1
            accepted[key] += bool(is_scorable(ex) and score_example(ex, out)["accuracy"].correct)
            bare = out.removeprefix("Conclusion: ")  # reasoning-gym's scorers take the bare answer
            reasoning_gym_full[key] += reasoning_gym.get_score_answer_fn(rec["task"])(bare, rec) == 1.0
    from importlib.metadata import version

    result = {"curiosity_sft": os.path.relpath(Path(curiosity_sft.__file__).parent, ROOT), "reasoning_gym": version("reasoning-gym"),
              "scored_correct": dict(accepted), "reasoning_gym_full_credit": dict(reasoning_gym_full), "n": dict(total)}
    for key in sorted(total):
        print(f"{key:45s} scored correct {accepted[key]:3d}/{total[key]}   "
              f"(reasoning-gym alone, full credit: {reasoning_gym_full[key]}/{total[key]})")
    if a.output:
        Path(a.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
