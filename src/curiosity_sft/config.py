"""The run configuration: one typed, validated object loaded from YAML, overridable with ``--set``.

This is the single source of truth: the CLI, the YAML files in ``configs/`` and the README's
reference table all come from ``SFTConfig``'s fields. An unknown key, a wrong type or an
impossible value is one ``ConfigError`` that names the key, the file and the line.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from curiosity_sft.errors import ConfigError


class SFTConfig(BaseModel):
    """Every knob of a run. The seed's keys keep their names; the rest are what every run needs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # --- model (seed keys) ---
    model_name: str = Field("smollm2-135m-instruct", description="HF id, local folder, .gguf file or alias (see README)")
    hidden_dim: int | None = Field(None, gt=0, description="build a fresh model of this width from the base architecture")
    num_layers: int | None = Field(None, gt=0, description="build a fresh model with this many layers from the base architecture")
    # --- data ---
    train_file: str = Field("data/sft_examples/train.jsonl", description="prepared training JSONL")
    val_file: str | None = Field("data/sft_examples/val.jsonl", description="prepared validation JSONL (null: no eval)")
    max_length: int = Field(512, gt=8, description="tokens per example; longer examples are dropped, never cut silently")
    packing: bool = Field(True, description="pack short examples into rows of max_length (no cross-attention)")
    group_by_length: bool = Field(False, description="without packing, batch examples of similar length (faster, less padding)")
    # --- optimisation (seed keys) ---
    batch_size: int = Field(8, gt=0, description="micro-batch per device")
    gradient_accumulation_steps: int = Field(1, gt=0, description="micro-batches per optimizer step")
    learning_rate: float = Field(2e-4, gt=0, lt=1, description="peak learning rate")
    epochs: float = Field(1.0, gt=0, description="passes over the training data (ignored when max_steps is set)")
    max_steps: int | None = Field(None, gt=0, description="optimizer steps; overrides epochs when set")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="fraction of steps with linear warmup")
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field("cosine", description="schedule after warmup")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    seed: int = Field(42, description="seeds data order, dropout and init")
    # --- method (seed keys) ---
    peft_enable: bool = Field(True, description="LoRA when true, full fine-tune when false")
    lora_r: int = Field(16, gt=0, description="LoRA rank")
    lora_alpha: int = Field(32, gt=0, description="LoRA scaling numerator")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    lora_target_modules: str | list[str] = Field("all-linear", description="modules LoRA wraps")
    fp16: bool = Field(False, description="fp16 mixed precision (GPU only; ignored with a warning on CPU)")
    bf16: bool = Field(False, description="bf16 mixed precision (GPU only; ignored with a warning on CPU)")
    gradient_checkpointing: bool = Field(False, description="recompute activations to save memory")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto", description="auto: bf16 on GPUs that have it, else fp16 with loss scaling; fp32 on CPU")
    load_in_4bit: bool = Field(False, description="QLoRA: 4-bit base weights via bitsandbytes (CUDA only; needs peft_enable)")
    merge_lora: bool = Field(True, description="write hf_model/ with the LoRA merged into the base on export")
    max_nonfinite_steps: int = Field(5, gt=0, description="stop after this many non-finite steps in a row")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$", description="auto: cuda if present, else cpu")
    peak_tflops: float | None = Field(None, gt=0, description="one accelerator's dense bf16 peak in TFLOP/s, for MFU (null: GPU table, measured on CPU)")
    # --- checkpoints and logging ---
    save_steps: int = Field(100, gt=0, description="checkpoint every N optimizer steps (and at the end)")
    save_total_limit: int | None = Field(3, gt=0, description="keep the newest N checkpoints (null: keep all)")
    eval_steps: int = Field(50, gt=0, description="validation loss every N optimizer steps")
    logging_steps: int = Field(10, gt=0, description="log train metrics every N optimizer steps")
    # --- evaluation ---
    eval_max_new_tokens: int = Field(256, gt=0, description="generation budget when scoring answers")
    eval_batch_size: int = Field(16, gt=0, description="examples per generation / perplexity batch")
    gate_max_perplexity: float = Field(15.0, gt=0, description="quality gate: overall validation perplexity must be below this")
    gate_min_bleu: float = Field(0.7, ge=0, le=1, description="quality gate: BLEU (0-1 scale) must be above this")
    gate_min_gsm8k_accuracy: float = Field(0.85, ge=0, le=1, description="quality gate: GSM8K accuracy (flexible) must be above this")

    @model_validator(mode="after")
    def _check_combinations(self) -> SFTConfig:
        if self.fp16 and self.bf16:
            raise ValueError("fp16 and bf16 cannot both be true; pick one")
        if self.load_in_4bit and not self.peft_enable:
            raise ValueError("load_in_4bit (QLoRA) trains LoRA adapters: set peft_enable: true")
        if (self.hidden_dim is None) != (self.num_layers is None):
            raise ValueError("hidden_dim and num_layers go together: set both (fresh small model) or neither")
        return self

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.gradient_accumulation_steps


def _key_lines(text: str) -> dict[str, int]:
    """Line of each top-level key in a YAML document, so errors can point at it."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


def _explain(err: ValidationError, where: str, lines: dict[str, int]) -> ConfigError:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(config)"
    top = str(first["loc"][0]) if first["loc"] else ""
    if first["type"] == "extra_forbidden":
        close = difflib.get_close_matches(top, SFTConfig.model_fields, n=1)
        fix = f"did you mean `{close[0]}`?" if close else "see the configuration reference in README.md"
        return ConfigError(f"unknown key `{key}`", where=where, line=lines.get(top), fix=fix)
    msg = first["msg"].removeprefix("Value error, ")
    got = first.get("input")
    what = f"`{key}`: {msg}" if top else msg
    if top and not isinstance(got, dict):
        what += f" (got {got!r})"
    return ConfigError(what, where=where, line=lines.get(top))


def parse_override(item: str) -> tuple[str, Any]:
    """``key=value`` with the value read as YAML, so ``lr=1e-4``, ``x=null``, ``l=[a,b]`` all work."""
    if "=" not in item:
        raise ConfigError(f"override `{item}` is not key=value", where="--set", fix="e.g. --set learning_rate=1e-4")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def read_yaml_mapping(p: Path, what: str, fix: str) -> tuple[dict[str, Any], str]:
    """A YAML file that must hold a mapping; (mapping, text). Every failure is one line naming the file."""
    if not p.is_file():
        raise ConfigError(f"{what} not found", where=p, fix=fix)
    text = p.read_text(encoding="utf-8")
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(f"not valid YAML ({getattr(e, 'problem', e)})", where=p,
                          line=mark.line + 1 if mark else None) from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"a {what} must be a mapping of key: value", where=p)
    return loaded, text


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> SFTConfig:
    """Read YAML (optional), apply ``key=value`` overrides, validate once."""
    data: dict[str, Any] = {}
    where = "<defaults>"
    lines: dict[str, int] = {}
    if path is not None:
        p = Path(path)
        where = str(p)
        data, text = read_yaml_mapping(p, "config file", "pass an existing YAML file to --config")
        lines = _key_lines(text)
    for item in overrides or []:
        k, v = parse_override(item)
        data[k] = v
        lines.pop(k, None)
    try:
        return SFTConfig(**data)
    except ValidationError as e:
        src = where if not overrides else f"{where} (with --set overrides)"
        raise _explain(e, src, lines) from None


def save_config(cfg: SFTConfig, path: str | Path) -> None:
    """Write the resolved config beside a run, so the run can be reproduced from its folder alone."""
    from curiosity_sft.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(cfg.model_dump(), sort_keys=False))
