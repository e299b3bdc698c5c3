"""Perplexity over the tokens a model is trained on, per source and overall.

Token-weighted (total loss / total tokens), using the training loss definition itself, so a
validation perplexity here is exactly exp(eval_loss) of the training logs.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import torch
from rich.progress import Progress

from curiosity_sft.data.schema import Example
from curiosity_sft.training.batching import batches, encode_all, plan_epoch
from curiosity_sft.training.loss import sum_token_loss


@torch.no_grad()
def perplexity(model: torch.nn.Module, tok, examples: Sequence[Example], max_length: int, batch_size: int = 16,
               show_progress: bool = False) -> dict[str, dict[str, float]]:
    """{"overall": {...}, "<source>": {...}} with loss, perplexity and token counts."""
    device = next(model.parameters()).device
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    by_source: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_source[ex.source].append(ex)
    skipped = other = 0
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task("perplexity", total=len(examples))
        for source, exs in sorted(by_source.items()):
            encoding = encode_all(exs, tok, max_length)
            enc = encoding.kept
            skipped += encoding.dropped["too_long"]
            other += encoding.n_dropped - encoding.dropped["too_long"]
            plan = plan_epoch([len(e.input_ids) for e in enc], list(range(len(enc))), batch_size, False, max_length)
            for b in batches(enc, plan, tok.pad_token_id):
                s, n = sum_token_loss(model, b.to(device))
                sums[source] += float(s)
                counts[source] += n
                progress.advance(task, b.input_ids.shape[0])  # unpacked: one example per row
    out: dict[str, dict[str, float]] = {}
    for source in sorted(sums):
        loss = sums[source] / max(counts[source], 1)
        out[source] = {"loss": loss, "perplexity": math.exp(min(loss, 50)), "tokens": counts[source]}
    total_n = sum(counts.values())
    loss = sum(sums.values()) / max(total_n, 1)
    out["overall"] = {"loss": loss, "perplexity": math.exp(min(loss, 50)), "tokens": total_n,
                      "skipped_over_max_length": skipped, "skipped_template_mismatch_or_empty": other}
    return out
