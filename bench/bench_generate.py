"""Generation speed on CPU: batched greedy generation vs one prompt at a time, real SmolLM2-135M-Instruct.

    CURIOSITY_SFT_CACHE=.cache .venv/bin/python bench/bench_generate.py [--prompts 16] [--new-tokens 64]

Prompts are GSM8K test questions from ../shared/data/raw when present, else the embedded synthetic
ones. Every prompt generates exactly ``--new-tokens`` tokens (no early stop), so both runs do the
same work and tokens/s compare directly. Figures go in docs/EVALUATION.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from curiosity_sft.data.schema import Example, chat
from curiosity_sft.evaluation.generate import prompt_text
from curiosity_sft.training.export import load_for_inference

ROOT = Path(__file__).resolve().parents[1]


FALLBACK = ["A baker makes 24 rolls and sells 3/4 of them. How many are left?",
            "Tom has $50 and buys 3 books at $12 each. How much money does he have left?",
            "A train goes 60 km per hour for 2.5 hours. How far does it travel?",
            "Sara reads 15 pages a day. How many days does she need for a 240-page book?"]


def questions(n: int) -> list[str]:
    raw = ROOT.parent / "shared" / "data" / "raw" / "gsm8k" / "test.jsonl"
    if raw.is_file():
        return [json.loads(x)["question"] for x in raw.read_text().splitlines()[:n]]
    return [FALLBACK[i % len(FALLBACK)] for i in range(n)]  # offline: the embedded questions


@torch.no_grad()
def tokens_per_second(model, tok, prompts: list[str], batch_size: int, new_tokens: int) -> float:
    tok.padding_side = "left"
    t0 = time.perf_counter()
    for s in range(0, len(prompts), batch_size):
        enc = tok(prompts[s:s + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                       pad_token_id=tok.pad_token_id)
    return len(prompts) * new_tokens / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batch-sizes", default="1,16")
    a = ap.parse_args()
    torch.manual_seed(0)
    model, tok, desc = load_for_inference(a.model)
    prompts = [prompt_text(Example(f"q{i}", "gsm8k", messages=chat(q, "")), tok) for i, q in enumerate(questions(a.prompts))]
    tokens_per_second(model, tok, prompts[:2], 2, 4)  # warm-up
    res = {"model": desc, "dtype": str(next(model.parameters()).dtype), "threads": torch.get_num_threads(),
           "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "prompts": a.prompts,
           "new_tokens": a.new_tokens}
    for bs in map(int, a.batch_sizes.split(",")):
        res[f"tokens_per_second_batch_{bs}"] = round(tokens_per_second(model, tok, prompts, bs, a.new_tokens), 1)
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
