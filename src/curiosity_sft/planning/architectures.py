"""The numbers the memory planner needs about a model, without loading its weights.

The DeepSeek-R1 distills ship as a table, so ``curiosity-sft plan`` works offline for the models
the seed names. The values are those of each model's ``config.json`` on the Hugging Face hub
(deepseek-ai/DeepSeek-R1-Distill-Qwen-{1.5B,7B,14B}; the distills keep the architecture of their
bases Qwen2.5-Math-1.5B, Qwen2.5-Math-7B and Qwen2.5-14B). Any other model's numbers are read from
its ``config.json``: a local folder, the converted SmolLM2 in the cache, or the Hugging Face cache.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from curiosity_sft.errors import UserError


@dataclass(frozen=True)
class Architecture:
    """A decoder-only transformer with a gated (SwiGLU) MLP, as Llama/Qwen/SmolLM are."""

    name: str
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    tie_word_embeddings: bool
    head_dim: int = 0
    source: str = ""

    @property
    def dh(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def kv_dim(self) -> int:
        return self.num_key_value_heads * self.dh

    @property
    def q_dim(self) -> int:
        return self.num_attention_heads * self.dh

    def linear_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of every linear layer of one decoder block: q, k, v, o, gate, up, down."""
        d, i = self.hidden_size, self.intermediate_size
        return [(d, self.q_dim), (d, self.kv_dim), (d, self.kv_dim), (self.q_dim, d), (d, i), (d, i), (i, d)]

    @property
    def block_params(self) -> int:
        # Qwen2 has q/k/v biases; they are a rounding error next to the weights and are left out.
        return sum(a * b for a, b in self.linear_shapes()) + 2 * self.hidden_size

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def params(self) -> int:
        head = 0 if self.tie_word_embeddings else self.embedding_params
        return self.num_hidden_layers * self.block_params + self.embedding_params + head + self.hidden_size

    def lora_params(self, r: int) -> int:
        """LoRA on every linear layer of every block (``all-linear``): r * (in + out) each."""
        return self.num_hidden_layers * sum(r * (a + b) for a, b in self.linear_shapes())


def _r1(size: str, base: str, d: int, i: int, layers: int, heads: int, kv: int, vocab: int, tied: bool) -> Architecture:
    return Architecture(f"deepseek-ai/DeepSeek-R1-Distill-Qwen-{size}", d, i, layers, heads, kv, vocab, tied,
                        source=f"config.json of deepseek-ai/DeepSeek-R1-Distill-Qwen-{size} on the HF hub (base {base})")


KNOWN: dict[str, Architecture] = {a.name.lower(): a for a in (
    _r1("1.5B", "Qwen2.5-Math-1.5B", 1536, 8960, 28, 12, 2, 151936, False),
    _r1("7B", "Qwen2.5-Math-7B", 3584, 18944, 28, 28, 4, 152064, False),
    _r1("14B", "Qwen2.5-14B", 5120, 13824, 48, 40, 8, 152064, False),
)}


def from_config_dict(cfg: dict[str, Any], name: str, source: str) -> Architecture:
    try:
        return Architecture(name, cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"],
                            cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"],
                            cfg["vocab_size"], bool(cfg.get("tie_word_embeddings", False)),
                            head_dim=cfg.get("head_dim") or 0, source=source)
    except KeyError as e:
        raise UserError(f"config.json lacks {e}: not a decoder the planner knows", where=source) from None


def _hf_cache_config(repo: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo, "config.json")
    return Path(found) if isinstance(found, str) else None


def architecture_for(model_name: str, hidden_dim: int | None = None, num_layers: int | None = None) -> Architecture:
    """Architecture of ``model_name`` (alias, folder, hub id in the cache), resized for fresh-model mode."""
    from curiosity_sft.models import ALIASES, resolve_model

    key = model_name.lower()
    target = ALIASES[key].target if key in ALIASES else model_name
    arch = KNOWN.get(target.lower())
    if arch is None:
        src = Path(resolve_model(model_name).path)
        path = src / "config.json" if src.is_dir() else _hf_cache_config(str(src))
        if path is None or not path.is_file():
            raise UserError(f"no config.json for `{model_name}` here", where="model_name",
                            fix="give a local model folder, a cached hub id, or one of the DeepSeek-R1 distills")
        arch = from_config_dict(json.loads(path.read_text()), model_name, str(path))
    if hidden_dim is not None and num_layers is not None:
        # the same resizing as models._fresh_config: keep the head size where the width allows
        hd = arch.dh if hidden_dim % arch.dh == 0 else next(x for x in (64, 32, 16, 8, 4, 2, 1) if hidden_dim % x == 0)
        heads = hidden_dim // hd
        ratio = max(1, arch.num_attention_heads // arch.num_key_value_heads)
        arch = replace(arch, name=f"{arch.name} (fresh {hidden_dim}x{num_layers})", hidden_size=hidden_dim,
                       num_hidden_layers=num_layers, num_attention_heads=heads,
                       num_key_value_heads=heads // ratio if heads % ratio == 0 else heads, head_dim=hd,
                       intermediate_size=round(hidden_dim * arch.intermediate_size / arch.hidden_size))
    return arch
