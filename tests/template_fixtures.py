"""Offline tokenizer fixtures for three chat-template families, built from SmolLM2's tokenizer.

No hub here, so the templates are written in this file to behave as the real ones do:

- ``R1``: the DeepSeek-R1-distill template (as shipped by every distill, tool calls left out): a
  reply is rendered as ``content.split('</think>')[-1]``, so its reasoning is cut, and the
  generation prompt ends ``<｜Assistant｜><think>\\n``. The tokenizer gets R1's special tokens
  (``<｜begin▁of▁sentence｜>``, ``<｜end▁of▁sentence｜>``, ``<｜User｜>``, ``<｜Assistant｜>``; EOS and pad
  are ``<｜end▁of▁sentence｜>`` as in the distills) and ``<think>``/``</think>`` as added tokens that,
  as in the distills, are not special.
- ``QWEN3``: Qwen3's template (tools left out): reasoning read from ``reasoning_content`` or split
  off at ``</think>``, rendered only for turns after the last user message (the last turn always
  gets a block, empty if need be); earlier turns lose it.
- ChatML: SmolLM2's own template, which renders ``<think>`` like any other text.
"""

from __future__ import annotations

import copy
from pathlib import Path

from transformers import AddedToken

R1_SPECIAL = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"]
THINK_TOKENS = ["<think>", "</think>"]

R1 = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(system_prompt='') %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}"
    "{%- endif %}{%- endfor %}"
    "{{ bos_token }}{{ ns.system_prompt }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is not none %}"
    "{% set content = message['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}"
    "{%- endif %}"
    "{%- endfor -%}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"
)

QWEN3 = (
    "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}"
    "{%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}"
    "{%- if ns.multi_step_tool and message.role == 'user' %}"
    "{%- set ns.multi_step_tool = false %}{%- set ns.last_query_index = index %}{%- endif %}{%- endfor %}"
    "{%- for message in messages %}"
    "{%- set content = message.content if message.content is string else '' %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{%- set reasoning_content = '' %}"
    "{%- if message.reasoning_content is string %}{%- set reasoning_content = message.reasoning_content %}"
    "{%- elif '</think>' in content %}"
    "{%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}"
    "{%- if loop.index0 > ns.last_query_index and (loop.last or reasoning_content) %}"
    "{{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n'"
    " + content.lstrip('\\n') }}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\\n' + content }}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)


def r1_tokenizer(base):
    """SmolLM2's tokenizer made to look like a DeepSeek-R1 distill's (tokens, EOS/pad, template)."""
    tok = copy.deepcopy(base)
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in R1_SPECIAL], special_tokens=True)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    tok.bos_token, tok.eos_token = R1_SPECIAL[0], R1_SPECIAL[1]
    tok.pad_token = tok.eos_token
    tok.chat_template = R1
    return tok


def qwen3_tokenizer(base):
    tok = copy.deepcopy(base)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    tok.chat_template = QWEN3
    return tok


def chatml_tokenizer(base):
    return copy.deepcopy(base)


FAMILIES = {"r1": r1_tokenizer, "qwen3": qwen3_tokenizer, "chatml": chatml_tokenizer}


def write_model_folder(tok, folder: Path) -> Path:
    """A model folder (SmolLM2's config with the vocabulary grown to the tokenizer's, and ``tok``), so
    ``model_name: <folder>`` with ``hidden_dim``/``num_layers`` trains a tiny random model on it."""
    from transformers import AutoConfig

    from curiosity_sft.models import resolve_model

    cfg = AutoConfig.from_pretrained(resolve_model("smollm2-135m-instruct").path)
    cfg.vocab_size = len(tok)
    cfg.eos_token_id, cfg.bos_token_id, cfg.pad_token_id = tok.eos_token_id, tok.bos_token_id, tok.pad_token_id
    folder.mkdir(parents=True, exist_ok=True)
    cfg.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder
