"""The run's hand-off artifacts, and loading them back for evaluation.

``latest.pt`` is the seed's format: a plain dict loadable with ``torch.load(weights_only=True)``
holding the trained weights (LoRA adapters only, for LoRA) plus what is needed to rebuild the base
model. ``hf_model/`` is a Hugging Face folder (LoRA merged in) that any tool can load;
``adapter/`` is the PEFT adapter; ``tokenizer/`` the tokenizer with its chat template.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from curiosity_sft.config import SFTConfig, load_config
from curiosity_sft.errors import UserError
from curiosity_sft.io import publish_dir
from curiosity_sft.models import apply_lora, load_model, load_tokenizer
from curiosity_sft.training.checkpoint import find_checkpoint, load_trainable_state, trainable_state

LATEST_FORMAT = "curiosity-sft/latest.pt/v1"


def latest_payload(model: torch.nn.Module, cfg: SFTConfig, step: int) -> dict[str, Any]:
    return {
        "format": LATEST_FORMAT,
        "method": "lora" if cfg.peft_enable else "full",
        "base_model": cfg.model_name,
        "step": step,
        "config": json.dumps(cfg.model_dump()),
        "state_dict": trainable_state(model),
    }


def write_latest(out_dir: Path, model: torch.nn.Module, cfg: SFTConfig, step: int) -> Path:
    path = out_dir / "latest.pt"
    tmp = out_dir / ".latest.pt.tmp"
    torch.save(latest_payload(model, cfg, step), tmp)
    tmp.replace(path)
    return path


def export_run(out_dir: Path, model: torch.nn.Module, tok: PreTrainedTokenizerBase, cfg: SFTConfig, step: int) -> None:
    """Write latest.pt, tokenizer/, adapter/ (LoRA) and hf_model/ (merged unless ``merge_lora`` is off), atomically."""
    write_latest(out_dir, model, cfg, step)
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=".tokenizer."))
    tok.save_pretrained(str(tmp))
    publish_dir(tmp, out_dir / "tokenizer")
    if cfg.peft_enable:
        tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=".adapter."))
        model.save_pretrained(str(tmp))
        publish_dir(tmp, out_dir / "adapter")
        if not cfg.merge_lora:
            return
        if cfg.load_in_4bit:
            merged = merge_into_bf16_base(model, cfg, out_dir)
        else:
            merged = model.merge_and_unload()  # changes `model` in place: export is the last thing a run does
    else:
        merged = model
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=".hf_model."))
    merged.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    publish_dir(tmp, out_dir / "hf_model")


def merge_into_bf16_base(model: torch.nn.Module, cfg: SFTConfig, where: Path) -> torch.nn.Module:
    """QLoRA's adapters merged into a bf16 reload of the base, on the CPU.

    Merging into the NF4 base (``merge_and_unload`` on the trained model) would round every merged
    weight back to 4 bits and write a quantized folder: the adapters' update would be mostly lost
    and ``hf_model/`` would not be the model that was trained. The base is reloaded whole in bf16
    (its training dtype), the trained adapters are set into it, and the merge happens there.
    """
    base = load_model(cfg.model_name, hidden_dim=cfg.hidden_dim, num_layers=cfg.num_layers, seed=cfg.seed,
                      dtype=torch.bfloat16)
    lora = apply_lora(base, cfg.lora_r, cfg.lora_alpha, 0.0, cfg.lora_target_modules)
    load_trainable_state(lora, trainable_state(model), where)
    return lora.merge_and_unload()


def _config_from_payload(payload: dict[str, Any], where: Path) -> SFTConfig:
    if payload.get("format") != LATEST_FORMAT:
        raise UserError("not a curiosity-sft latest.pt", where=where, fix="pass a file written by `curiosity-sft train`")
    return SFTConfig(**json.loads(payload["config"]))


def build_from_state(cfg: SFTConfig, state: dict[str, torch.Tensor], where: Path) -> torch.nn.Module:
    model = load_model(cfg.model_name, hidden_dim=cfg.hidden_dim, num_layers=cfg.num_layers, seed=cfg.seed)
    if cfg.peft_enable:
        model = apply_lora(model, cfg.lora_r, cfg.lora_alpha, 0.0, cfg.lora_target_modules)
    load_trainable_state(model, state, where)
    return model


def load_for_inference(spec: str) -> tuple[torch.nn.Module, PreTrainedTokenizerBase, str]:
    """``--model`` -> (model in eval mode, tokenizer, a description).

    Accepts a ``latest.pt``, a ``checkpoint-N`` folder, a run folder, a Hugging Face folder, a
    PEFT adapter folder, a ``.gguf`` file, an alias or a hub id.
    """
    p = Path(spec)
    if p.is_file() and p.suffix == ".pt":
        payload = torch.load(p, weights_only=True, map_location="cpu")
        cfg = _config_from_payload(payload, p)
        model = build_from_state(cfg, payload["state_dict"], p)
        tok_dir = p.parent / "tokenizer"
        tok = AutoTokenizer.from_pretrained(str(tok_dir)) if tok_dir.is_dir() else load_tokenizer(cfg.model_name)
        desc = f"{p} ({payload['method']} of {cfg.model_name}, step {payload['step']})"
    elif p.is_dir() and (p / "trainer_state.json").is_file():
        ckpt = find_checkpoint(str(p), p.parent)
        cfg = load_config(ckpt / "config.yaml")
        model = build_from_state(cfg, load_file(str(ckpt / "model.safetensors")), ckpt)
        tok = load_tokenizer(cfg.model_name)
        desc = f"{ckpt} ({'lora' if cfg.peft_enable else 'full'} of {cfg.model_name})"
    elif p.is_dir() and (p / "latest.pt").is_file():
        return load_for_inference(str(p / "latest.pt"))
    elif p.is_dir() and (p / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(str(p), dtype=torch.float32)
        base = json.loads((p / "adapter_config.json").read_text()).get("base_model_name_or_path", "")
        tok = load_tokenizer(str(p)) if (p / "tokenizer_config.json").is_file() else load_tokenizer(base)
        desc = f"{p} (LoRA adapter on {base})"
    else:
        model = load_model(spec)
        tok = load_tokenizer(spec)
        desc = spec
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if hasattr(model, "merge_and_unload"):
        # Inference only: folding the adapters into the weights removes LoRA's extra matmuls from
        # every linear layer (SmolLM2, generation at batch 16 on CPU: 80 -> 94 tokens/s; base model 109).
        model = model.merge_and_unload()
    model.eval()
    return model, tok, desc
