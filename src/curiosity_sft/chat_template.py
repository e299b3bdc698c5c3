"""The model's chat template read by its behaviour: which text a reply trains, which prompt it follows.

The rule, for every template family: the trained tokens of an assistant turn are exactly the text
the model must produce after the template's own generation prompt, the prompt ``evaluate`` gives
it at inference. With SmolLM2's ChatML that is the reply plus ``<|im_end|>``; with a DeepSeek-R1
distill, whose generation prompt ends ``<｜Assistant｜><think>\\n``, it is the reasoning after that
prefilled ``<think>\\n``, ``</think>``, the answer and ``<｜end▁of▁sentence｜>``.

Why this is written by hand: transformers renders the templates (``apply_chat_template``, used for
every render here) and returns an assistant mask only for templates carrying ``{% generation %}``
markers, which the shipped R1-distill, Qwen3 and SmolLM2 templates lack. TRL 1.16 swaps in patched
training templates that it recognises by their exact text, so a local or fine-tuned copy with any
edit falls through, and the patched masks start at the role header (``<｜Assistant｜>``), not after
the generation prompt, so the prefilled ``<think>\\n`` is trained although the model never produces
it. So the template is probed instead: render a probe conversation with a ``<think>`` block and
look at what comes back (does the generation prompt prefill ``<think>``? does the reply keep its
reasoning, or does the template cut it, as the R1 template's ``content.split('</think>')[-1]``
does? are earlier turns re-rendered, as Qwen3 drops their reasoning?).

Three consequences follow, each checked at start-up on probe conversations (``check_round_trip``):

- a template that cuts the reasoning out of the reply is rendered with ``<think>``/``</think>``
  shielded from it (swapped for private-use characters, restored after rendering), so the trained
  text holds the reasoning; when no such variant keeps it, training reasoning stops with an error
  naming the template;
- an assistant turn is trained after the prompt rendered from the conversation before it, so a
  template that renders earlier turns differently once the conversation goes on (R1 and Qwen3 drop
  their reasoning) gives one sequence per such turn, each after the history exactly as the
  template renders it at inference; a template that does not (ChatML) gives one sequence;
- a reply without reasoning under a template whose generation prompt opens ``<think>`` gets an
  empty block (``<think>\\n\\n</think>\\n\\n``, what R1 emits when it skips thinking), so its text
  still follows the prompt.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from transformers import PreTrainedTokenizerBase

from curiosity_sft.data.reasoning import (
    THINK_CLOSE,
    THINK_OPEN,
    normalise_messages,
    split_reasoning,
    think_text,
)
from curiosity_sft.errors import ConfigError, UserError

log = logging.getLogger(__name__)

# Stand-ins for the think tags while a template renders a reply it would otherwise cut. Private-use
# code points: no template tests for them and no real text holds them (a reply that does is refused).
SHIELD = {THINK_OPEN: "\ue000", THINK_CLOSE: "\ue001"}
EMPTY_THINK = think_text("", "")

PROBE_USER = "What is 2 + 3?"
PROBE_REASONING = "I add two and three: 2 + 3 gives five."
PROBE_ANSWER = "The answer is 5."

Piece = tuple[str, bool]  # (text, trained)
Reasoning = Literal["kept", "shielded", "dropped"]


class TemplateError(UserError):
    """A chat template that cannot give the trained text a turn needs."""


class TemplateMismatch(Exception):
    """One conversation this template cannot train (the example is dropped as a template mismatch)."""


def _probe(*turns: tuple[str, str | None]) -> list[dict[str, str]]:
    """[(user, reply or None)] -> messages; replies are ``reasoning|answer`` or a plain answer."""
    msgs: list[dict[str, str]] = []
    for user, reply in turns:
        msgs.append({"role": "user", "content": user})
        if reply is not None:
            msgs.append({"role": "assistant", "content": reply})
    return msgs


def _think(i: int = 0) -> str:
    return think_text(f"{PROBE_REASONING} (step {i})", f"{PROBE_ANSWER} ({i})")


@dataclass(frozen=True)
class Behaviour:
    """What the probes showed; ``describe`` says it in words for the log and ``inspect``."""

    prefill: str  # the opening of the reply the generation prompt already holds, e.g. "<think>\n"
    reasoning: Reasoning  # a reply's reasoning: kept by the template, kept when shielded, or lost
    adds_think: bool  # the template writes a think block of its own into a plain reply (Qwen3)
    drops_history_reasoning: bool  # earlier turns lose their reasoning once the conversation goes on
    end_of_turn: str  # what the template writes after a reply, e.g. "<|im_end|>\n"

    @property
    def thinks(self) -> bool:
        """The template is made for reasoning: it primes, cuts, adds or drops ``<think>`` blocks itself.

        A template that renders ``<think>`` like any other text (plain ChatML) is not; this is what
        ``reasoning_format: auto`` decides by.
        """
        return (self.prefill.startswith(THINK_OPEN) or self.reasoning != "kept" or self.adds_think
                or self.drops_history_reasoning)

    def describe(self) -> str:
        parts = [f"generation prompt prefills {self.prefill!r}" if self.prefill else "no prefilled reply"]
        parts.append({"kept": "replies keep their reasoning",
                      "shielded": "cuts the reasoning out of replies (rendered with the think tags shielded)",
                      "dropped": "loses the reasoning of replies (no variant keeps it)"}[self.reasoning])
        if self.adds_think:
            parts.append("writes its own think block into plain replies")
        if self.drops_history_reasoning:
            parts.append("drops the reasoning of earlier turns (one sequence per reasoning turn)")
        parts.append(f"end of turn {self.end_of_turn!r}")
        return "; ".join(parts)


class ChatTemplate:
    """A tokenizer's chat template, probed once; renders prompts and the pieces a conversation trains.

    ``name`` says where the template came from (the override file or the tokenizer's folder), for
    error messages: the fix for a template that cannot train is usually another template.
    """

    def __init__(self, tok: PreTrainedTokenizerBase, name: str | None = None) -> None:
        self.tok = tok
        self.name = name or f"the chat template of `{getattr(tok, 'name_or_path', '') or 'the tokenizer'}`"
        self._prefill: str | None = None
        self._behaviour: Behaviour | None = None

    # --- rendering -------------------------------------------------------------------------
    def _render(self, messages: Sequence[dict[str, Any]], generation_prompt: bool) -> str:
        if not self.tok.chat_template:
            raise TemplateError(f"{self.name}: the tokenizer has no chat template, and chat examples need one",
                                where="chat_template", fix="set chat_template: path/to/template.jinja")
        if not messages:
            raise TemplateMismatch("the conversation opens with an assistant turn: no prompt comes before it")
        try:
            return str(self.tok.apply_chat_template(list(messages), tokenize=False,
                                                    add_generation_prompt=generation_prompt))
        except UserError:
            raise
        except Exception as e:  # jinja's raise_exception ("roles must alternate"), a missing field, ...
            raise TemplateMismatch(f"the template refuses it: {str(e).splitlines()[0][:160]}") from None

    def prompt(self, messages: Sequence[dict[str, Any]]) -> str:
        """What the model is given before it writes the next reply: the template's generation prompt.

        The one function ``evaluate`` and training both use, so the two cannot disagree.
        """
        return self._render(normalise_messages(messages), True)

    def _reply(self, content: str) -> str:
        """The reply as the model must write it: a prefilled ``<think>`` needs a block to close."""
        if self.prefill.startswith(THINK_OPEN) and split_reasoning({"content": content})[0] is None:
            return EMPTY_THINK + content.lstrip()
        return content

    def _turn(self, messages: list[dict[str, Any]], reasoning: Reasoning) -> tuple[str, str]:
        """(rendered conversation ending with its last reply, that reply's text as the model writes it)."""
        *before, last = messages
        content = self._reply(last["content"])
        if reasoning != "shielded":
            return self._render([*before, {**last, "content": content}], False), content
        if any(s in content for s in SHIELD.values()):
            raise TemplateMismatch("the reply contains private-use characters U+E000/U+E001 used to shield think tags")
        shielded = content
        for tag, stand_in in SHIELD.items():
            shielded = shielded.replace(tag, stand_in)
        text = self._render([*before, {**last, "content": shielded}], False)
        for tag, stand_in in SHIELD.items():
            text = text.replace(stand_in, tag)
        return text, content

    def _target(self, messages: list[dict[str, Any]], i: int, reasoning: Reasoning) -> tuple[str, str]:
        """(prompt, rendered turn) for assistant turn ``i``; raises TemplateMismatch when they disagree."""
        prompt = self._render(messages[:i], True)
        text, content = self._turn(messages[:i + 1], reasoning)
        if not text.startswith(prompt):
            c = _common_prefix_len(prompt, text)
            raise TemplateMismatch(f"turn {i}: with the reply added, the template renders the prompt before it "
                                   f"differently (prompt {prompt[c:c + 40]!r}, rendered {text[c:c + 40]!r})")
        target = text[len(prompt):]
        prefill = self.prefill if prompt.endswith(self.prefill) else ""
        if content.strip() not in prefill + target:
            raise TemplateMismatch(f"turn {i}: the template drops or rewrites the reply "
                                   f"(trained text would be {target[:80]!r})")
        return prompt, text

    def pieces(self, messages: Sequence[dict[str, Any]]) -> list[list[Piece]]:
        """The sequences one conversation trains, as (text, trained) pieces; every assistant turn trained.

        Turns are taken from the last: the last turn's render is a sequence, and every earlier turn
        whose own render is a prefix of it is trained inside it; a turn that the template renders
        differently once the conversation goes on starts a sequence of its own.
        """
        msgs = normalise_messages(messages)
        reasoning = self.behaviour.reasoning
        turns = [i for i, m in enumerate(msgs) if m["role"] == "assistant"]
        if reasoning == "dropped" and any(split_reasoning(msgs[i])[0] for i in turns):
            raise self.no_reasoning_error()
        rendered = {i: self._target(msgs, i, reasoning) for i in turns}
        pending = sorted(turns, reverse=True)
        out: list[list[Piece]] = []
        while pending:
            top, rest = pending[0], pending[1:]
            seq = rendered[top][1]
            inside = [top] + [j for j in rest if seq.startswith(rendered[j][1])]
            pending = [j for j in rest if j not in inside]
            pieces: list[Piece] = []
            pos = 0
            for j in sorted(inside):
                prompt, text = rendered[j]
                pieces += [(seq[pos:len(prompt)], False), (seq[len(prompt):len(text)], True)]
                pos = len(text)
            pieces.append((seq[pos:], False))
            out.append([p for p in pieces if p[0]])
        return out[::-1]

    def full_text(self, messages: Sequence[dict[str, Any]]) -> str:
        """The longest sequence a conversation trains (the whole of it, last reply with its reasoning)."""
        return "".join(t for t, _ in self.pieces(messages)[-1])

    # --- behaviour ---------------------------------------------------------------------------
    @property
    def prefill(self) -> str:
        """The opening of the reply that the generation prompt holds: an unclosed ``<think>...``, or ''."""
        if self._prefill is None:
            user = _probe((PROBE_USER, None))
            gen, bare = self._render(user, True), self._render(user, False)
            header = gen[len(bare):] if gen.startswith(bare) else gen
            opened = header.rfind(THINK_OPEN)
            self._prefill = header[opened:] if opened >= 0 and THINK_CLOSE not in header[opened:] else ""
        return self._prefill

    @property
    def behaviour(self) -> Behaviour:
        if self._behaviour is None:
            self._behaviour = self._probe_behaviour()
        return self._behaviour

    def _probe_behaviour(self) -> Behaviour:
        prefill = self.prefill
        bare = self._render(_probe((PROBE_USER, None)), False)
        reasoning: Reasoning = "dropped"
        thought = _probe((PROBE_USER, _think()))
        for mode in ("kept", "shielded"):
            try:
                self._target(thought, 1, mode)  # type: ignore[arg-type]
                reasoning = mode  # type: ignore[assignment]
                break
            except TemplateMismatch:
                continue
        plain_text = self._render(_probe((PROBE_USER, self._reply(PROBE_ANSWER))), False)
        end = plain_text[plain_text.rfind(PROBE_ANSWER) + len(PROBE_ANSWER):]
        plain = self._render(_probe((PROBE_USER, PROBE_ANSWER)), False)
        adds_think = not prefill and THINK_OPEN in plain[len(bare):]
        history = self._render(_probe((PROBE_USER, _think()), ("And 3 + 4?", None)), False)
        return Behaviour(prefill, reasoning, adds_think, PROBE_REASONING not in history, end)

    def no_reasoning_error(self) -> TemplateError:
        return TemplateError(f"{self.name} cuts the reasoning out of assistant replies and no variant of it keeps "
                             "the reasoning (shielding <think>/</think> does not help)", where="chat_template",
                             fix="set chat_template: path/to/template.jinja to a template that keeps <think> blocks, "
                                 "or reasoning_format: plain with data that has no reasoning")

    def stop_token_ids(self) -> list[int]:
        """EOS and the template's own end-of-turn token (``<|im_end|>``, ``<｜end▁of▁sentence｜>``)."""
        ids = {self.tok.eos_token_id}
        end = self.behaviour.end_of_turn.strip()
        if end:
            first = self.tok(end, add_special_tokens=False)["input_ids"][:1]
            if first and self.tok.convert_ids_to_tokens(first[0]) in self.tok.get_added_vocab():
                ids.add(first[0])
        return sorted(t for t in ids if isinstance(t, int) and t >= 0)

    # --- the start-up check --------------------------------------------------------------------
    def check_round_trip(self) -> None:
        """Probe conversations must train what they should: the reply (with its reasoning, unless
        the template cannot keep it) and its end of turn, for every turn of a 3-turn chat, and the
        prompt's render plus the trained text must be the whole render, in characters and in tokens.
        """
        b = self.behaviour
        probes = [_probe((PROBE_USER, PROBE_ANSWER)),
                  _probe(("Hi", "Hello!"), ("What is 2 + 2?", "4"), ("And 3 + 3?", "6"))]
        if b.reasoning != "dropped":
            probes += [_probe((PROBE_USER, _think())),
                       _probe(("Hi", _think(1)), ("What is 2 + 2?", _think(2)), ("And 3 + 3?", _think(3)))]
        for probe in probes:
            try:
                seqs = self.pieces(probe)
            except TemplateMismatch as e:
                raise TemplateError(f"{self.name} does not round-trip (prompt render + trained text != full render): "
                                    f"{e}", where="chat_template",
                                    fix="set chat_template: path/to/template.jinja to a template whose replies "
                                        "follow its generation prompt") from None
            trained = [t for s in seqs for t, on in s if on]
            replies = [self._reply(m["content"]) for m in probe if m["role"] == "assistant"]
            if len(trained) != len(replies):
                raise TemplateError(f"{self.name}: {len(trained)} of the {len(replies)} assistant turns of a probe "
                                    "chat would be trained", where="chat_template")
            for seq in seqs:
                text = "".join(t for t, _ in seq)
                ids = [i for t, _ in seq for i in self.tok(t, add_special_tokens=False)["input_ids"]]
                if self.tok.decode(ids) != text:
                    log.warning("%s: tokenizing a probe piece by piece does not decode to its text; "
                                "trained tokens may differ slightly from the rendered text", self.name)


def _common_prefix_len(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def apply_override(tok: PreTrainedTokenizerBase, path: str | Path | None) -> str | None:
    """``chat_template: file.jinja`` replaces the tokenizer's template (saved with the run's tokenizer,
    so evaluation renders with it too); returns the name errors use, or None without an override."""
    if path is None:
        return None
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError("chat_template file not found", where=p, fix="give the path of a .jinja file or null")
    source = p.read_text(encoding="utf-8")
    from jinja2 import TemplateSyntaxError

    # transformers' own compiler (private, but the one apply_chat_template uses): its environment
    # knows the {% generation %} tag, so a template carrying it is not refused here.
    from transformers.utils.chat_template_utils import _compile_jinja_template

    try:
        _compile_jinja_template(source)
    except TemplateSyntaxError as e:
        raise ConfigError(f"chat_template is not valid Jinja ({e.message})", where=p, line=e.lineno) from None
    tok.chat_template = source
    return f"the chat template {p}"


def setup_chat_template(tok: PreTrainedTokenizerBase, override: str | Path | None = None) -> ChatTemplate:
    """The template training and ``inspect`` use: the override applied, probed and round-trip checked."""
    chat = ChatTemplate(tok, apply_override(tok, override))
    if tok.chat_template:
        chat.check_round_trip()
        log.info("%s: %s", chat.name, chat.behaviour.describe())
    return chat
