"""Perplexity over the tokens a model is trained on, per source and overall.

Token-weighted (total loss / total tokens), using the training loss definition itself, so a
validation perplexity here is exactly exp(eval_loss) of the training logs (at the run's own
``max_length``, which ``evaluate`` inherits from the checkpoint). A source, or a whole
evaluation, with no token measured (``--limit 0``, every example over ``max_length``) has
perplexity ``None``: "not measured", never a perfect 1.0.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch
from rich.progress import Progress

from curiosity_sft.data.schema import Example
from curiosity_sft.training.batching import batches, encode_all, plan_epoch
from curiosity_sft.training.loss import sum_token_loss


@torch.no_grad()
def perplexity(model: torch.nn.Module, tok, examples: Sequence[Example], max_length: int, batch_size: int = 16,
               show_progress: bool = False) -> dict[str, dict[str, Any]]:
    """{"overall": {...}, "<source>": {...}} with loss, perplexity and token counts."""
    device = next(model.parameters()).device
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    by_source: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_source[ex.source].append(ex)
    skipped: dict[str, int] = defaultdict(int)
    other = 0
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task("perplexity", total=len(examples))
        for source, exs in sorted(by_source.items()):
            encoding = encode_all(exs, tok, max_length)
            enc = encoding.kept
            skipped[source] += encoding.dropped["too_long"]
            other += encoding.n_dropped - encoding.dropped["too_long"]
            plan = plan_epoch([len(e.input_ids) for e in enc], list(range(len(enc))), batch_size, False, max_length)
            for b in batches(enc, plan, tok.pad_token_id):
                s, n = sum_token_loss(model, b.to(device))
                sums[source] += float(s)
                counts[source] += n
                progress.advance(task, b.input_ids.shape[0])  # unpacked: one example per row
    out: dict[str, dict[str, Any]] = {src: {**_entry(sums[src], counts[src]), "skipped_over_max_length": skipped[src]}
                                      for src in sorted(by_source)}
    out["overall"] = {**_entry(sum(sums.values()), sum(counts.values())),
                      "skipped_over_max_length": sum(skipped.values()), "skipped_template_mismatch_or_empty": other}
    return out


def _entry(loss_sum: float, tokens: int) -> dict[str, Any]:
    """Loss and perplexity over ``tokens``; over no tokens there is no value (None), not exp(0) = 1."""
    if tokens == 0:
        return {"loss": None, "perplexity": None, "tokens": 0}
    loss = loss_sum / tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 50)), "tokens": tokens}
