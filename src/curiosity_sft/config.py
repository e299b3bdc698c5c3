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

Strategy = Literal["random", "stratified", "ordered", "competence", "stages", "curiosity"]


class CurriculumConfig(BaseModel):
    """Which examples fill each optimizer step (docs/CURRICULUM.md). ``random`` is today's shuffle."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    strategy: Strategy = Field("random", description="random | stratified | ordered | competence | stages | curiosity")
    difficulty: Literal["rules", "model", "mix"] = Field(
        "rules", description="rules: the prepared `difficulty`; model: the base model's loss; mix: both")
    difficulty_model: str | None = Field(None, description="model that scores `model` difficulty (null: model_name)")
    mix_weight: float = Field(0.5, ge=0, le=1, description="share of the model's ranking in `mix`")
    unrated_difficulty: float = Field(0.5, ge=0, le=1, description="rule difficulty of examples that have none")
    weights: dict[str, float] | None = Field(
        None, description="stratified: per-source share of each step's rows (null: the data's own shares)")
    competence_p: Literal[1, 2] = Field(2, description="competence: 1 linear, 2 square root (Platanios et al. 2019)")
    competence_c0: float = Field(0.01, gt=0, lt=1, description="competence at step 0")
    competence_until: float = Field(0.5, gt=0, le=1, description="fraction of training at which competence reaches 1")
    stage_order: list[str] | None = Field(None, description="stages: source order (null: books, gsm8k, math, logic, other)")
    stage_overlap: float = Field(0.25, ge=0, le=1, description="stages: share of a stage blended with its neighbours")
    curiosity_bands: int = Field(3, ge=1, le=10, description="curiosity: difficulty bands per source (buckets)")
    curiosity_reward: Literal["heldout", "heldout+train"] = Field(
        "heldout", description="learning progress measured on held-out slices, optionally also the training loss")
    curiosity_probe_examples: int = Field(8, gt=0, description="held-out examples per bucket (never trained on)")
    curiosity_probe_every: int = Field(10, gt=0, description="steps between held-out measurements (bandit updates)")
    curiosity_floor: float = Field(0.2, gt=0, lt=1, description="each bucket keeps at least this share of 1/buckets")
    curiosity_lr: float = Field(0.05, gt=0, description="bandit step size per played batch (Exp3.S eta)")
    curiosity_forget: float = Field(0.05, ge=0, lt=1, description="how fast old evidence fades (Exp3.S alpha)")
    curiosity_smoothing: float = Field(0.5, ge=0, lt=1, description="probabilities: share kept from the previous update")
    curiosity_loss_smoothing: float = Field(0.5, ge=0, lt=1, description="held-out losses: share kept (EMA)")
    curiosity_reward_window: int = Field(100, ge=2, description="recent rewards whose 20th/80th percentiles rescale a reward")


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
    reasoning_format: Literal["auto", "plain", "think"] = Field(
        "auto", description="plain solutions, or <think> steps </think> + final answer; auto: think when the template thinks")
    chat_template: str | None = Field(None, description="a .jinja file replacing the tokenizer's chat template (null: the model's own)")
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
    bf16: bool = Field(False, description="bf16 mixed precision (read as precision: bf16; honoured on CPU too)")
    gradient_checkpointing: bool = Field(False, description="recompute activations to save memory")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto", description="auto: bf16 on GPUs that have it, else fp16 with loss scaling; on CPU bf16 only where "
                            "a measured bf16 matmul is clearly faster than fp32, else fp32")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = Field(
        "sdpa", description="attention kernel; flash_attention_2 needs CUDA and flash-attn (packed rows run varlen)")
    use_liger: bool = Field(False, description="Liger's Triton kernels for RMSNorm, RoPE and SwiGLU (CUDA only)")
    compile: bool = Field(False, description="torch.compile each decoder layer (off by default: see docs/PERFORMANCE.md)")
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
    eval_max_new_tokens: int = Field(256, gt=0, description="generation budget for the answer when scoring answers")
    eval_max_thinking_tokens: int | None = Field(
        None, ge=0, description="extra budget for thinking with a reasoning template (null: 32768 on GPU, 256 on CPU)")
    eval_sampling: Literal["greedy", "deepseek"] = Field(
        "greedy", description="greedy, or DeepSeek's recommended sampling (temperature 0.6, top-p 0.95, mean accuracy)")
    eval_num_samples: int = Field(4, gt=0, description="samples per prompt with eval_sampling: deepseek (greedy: 1)")
    eval_num_fewshot: int = Field(0, ge=0, description="GSM8K few-shot examples in lm-evaluation-harness's format (5 as published)")
    eval_batch_size: int = Field(16, gt=0, description="examples per generation / perplexity batch")
    gate_max_perplexity: float = Field(15.0, gt=0, description="quality gate: overall validation perplexity must be below this")
    gate_min_bleu: float = Field(0.7, ge=0, le=1, description="quality gate: BLEU (0-1 scale) must be above this")
    gate_min_gsm8k_accuracy: float = Field(0.85, ge=0, le=1, description="quality gate: GSM8K accuracy (flexible) must be above this")
    # --- curriculum (docs/CURRICULUM.md; `--set curriculum.strategy=curiosity`) ---
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig, description="sampler deciding each step's examples")

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
    """Line of each key in a YAML document (a section's keys dotted: ``curriculum.strategy``), for errors."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}

    def walk(n: Any, prefix: str) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode):
                    lines[prefix + k.value] = k.start_mark.line + 1
                    walk(v, f"{prefix}{k.value}.")

    walk(node, "")
    return lines


def _section_fields(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed in the section at ``loc`` (``()``: the top level, ``("curriculum",)``: its section)."""
    model: Any = SFTConfig
    for part in loc:
        field = model.model_fields.get(str(part)) if isinstance(model, type) else None
        model = field.annotation if field is not None else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return list(model.model_fields)


def _set_key(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` in ``data``; a dotted key (``curriculum.strategy``) sets a key of a section."""
    *sections, last = key.split(".")
    node = data
    for i, part in enumerate(sections):
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"`{'.'.join(sections[:i + 1])}` is not a section, so `{key}` cannot be set", where="--set",
                              fix=f"set the whole value, e.g. --set {sections[0]}=...")
        node = child
    node[last] = value


def _explain(err: ValidationError, where: str, lines: dict[str, int]) -> ConfigError:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(config)"
    top = str(first["loc"][0]) if first["loc"] else ""
    if first["type"] == "extra_forbidden":
        section = ".".join(str(p) for p in first["loc"][:-1])
        close = difflib.get_close_matches(str(first["loc"][-1]), _section_fields(first["loc"][:-1]), n=1)
        fix = (f"did you mean `{section + '.' if section else ''}{close[0]}`?" if close
               else "see the configuration reference in README.md")
        return ConfigError(f"unknown key `{key}`", where=where, line=lines.get(key, lines.get(top)), fix=fix)
    msg = first["msg"].removeprefix("Value error, ")
    got = first.get("input")
    what = f"`{key}`: {msg}" if top else msg
    if top and not isinstance(got, dict):
        what += f" (got {got!r})"
    return ConfigError(what, where=where, line=lines.get(key, lines.get(top)))


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
        _set_key(data, k, v)
        lines = {n: ln for n, ln in lines.items() if n != k and not n.startswith(k + ".")}
    try:
        return SFTConfig(**data)
    except ValidationError as e:
        src = where if not overrides else f"{where} (with --set overrides)"
        raise _explain(e, src, lines) from None


def save_config(cfg: SFTConfig, path: str | Path) -> None:
    """Write the resolved config beside a run, so the run can be reproduced from its folder alone."""
    from curiosity_sft.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(cfg.model_dump(), sort_keys=False))
