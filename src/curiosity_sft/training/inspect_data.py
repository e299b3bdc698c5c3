"""``inspect``: what training will see, before it runs (Axolotl's debug preprocessing, for this pipeline).

It loads the tokenizer and chat template with ``training_template`` and encodes the file with
``encode_file``, the two functions ``training/loop.py`` calls, so what it shows is what the loop
trains: the same template variant, reasoning format, drop reasons and token counts. A trained-token
count is what the loss counts (a sequence's first token is never a target, as in ``collate``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from curiosity_sft.config import SFTConfig
from curiosity_sft.io import atomic_write_text
from curiosity_sft.training.batching import DROP_REASONS, IGNORE, Encoded, encode_file, training_template

TRAINED_STYLE = "bold black on green"
MARK = ("⟦", "⟧")  # trained text when the console has no colour (a pipe, a file, NO_COLOR)


def _trained_mask(e: Encoded) -> list[bool]:
    return [False] + [lab != IGNORE for lab in e.labels[1:]]


def _runs(tok: Any, e: Encoded) -> list[tuple[str, bool]]:
    """The sequence decoded in runs of trained / untrained tokens, special tokens kept."""
    mask = _trained_mask(e)
    runs: list[tuple[str, bool]] = []
    start = 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            runs.append((tok.decode(e.input_ids[start:i]), mask[start]))
            start = i
    return runs


def example_record(tok: Any, example_id: str, seqs: list[Encoded]) -> dict[str, Any]:
    """The JSON object ``--json`` writes for one example: exactly id, rendered, trained_text, n_tokens, n_trained."""
    mask = [m for e in seqs for m in _trained_mask(e)]
    ids = [i for e in seqs for i in e.input_ids]
    return {"id": example_id, "rendered": "".join(tok.decode(e.input_ids) for e in seqs),
            "trained_text": tok.decode([i for i, m in zip(ids, mask, strict=True) if m]),
            "n_tokens": len(ids), "n_trained": sum(mask)}


def inspect_data(cfg: SFTConfig, data: str | Path | None = None, n: int = 3, json_path: str | Path | None = None,
                 console: Console | None = None) -> dict[str, Any]:
    """Print the first ``n`` examples with their trained tokens highlighted, and the file's totals."""
    console = console or Console(soft_wrap=True)  # rendered text keeps its own line breaks
    chat = training_template(cfg.model_name, cfg.chat_template)
    tok = chat.tok
    path = Path(data or cfg.train_file)
    res = encode_file(path, chat, cfg.max_length, cfg.reasoning_format, "inspected")
    by_id: dict[str, list[Encoded]] = {}
    for e in res.kept:
        by_id.setdefault(e.example_id, []).append(e)
    from curiosity_sft.data.schema import read_examples

    first = read_examples(path)[:n]
    records = []
    colour = console.color_system is not None
    for k, ex in enumerate(first, 1):
        head = f"example {k}/{len(first)}  {ex.id}  ({ex.source})"
        if ex.id in res.drops:
            reason, detail = res.drops[ex.id]
            console.rule(f"{head}: dropped, {DROP_REASONS[reason]}" + (f" ({detail})" if detail else ""))
            continue
        rec = example_record(tok, ex.id, by_id[ex.id])
        records.append(rec)
        seqs = by_id[ex.id]
        console.rule(f"{head}: {rec['n_tokens']} tokens, {rec['n_trained']} trained"
                     + (f", {len(seqs)} sequences" if len(seqs) > 1 else ""))
        for j, e in enumerate(seqs):
            if j:
                console.print(Text(f"--- sequence {j + 1} ---", style="dim"))
            text = Text()
            for run, trained in _runs(tok, e):
                if trained:
                    text.append(run if colour else f"{MARK[0]}{run}{MARK[1]}", style=TRAINED_STYLE)
                else:
                    text.append(run, style="dim")
            console.print(text, highlight=False, markup=False)
    n_tokens = sum(len(e.input_ids) for e in res.kept)
    n_trained = sum(sum(_trained_mask(e)) for e in res.kept)
    summary = {"file": str(path), "examples": res.examples, "sequences": len(res.kept), "tokens": n_tokens,
               "trained_tokens": n_trained, "dropped": dict(res.dropped), "reasoning_format": res.reasoning_format,
               "formats": dict(res.formats), "template": chat.name,
               "template_behaviour": chat.behaviour.describe() if tok.chat_template else None}
    console.rule("summary")
    console.print(f"template: {summary['template']}: {summary['template_behaviour']}", highlight=False, markup=False)
    console.print(f"reasoning_format {cfg.reasoning_format} -> {res.reasoning_format}: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(res.formats.items())), highlight=False, markup=False)
    console.print(f"{path}: {res.examples} examples -> {len(res.kept)} sequences, {n_tokens:,} tokens, "
                  f"{n_trained:,} trained ({n_trained / max(n_tokens, 1):.1%}); dropped "
                  f"{res.drop_summary(cfg.max_length) or 'none'}", highlight=False, markup=False)
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(records, ensure_ascii=False, indent=1) + "\n")
    return summary
