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

    def thinking_tokens(self, chat: ChatTemplate) -> int:
        """What thinking adds to every answer budget: nothing unless the template thinks."""
        return self.max_thinking_tokens if chat.tok.chat_template and chat.behaviour.thinks else 0

    def budget(self, chat: ChatTemplate) -> int:
        return self.max_new_tokens + self.thinking_tokens(chat)

    def to_dict(self, chat: ChatTemplate) -> dict[str, Any]:
        d: dict[str, Any] = {"sampling": self.sampling, "num_samples": self.num_samples, "budget": self.budget(chat),
                             "thinking_tokens": self.thinking_tokens(chat), "max_new_tokens": self.max_new_tokens, "max_thinking_tokens": self.max_thinking_tokens}
        return {**d, **(DEEPSEEK_SAMPLING if self.sampling == "deepseek" else {})}


@dataclass
class Generation:
    example: Example
    prompt: str
    output: str  # the whole reply, a prefilled `<think>\n` included
    new_tokens: int
    sample: int = 0
    thinking_cut: bool = False  # still thinking when the budget ran out: no answer
    budget: int | None = None  # the new-token budget it had (thinking included)


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
    return Generation(ex, prompt, output, n, sample, n >= budget and thinking_unclosed(output), budget)


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def _plan(tok: Any, examples: Sequence[Example], max_new_tokens: int | Sequence[int] | None,
          settings: GenerationSettings | None, shots: Mapping[str, Sequence[Shot]] | None,
          ) -> tuple[GenerationSettings, ChatTemplate, list[str], list[int], tuple[str, ...]]:
    """What both back ends generate from: the settings, the template, each example's prompt and
    budget (its answer budget, ``settings``'s by default, plus the thinking budget when the
    template thinks) and the stop strings (lm-eval's, for few-shot prompts only)."""
    settings = settings or GenerationSettings(max_new_tokens if isinstance(max_new_tokens, int) else 256)
    answer = settings.max_new_tokens if max_new_tokens is None else max_new_tokens
    chat = tok if isinstance(tok, ChatTemplate) else ChatTemplate(tok)
    shots = shots or {}
    prompts = [prompt_text(ex, chat, shots.get(ex.id, ())) for ex in examples]
    per_example = [answer] * len(examples) if isinstance(answer, int) else list(answer)
    budgets = [b + settings.thinking_tokens(chat) for b in per_example]
    return settings, chat, prompts, budgets, (STOP_STRINGS if shots else ())


@torch.no_grad()
def generate(model: torch.nn.Module, tok: Any, examples: Sequence[Example],
             max_new_tokens: int | Sequence[int] | None = None, batch_size: int = 16, show_progress: bool = False,
             settings: GenerationSettings | None = None, shots: Mapping[str, Sequence[Shot]] | None = None) -> tuple[list[Generation], dict[str, Any]]:
    """(generations in input order, ``num_samples`` per example; speed: tokens/s, tokens, seconds, ...).

    ``max_new_tokens`` is one answer budget or one per example (default: ``settings``'s); when the
    template thinks, the thinking budget of ``settings`` is added to each. A batch runs to its
    largest budget and each output is cut at its own, which under greedy decoding is exactly what
    generating with that budget alone gives. ``shots`` gives GSM8K examples their few-shot examples
    (``fewshot.assign_shots``).
    """
    settings, chat, prompts, budgets, stops = _plan(tok, examples, max_new_tokens, settings, shots)
    tok = chat.tok
    device = next(model.parameters()).device
    tok.padding_side = "left"
    prefills = [prefill_of(chat, p) for p in prompts]
    k = settings.num_samples
    sampled = settings.sampling == "deepseek"
    extra: dict[str, Any] = {"do_sample": True, **DEEPSEEK_SAMPLING, "num_return_sequences": k} if sampled else {
        "do_sample": False}
    if stops:
        extra.update(stop_strings=list(stops), tokenizer=tok)
    torch.manual_seed(settings.seed)
    # Largest budget, then longest prompt first: batches of similar length waste less compute on padding.
    order = sorted(range(len(examples)), key=lambda i: (-budgets[i], -len(prompts[i])))
    results: list[list[Generation]] = [[] for _ in examples]
    stop = stop_ids(chat)
    ends = {*stop, tok.pad_token_id}  # a row finished by a stop string is padded after it
    n_new, t0 = 0, time.perf_counter()
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task("generating", total=len(examples))
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            out = model.generate(**enc, max_new_tokens=max(budgets[i] for i in idx), eos_token_id=stop,
                                 pad_token_id=tok.pad_token_id, **extra)
            new = out[:, enc["input_ids"].shape[1]:]
            for row in range(new.shape[0]):
                i = idx[row // k if sampled else row]
                ids = new[row].tolist()[:budgets[i]]
                length = next((j for j, t in enumerate(ids) if t in ends), len(ids))
                n_new += length
                results[i].append(_finish(examples[i], prompts[i], prefills[i],
                                          tok.decode(ids[:length], skip_special_tokens=True), length, budgets[i],
                                          len(results[i]), stops))
            progress.advance(task, len(idx))
    speed = _speed(n_new, time.perf_counter() - t0, batch_size, "transformers")
    return [g for r in results for g in r], {**speed, **settings.to_dict(chat)}


def generate_vllm(model_dir: str | Path, tok: Any, examples: Sequence[Example],
                  max_new_tokens: int | Sequence[int] | None = None, settings: GenerationSettings | None = None,
                  shots: Mapping[str, Sequence[Shot]] | None = None) -> tuple[list[Generation], dict[str, Any]]:
    """The same generations through vLLM (GPU), one ``SamplingParams`` per example (its budget);
    ``model_dir`` is a Hugging Face folder or hub id."""
    from vllm import LLM, SamplingParams

    settings, chat, prompts, budgets, stops = _plan(tok, examples, max_new_tokens, settings, shots)
    sampling = ({**DEEPSEEK_SAMPLING, "n": settings.num_samples, "seed": settings.seed}
                if settings.sampling == "deepseek" else {"temperature": 0.0})
    llm = LLM(model=str(model_dir), tokenizer=str(model_dir), dtype="auto", seed=settings.seed)
    params = [SamplingParams(max_tokens=b, stop_token_ids=stop_ids(chat), stop=list(stops) or None, **sampling)
              for b in budgets]
    t0 = time.perf_counter()
    outs = llm.generate(prompts, params)
    gens = [_finish(ex, p, prefill_of(chat, p), o.text, len(o.token_ids), b, j, ())
            for ex, p, b, res in zip(examples, prompts, budgets, outs, strict=True) for j, o in enumerate(res.outputs)]
    speed = _speed(sum(g.new_tokens for g in gens), time.perf_counter() - t0, len(prompts), "vllm")
    return gens, {**speed, **settings.to_dict(chat)}


def _speed(tokens: int, seconds: float, batch_size: int, backend: str) -> dict[str, Any]:
    return {"tokens_per_second": tokens / max(seconds, 1e-9), "new_tokens": tokens, "seconds": seconds,
            "batch_size": batch_size, "backend": backend}
