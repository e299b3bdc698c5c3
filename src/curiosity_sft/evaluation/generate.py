"""Batched greedy generation with left padding, stopping at the end-of-turn token.

Batching is the whole speed story on CPU: one forward pass per new token serves the whole batch
(bench/bench_generate.py measures it; docs/EVALUATION.md has the figures). With ``vllm``
installed and a GPU present, vLLM's continuous batching does the same job much faster.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def stop_ids(tok) -> list[int]:
    """EOS and the chat template's end-of-turn token: either one ends an answer."""
    return sorted(t for t in {tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")} if isinstance(t, int) and t >= 0)


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def _budgets(max_new_tokens: int | Sequence[int], n: int) -> list[int]:
    return [max_new_tokens] * n if isinstance(max_new_tokens, int) else list(max_new_tokens)


@torch.no_grad()
def generate(model: torch.nn.Module, tok, examples: Sequence[Example], max_new_tokens: int | Sequence[int] = 256,
             batch_size: int = 16, show_progress: bool = False) -> tuple[list[Generation], dict[str, Any]]:
    """(generations in input order, speed: tokens/s, tokens, seconds, batch size, backend).

    ``max_new_tokens`` is one budget or one per example; a batch runs to its largest budget and
    each output is cut at its own, which under greedy decoding is exactly what generating with
    that budget alone gives.
    """
    device = next(model.parameters()).device
    tok.padding_side = "left"
    prompts = [prompt_text(ex, tok) for ex in examples]
    budgets = _budgets(max_new_tokens, len(examples))
    # Largest budget, then longest prompt first: batches of similar length waste less compute on padding.
    order = sorted(range(len(examples)), key=lambda i: (-budgets[i], -len(prompts[i])))
    results: list[Generation | None] = [None] * len(examples)
    stop = stop_ids(tok)
    n_new, t0 = 0, time.perf_counter()
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task("generating", total=len(examples))
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            out = model.generate(**enc, max_new_tokens=max(budgets[i] for i in idx), do_sample=False,
                                 eos_token_id=stop, pad_token_id=tok.pad_token_id)
            new = out[:, enc["input_ids"].shape[1]:]
            for row, i in enumerate(idx):
                ids = new[row].tolist()[:budgets[i]]
                length = next((k for k, t in enumerate(ids) if t in stop), len(ids))
                n_new += length
                results[i] = Generation(examples[i], prompts[i], tok.decode(ids[:length], skip_special_tokens=True),
                                        length)
            progress.advance(task, len(idx))
    return [r for r in results if r is not None], _speed(n_new, time.perf_counter() - t0, batch_size, "transformers")


def generate_vllm(model_dir: str | Path, tok, examples: Sequence[Example],
                  max_new_tokens: int | Sequence[int] = 256) -> tuple[list[Generation], dict[str, Any]]:
    """The same greedy generations through vLLM (GPU); ``model_dir`` is a Hugging Face folder or hub id."""
    from vllm import LLM, SamplingParams

    prompts = [prompt_text(ex, tok) for ex in examples]
    llm = LLM(model=str(model_dir), tokenizer=str(model_dir), dtype="auto", seed=0)
    params = [SamplingParams(temperature=0.0, max_tokens=b, stop_token_ids=stop_ids(tok))
              for b in _budgets(max_new_tokens, len(prompts))]
    t0 = time.perf_counter()
    outs = llm.generate(prompts, params)
    gens = [Generation(ex, p, o.outputs[0].text, len(o.outputs[0].token_ids))
            for ex, p, o in zip(examples, prompts, outs, strict=True)]
    return gens, _speed(sum(g.new_tokens for g in gens), time.perf_counter() - t0, len(prompts), "vllm")


def _speed(tokens: int, seconds: float, batch_size: int, backend: str) -> dict[str, Any]:
    return {"tokens_per_second": tokens / max(seconds, 1e-9), "new_tokens": tokens, "seconds": seconds,
            "batch_size": batch_size, "backend": backend}
