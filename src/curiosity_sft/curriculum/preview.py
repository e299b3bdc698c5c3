"""``curiosity-sft curriculum``: what a sampler will do with a config's training data, before any training.

It reads and tokenizes ``train_file`` exactly as training does, builds the configured sampler
and prints its table; for the strategies that need no model it then draws every step of the run
and shows, window by window, each source's share of the tokens and the mean difficulty rank, so
a pacing or stage setting can be checked in seconds instead of after a run.
"""

from __future__ import annotations

from pathlib import Path

from curiosity_sft.config import SFTConfig
from curiosity_sft.curriculum.build import build_sampler, curriculum_data, describe, encode_kept
from curiosity_sft.curriculum.samplers import Sampler
from curiosity_sft.data.schema import read_examples
from curiosity_sft.errors import UserError
from curiosity_sft.training.batching import training_template


def schedule(sampler: Sampler, windows: int = 10) -> list[dict[str, float | str]]:
    """Draw every step of the run; per window of steps, each source's token share and the mean difficulty."""
    data = sampler.data
    edges = [round(k * sampler.total_steps / windows) for k in range(windows + 1)]
    out: list[dict[str, float | str]] = []
    for lo, hi in zip(edges, edges[1:], strict=False):
        if hi <= lo:
            continue
        tokens = dict.fromkeys(data.source_names, 0)
        hardness, n = 0.0, 0
        for step in range(lo, hi):
            for row in sampler.next_step(step):
                for i in row:
                    tokens[data.sources[i]] += data.lengths[i]
                    hardness += data.difficulty[i]
                    n += 1
        total = sum(tokens.values()) or 1
        out.append({"steps": f"{lo}-{hi}", **{s: round(t / total, 3) for s, t in tokens.items()},
                    "difficulty": round(hardness / max(n, 1), 3)})
    return out


def preview(cfg: SFTConfig, processes: int = 1, show_progress: bool = True) -> str:
    """The text ``curiosity-sft curriculum`` prints."""
    if not Path(cfg.train_file).is_file():
        raise UserError("train file not found", where=cfg.train_file,
                        fix="run `curiosity-sft prepare` first or set train_file in the config")
    chat = training_template(cfg.model_name, cfg.chat_template)  # the tokenizer and template training uses
    tok = chat.tok
    encoded, kept = encode_kept(read_examples(cfg.train_file), chat, cfg.max_length, cfg.reasoning_format)
    if not kept:
        raise UserError(f"every training example is longer than max_length={cfg.max_length}", where=cfg.train_file,
                        fix="raise max_length")
    data = curriculum_data(cfg, encoded, kept, tok.pad_token_id, show_progress=show_progress)
    sampler = build_sampler(cfg, data, cfg.global_batch_size * processes)
    lines = [describe(sampler, cfg.curriculum.difficulty)]
    if sampler.strategy == "curiosity":
        lines += ["", "bucket probabilities start uniform and then follow each bucket's learning progress, measured "
                      f"every {cfg.curriculum.curiosity_probe_every} steps during training"]
        return "\n".join(lines)
    rows = schedule(sampler)
    cols = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    lines += ["", "token share per source and mean difficulty rank, by window of steps:",
              "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    lines += ["  ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)
