"""Puzzles the project has never seen, generated locally with reasoning-gym, and hostile outputs for them.

The knights-and-knaves puzzles use the generator's other role words (pioneers and laggards,
saints and sinners, heroes and villains, ...), never knight/knave, so a scorer that only knows
the shared data's wording is caught. The hostile outputs are the ones that fooled the old
scorers (issue 12, item 9): the prompt's format hint echoed back, a hedged or negated zebra
answer, a premise restated as a propositional-logic conclusion.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

N_KNIGHTS_KNAVES, N_ZEBRA, N_PROPOSITIONAL = 200, 100, 100
SEED = 1212


def _plain(o: Any) -> Any:
    return o.item() if hasattr(o, "item") else str(o)  # numpy scalars in reasoning-gym's metadata


def generate_puzzles() -> list[dict[str, Any]]:
    """Raw records in the shared data's layout (``task``/``question``/``answer``/``metadata``)."""
    import reasoning_gym as rg

    def unique(items: Any, n: int, keep: Any = lambda item: True) -> list[dict[str, Any]]:
        """The first ``n`` wanted items with distinct questions (a question is an example's identity)."""
        seen: set[str] = set()
        out = []
        for item in items:
            if keep(item) and item["question"] not in seen:
                seen.add(item["question"])
                out.append(item)
        assert len(out) >= n, (len(out), n)
        return out[:n]

    kk = unique((item for n_people in (2, 3, 4)
                 for item in rg.create_dataset("knights_knaves", size=150, seed=SEED + n_people, n_people=n_people)),
                N_KNIGHTS_KNAVES, lambda item: item["metadata"]["knight_knave_terms"]["knight"] != "knight")
    zebra = unique(rg.create_dataset("zebra_puzzles", size=N_ZEBRA + 10, seed=SEED, num_people=3, num_characteristics=3),
                   N_ZEBRA)
    prop = unique(rg.create_dataset("propositional_logic", size=N_PROPOSITIONAL + 20, seed=SEED), N_PROPOSITIONAL)
    out = []
    for task, items in (("knights_knaves", kk), ("zebra_puzzles", zebra), ("propositional_logic", prop)):
        for item in items:
            rec = {"task": task, "question": item["question"], "answer": item["answer"], "metadata": item["metadata"]}
            out.append(json.loads(json.dumps(rec, default=_plain)))
    return out


def write_puzzles(path: Path) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in generate_puzzles()), encoding="utf-8")
    return path


def format_hint(question: str) -> str:
    """The answer template reasoning-gym puts in the question: 'A is a saint/sinner, and B is a saint/sinner'."""
    m = re.search(r'Format your answer like: "([^"]+)"', question)
    assert m, question
    return m.group(1)


def hostile_outputs(task: str, question: str, answer: str | None, metadata: dict[str, Any]) -> dict[str, str]:
    """{kind: output} of the wrong answers that look right to a naive scorer."""
    if task == "knights_knaves":
        return {"echoed format hint": format_hint(question)}
    if task == "zebra_puzzles":
        return {"hedged": f"either {answer} or someone else, not {answer}", "negated": f"The answer is not {answer}."}
    if task == "propositional_logic":
        return {"restated premise": f"Conclusion: {metadata['premises'][-1]}"}
    raise ValueError(task)


def truthful_everyone(answer: str, metadata: dict[str, Any]) -> bool:
    """Whether every inhabitant is the truthful kind: the echoed hint fooled the old scorer exactly then."""
    truthful = metadata["knight_knave_terms"]["knight"]
    roles = re.findall(r"\bis an? (\w+)", answer)
    return bool(roles) and all(r == truthful for r in roles)
