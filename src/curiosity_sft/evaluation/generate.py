"""Batched generation from the chat template's own generation prompt, greedy or sampled.

Batching is the whole speed story on CPU: one forward pass per new token serves the whole batch
(bench/bench_generate.py measures it; docs/EVALUATION.md has the figures). With ``vllm``
installed and a GPU present, vLLM's continuous batching does the same job much faster.

Reasoning models: the prompt is ``ChatTemplate.prompt``, the very text the trained tokens follow in
training, so an R1 distill is prompted with its prefilled ``<think>\\n``. That prefill is put back
in front of the recorded output (the output is the whole reply), so an answer is read after
``</think>`` and a reply whose thinking never closed is told apart: with a thinking template the
budget is ``max_new_tokens`` for the answer plus ``max_thinking_tokens`` for the thinking, and a
reply still thinking when it runs out is "no answer: thinking cut at N tokens", counted apart from
wrong answers. DeepSeek's recommended sampling for its R1 models (temperature 0.6, top-p 0.95,
several samples per prompt, accuracy averaged over them; R1 model card) is an option beside greedy.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from rich.progress import Progress

from curiosity_sft.chat_template import ChatTemplate
from curiosity_sft.data.reasoning import THINK_CLOSE, THINK_OPEN
from curiosity_sft.data.schema import Example
from curiosity_sft.evaluation.fewshot import STOP_STRINGS, Shot, fewshot_messages

DEEPSEEK_SAMPLING = {"temperature": 0.6, "top_p": 0.95}  # DeepSeek-R1 model card, "Usage Recommendations"
GPU_THINKING_TOKENS = 32768  # DeepSeek's own R1 evaluations generate up to 32,768 tokens
CPU_THINKING_TOKENS = 256  # a CPU cannot generate thousands of tokens per answer in a test run


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are generated; ``from_config`` reads the ``eval_*`` keys."""

    max_new_tokens: int = 256  # the answer's budget
    max_thinking_tokens: int = 0  # added to it when the template thinks
    sampling: Literal["greedy", "deepseek"] = "greedy"
    num_samples: int = 1
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: Any, device: torch.device | str, max_new_tokens: int | None = None) -> GenerationSettings:
        thinking = cfg.eval_max_thinking_tokens
        if thinking is None:
            thinking = GPU_THINKING_TOKENS if torch.device(device).type == "cuda" else CPU_THINKING_TOKENS
        return cls(max_new_tokens or cfg.eval_max_new_tokens, thinking, cfg.eval_sampling,
                   cfg.eval_num_samples if cfg.eval_sampling == "deepseek" else 1, cfg.seed)

    def budget(self, chat: ChatTemplate) -> int:
        return self.max_new_tokens + (self.max_thinking_tokens if chat.tok.chat_template and chat.behaviour.thinks
                                      else 0)

    def to_dict(self, chat: ChatTemplate) -> dict[str, Any]:
        d: dict[str, Any] = {"sampling": self.sampling, "num_samples": self.num_samples, "budget": self.budget(chat),
                             "max_new_tokens": self.max_new_tokens, "max_thinking_tokens": self.max_thinking_tokens}
        return {**d, **(DEEPSEEK_SAMPLING if self.sampling == "deepseek" else {})}


@dataclass
class Generation:
    example: Example
    prompt: str
    output: str  # the whole reply, a prefilled `<think>\n` included
    new_tokens: int
    sample: int = 0
    thinking_cut: bool = False  # still thinking when the budget ran out: no answer


def prompt_text(ex: Example, tok: Any, shots: Sequence[Shot] = ()) -> str:
    """The text generation starts from: the template's generation prompt (or half a text passage)."""
    if ex.messages is not None:
        chat = tok if isinstance(tok, ChatTemplate) else ChatTemplate(tok)
        return chat.prompt(fewshot_messages(ex, shots) if shots else ex.prompt_messages)
    words = ex.text.split()  # text examples: continue the first half of the passage
    return " ".join(words[: len(words) // 2])


def stop_ids(tok: Any) -> list[int]:
    """EOS and the chat template's end-of-turn token: either one ends an answer."""
    chat = tok if isinstance(tok, ChatTemplate) else ChatTemplate(tok)
    return chat.stop_token_ids() if chat.tok.chat_template else [chat.tok.eos_token_id]


def prefill_of(chat: ChatTemplate, prompt: str) -> str:
    """The opening of the reply that the prompt already holds (R1: ``<think>\\n``)."""
    p = chat.prefill if chat.tok.chat_template else ""
    return p if p and prompt.endswith(p) else ""


def thinking_unclosed(output: str) -> bool:
    opened = output.rfind(THINK_OPEN)
    return opened >= 0 and THINK_CLOSE not in output[opened:]


def _finish(ex: Example, prompt: str, prefill: str, text: str, n: int, budget: int, sample: int,
            stops: Sequence[str]) -> Generation:
    for s in stops:  # lm-eval's `until`: the text from a stop string on is not the answer
        if s in text:
            text = text[:text.index(s)]
    output = prefill + text
    return Generation(ex, prompt, output, n, sample, n >= budget and thinking_unclosed(output))


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


@torch.no_grad()
def generate(model: torch.nn.Module, tok: Any, examples: Sequence[Example], max_new_tokens: int = 256,
             batch_size: int = 16, show_progress: bool = False, settings: GenerationSettings | None = None,
             shots: Mapping[str, Sequence[Shot]] | None = None) -> tuple[list[Generation], dict[str, Any]]:
    """(generations in input order, ``num_samples`` per example; speed: tokens/s, tokens, seconds, ...).

    ``shots`` gives GSM8K examples their few-shot examples (``fewshot.assign_shots``).
    """
    settings = settings or GenerationSettings(max_new_tokens)
    chat = tok if isinstance(tok, ChatTemplate) else ChatTemplate(tok)
    tok = chat.tok
    device = next(model.parameters()).device
    tok.padding_side = "left"
    shots = shots or {}
    prompts = [prompt_text(ex, chat, shots.get(ex.id, ())) for ex in examples]
    budget = settings.budget(chat)
    k = settings.num_samples
    sampled = settings.sampling == "deepseek"
    extra: dict[str, Any] = {"do_sample": True, **DEEPSEEK_SAMPLING, "num_return_sequences": k} if sampled else {
        "do_sample": False}
    stops = STOP_STRINGS if shots else ()
    if stops:
        extra.update(stop_strings=list(stops), tokenizer=tok)
    torch.manual_seed(settings.seed)
    # Longest first: batches of similar length waste less compute on padding.
    order = sorted(range(len(examples)), key=lambda i: -len(prompts[i]))
    results: list[list[Generation]] = [[] for _ in examples]
    stop = stop_ids(chat)
    ends = {*stop, tok.pad_token_id}  # a row finished by a stop string is padded after it
    n_new, t0 = 0, time.perf_counter()
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task("generating", total=len(examples))
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            out = model.generate(**enc, max_new_tokens=budget, eos_token_id=stop, pad_token_id=tok.pad_token_id,
                                 **extra)
            new = out[:, enc["input_ids"].shape[1]:]
            for row in range(new.shape[0]):
                i = idx[row // k if sampled else row]
                ids = new[row].tolist()
                length = next((j for j, t in enumerate(ids) if t in ends), len(ids))
                n_new += length
                results[i].append(_finish(examples[i], prompts[i], prefill_of(chat, prompts[i]),
                                          tok.decode(ids[:length], skip_special_tokens=True), length, budget,
                                          len(results[i]), stops))
            progress.advance(task, len(idx))
    speed = _speed(n_new, time.perf_counter() - t0, batch_size, "transformers")
    return [g for r in results for g in r], {**speed, **settings.to_dict(chat)}


def generate_vllm(model_dir: str | Path, tok: Any, examples: Sequence[Example], max_new_tokens: int = 256,
                  settings: GenerationSettings | None = None,
                  shots: Mapping[str, Sequence[Shot]] | None = None) -> tuple[list[Generation], dict[str, Any]]:
    """The same generations through vLLM (GPU); ``model_dir`` is a Hugging Face folder or hub id."""
    from vllm import LLM, SamplingParams

    settings = settings or GenerationSettings(max_new_tokens)
    chat = tok if isinstance(tok, ChatTemplate) else ChatTemplate(tok)
    shots = shots or {}
    prompts = [prompt_text(ex, chat, shots.get(ex.id, ())) for ex in examples]
    budget = settings.budget(chat)
    stops = STOP_STRINGS if shots else ()
    sampling = ({**DEEPSEEK_SAMPLING, "n": settings.num_samples, "seed": settings.seed}
                if settings.sampling == "deepseek" else {"temperature": 0.0})
    llm = LLM(model=str(model_dir), tokenizer=str(model_dir), dtype="auto", seed=settings.seed)
    params = SamplingParams(max_tokens=budget, stop_token_ids=stop_ids(chat), stop=list(stops) or None, **sampling)
    t0 = time.perf_counter()
    outs = llm.generate(prompts, params)
    gens = [_finish(ex, p, prefill_of(chat, p), o.text, len(o.token_ids), budget, j, ())
            for ex, p, res in zip(examples, prompts, outs, strict=True) for j, o in enumerate(res.outputs)]
    speed = _speed(sum(g.new_tokens for g in gens), time.perf_counter() - t0, len(prompts), "vllm")
    return gens, {**speed, **settings.to_dict(chat)}


def _speed(tokens: int, seconds: float, batch_size: int, backend: str) -> dict[str, Any]:
    return {"tokens_per_second": tokens / max(seconds, 1e-9), "new_tokens": tokens, "seconds": seconds,
            "batch_size": batch_size, "backend": backend}
