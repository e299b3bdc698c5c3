"""Batched greedy generation with left padding, stopping at the end-of-turn token.

Batching is the whole speed story on CPU: one forward pass per new token serves the whole batch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from rich.progress import Progress

from curiosity_sft.data.schema import Example


@dataclass
class Generation:
    example: Example
    prompt: str
    output: str
    new_tokens: int


def prompt_text(ex: Example, tok) -> str:
    if ex.messages is not None:
        return tok.apply_chat_template(ex.prompt_messages, tokenize=False, add_generation_prompt=True)
    words = ex.text.split()  # text examples: continue the first half of the passage
    return " ".join(words[: len(words) // 2])


@torch.no_grad()
def generate(model: torch.nn.Module, tok, examples: Sequence[Example], max_new_tokens: int = 256,
             batch_size: int = 16, show_progress: bool = False) -> tuple[list[Generation], float]:
    """(generations in input order, generated tokens per second)."""
    device = next(model.parameters()).device
    tok.padding_side = "left"
    prompts = [prompt_text(ex, tok) for ex in examples]
    # Longest first: batches of similar length waste less compute on padding.
    order = sorted(range(len(examples)), key=lambda i: -len(prompts[i]))
    results: list[Generation | None] = [None] * len(examples)
    stop = [t for t in {tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")} if isinstance(t, int) and t >= 0]
    n_new, t0 = 0, time.perf_counter()
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task("generating", total=len(examples))
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop,
                                 pad_token_id=tok.pad_token_id)
            new = out[:, enc["input_ids"].shape[1]:]
            for row, i in enumerate(idx):
                ids = new[row].tolist()
                length = next((k for k, t in enumerate(ids) if t in stop), len(ids))
                n_new += length
                results[i] = Generation(examples[i], prompts[i], tok.decode(ids[:length], skip_special_tokens=True),
                                        length)
            progress.advance(task, len(idx))
    return [r for r in results if r is not None], n_new / max(time.perf_counter() - t0, 1e-9)
