"""Config, launcher and hardware checked together before anything loads.

A combination that cannot run (QLoRA on a CPU, fp16 under DeepSpeed, a DeepSpeed config left
half ``"auto"``, a LoRA base that cannot fit the card, flash-attention or Liger without CUDA, a
missing data file) would otherwise fail
after minutes of loading 14B weights, or hang. ``preflight`` decides each of them from the config,
what the launcher asked for (``distributed.Launch``, read from its environment) and the hardware,
without touching weights: ``curiosity-sft train`` stops on the first failure with one line and
the fix; ``curiosity-sft plan`` prints the same checks as a table.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from curiosity_sft.config import SFTConfig
from curiosity_sft.errors import UserError
from curiosity_sft.planning.architectures import Architecture, architecture_for
from curiosity_sft.planning.memory import GIB, HEADROOM, Estimate, Setting, estimate, propose
from curiosity_sft.training.distributed import Launch
from curiosity_sft.training.precision import (
    PrecisionChoice,
    choose_precision,
    pick_device,
    requested_precision,
)


@dataclass(frozen=True)
class Hardware:
    """The accelerator a process trains on: ``device`` is ``cpu``, ``cuda`` or ``mps``."""

    device: str
    name: str = ""
    memory: int | None = None  # bytes per accelerator
    bf16: bool = False

    @classmethod
    def detect(cls, cfg: SFTConfig) -> Hardware:
        device = pick_device(cfg)
        if device.type == "cuda" and torch.cuda.is_available():
            index = device.index if device.index is not None else torch.cuda.current_device()
            props = torch.cuda.get_device_properties(index)
            return cls("cuda", props.name, int(props.total_memory), bool(torch.cuda.is_bf16_supported()))
        if device.type == "cuda":
            return cls("cuda-missing")
        return cls(device.type)


@dataclass
class Check:
    name: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    fix: str | None = None
    where: str | None = None


@dataclass
class Preflight:
    """The checks, and what they resolved that setup reuses (precision, DeepSpeed config, architecture)."""

    checks: list[Check] = field(default_factory=list)
    precision: PrecisionChoice | None = None
    amp: torch.dtype | None = None
    deepspeed_config: dict[str, Any] | None = None
    architecture: Architecture | None = None

    def add(self, name: str, status: str, detail: str, fix: str | None = None, where: str | None = None) -> None:
        self.checks.append(Check(name, status, detail, fix, where))

    def raise_first_failure(self) -> None:
        for c in self.checks:
            if c.status == "fail":
                raise UserError(c.detail, where=c.where, fix=c.fix)

    def warnings(self) -> list[str]:
        return [f"{c.name}: {c.detail}" + (f" ({c.fix})" if c.fix else "") for c in self.checks if c.status == "warn"]

    def table(self) -> str:
        lines = ["| check | result | detail |", "| --- | --- | --- |"]
        for c in self.checks:
            lines.append(f"| {c.name} | {c.status} | {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") + " |")
        return "\n".join(lines)


def _processes(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"


def preflight(cfg: SFTConfig, launch: Launch, hw: Hardware, env: Mapping[str, str] | None = None,
              check_files: bool = True, precision: PrecisionChoice | None = None) -> Preflight:
    """Every check, in the order a run meets them; nothing is loaded.

    ``precision`` is the choice already made for this run (``train`` measures it once on rank 0
    and hands it to every rank); without it the choice is made here, from the cached probe on CPU.
    """
    r = Preflight()
    _device(cfg, hw, r)
    _model(cfg, r)
    _precision(cfg, hw, r, precision)
    _kernels(cfg, hw, r)
    _launcher(cfg, launch, r, env)
    _method(cfg, launch, hw, r)
    _memory(cfg, launch, hw, r)
    if check_files:
        _data(cfg, r)
    return r


def _device(cfg: SFTConfig, hw: Hardware, r: Preflight) -> None:
    if hw.device == "cuda-missing":
        r.add("device", "fail", f"device {cfg.device} asked for, but no CUDA GPU is visible", where="device",
              fix="set device: auto (or cpu), or check CUDA_VISIBLE_DEVICES and the driver")
    elif hw.device == "cuda":
        memory = f", {hw.memory / GIB:.0f} GiB" if hw.memory else ""
        r.add("device", "ok", f"CUDA: {hw.name or 'a GPU'}{memory}, bf16 {'yes' if hw.bf16 else 'no'}")
    else:
        r.add("device", "ok", hw.device.upper() if hw.device == "cpu" else hw.device)


def _model(cfg: SFTConfig, r: Preflight) -> None:
    try:
        r.architecture = architecture_for(cfg.model_name, cfg.hidden_dim, cfg.num_layers)
    except UserError as e:
        r.add("model", "fail", e.what, fix=e.fix, where=e.where)
        return
    a = r.architecture
    r.add("model", "ok", f"{a.name}: {a.params / 1e9:.2f}B parameters, {a.num_hidden_layers} layers")


def _device_of(hw: Hardware) -> torch.device:
    return torch.device("cuda" if hw.device == "cuda" else "cpu" if hw.device == "cuda-missing" else hw.device)


def _precision(cfg: SFTConfig, hw: Hardware, r: Preflight, chosen: PrecisionChoice | None) -> None:
    device = _device_of(hw)
    want = requested_precision(cfg)
    if hw.device == "cuda" and want == "bf16" and not hw.bf16:
        r.add("precision", "fail", "bf16 asked for, but this GPU has no bf16 (it needs Ampere or newer)",
              where="precision", fix="set precision: auto (fp16 with loss scaling here) or fp32")
        return
    r.precision = chosen or choose_precision(cfg, device, bf16_supported=hw.bf16 if hw.device == "cuda" else None)
    r.amp = r.precision.dtype
    seed_key = " (the seed's fp16: true, read as mixed precision)" if cfg.fp16 and cfg.precision == "auto" else ""
    if r.amp is None:
        r.add("precision", "ok", f"fp32: {r.precision.reason}{seed_key}")
    elif r.amp == torch.bfloat16:
        r.add("precision", "ok", f"bf16 autocast over fp32 master weights: {r.precision.reason}{seed_key}")
    else:
        r.add("precision", "ok", f"fp16 autocast with loss scaling, its scale saved in every checkpoint{seed_key}")


def _kernels(cfg: SFTConfig, hw: Hardware, r: Preflight) -> None:
    from curiosity_sft.training.kernels import check_kernel_options

    try:
        check_kernel_options(cfg, _device_of(hw))
    except UserError as e:
        r.add("kernels", "fail", e.what, fix=e.fix, where=e.where)
        return
    r.add("kernels", "ok", f"attention {cfg.attn_implementation}, liger "
          f"{str(cfg.use_liger).lower()}, compile {str(cfg.compile).lower()}")


def _method(cfg: SFTConfig, launch: Launch, hw: Hardware, r: Preflight) -> None:
    method = "QLoRA" if cfg.load_in_4bit else "LoRA" if cfg.peft_enable else "full fine-tune"
    if not cfg.load_in_4bit:
        r.add("method", "ok", method)
        return
    from curiosity_sft.models import check_qlora_available

    try:
        check_qlora_available(cuda_available=hw.device == "cuda")
    except UserError as e:
        r.add("method", "fail", e.what, fix=e.fix, where=e.where)
        return
    if launch.kind in ("fsdp", "deepspeed"):
        r.add("method", "fail", "QLoRA's 4-bit base cannot be sharded by FSDP or DeepSpeed here", where="load_in_4bit",
              fix="launch QLoRA with configs/accelerate/ddp.yaml (the 4-bit base fits each GPU), or use LoRA with "
                  "fsdp.yaml")
        return
    r.add("method", "ok", method)


def _zero_stage(r: Preflight) -> int:
    """The ZeRO stage the DeepSpeed check resolved (0 when DeepSpeed is not used)."""
    return int((r.deepspeed_config or {}).get("zero_optimization", {}).get("stage", 0))


def _launcher(cfg: SFTConfig, launch: Launch, r: Preflight, env: Mapping[str, str] | None) -> None:
    n = launch.world_size
    batch = (f"global batch {cfg.global_batch_size * n} = micro-batch {cfg.batch_size} x accumulation "
             f"{cfg.gradient_accumulation_steps} x {_processes(n)}")
    if launch.fsdp_on_one_process:
        r.add("launcher", "warn", f"FSDP on one process has nothing to shard: training unsharded; {batch}",
              fix="to offload to CPU RAM on one GPU, launch with configs/accelerate/deepspeed_zero3_offload.yaml")
        return
    if launch.kind == "single":
        r.add("launcher", "ok", f"one process; {batch}")
    elif launch.kind == "ddp":
        r.add("launcher", "ok", f"DDP over {_processes(n)}; {batch}")
    elif launch.kind == "fsdp":
        s = launch.fsdp
        r.add("launcher", "ok", f"FSDP2 full shard over {_processes(n)} (reshard_after_forward "
              f"{str(s.reshard_after_forward).lower()}, cpu_ram_efficient_loading "
              f"{str(s.cpu_ram_efficient_loading).lower()}, activation_checkpointing "
              f"{str(s.activation_checkpointing).lower()}, offload_params {str(s.offload_params).lower()}); {batch}")
    else:
        _deepspeed(cfg, launch, r, env, batch)


def _deepspeed(cfg: SFTConfig, launch: Launch, r: Preflight, env: Mapping[str, str] | None, batch: str) -> None:
    from curiosity_sft.training.zero import INSTALL_FIX, engine_config, launcher_config

    if importlib.util.find_spec("deepspeed") is None:
        r.add("launcher", "fail", "the launcher config asks for DeepSpeed, which is not installed", fix=INSTALL_FIX)
        return
    if r.architecture is None:
        return  # the model check failed already
    try:
        r.deepspeed_config = engine_config(launcher_config(env), cfg, cfg.gradient_accumulation_steps,
                                           launch.world_size, r.architecture.hidden_size, r.amp)
    except UserError as e:
        r.add("launcher", "fail", e.what, fix=e.fix, where=e.where)
        return
    r.add("launcher", "ok", f"DeepSpeed ZeRO-{_zero_stage(r)} over {_processes(launch.world_size)}; {batch}")


def per_device_bytes(e: Estimate, launch: Launch, zero_stage: int) -> int:
    """The planner's one-GPU estimate with what sharding spreads over the processes divided out:
    FSDP and ZeRO-3 split weights, gradients and AdamW states; ZeRO-2 gradients and AdamW states."""
    n = launch.world_size
    if n == 1:
        return e.total
    shard_weights = launch.kind == "fsdp" or zero_stage == 3
    saved = (e.gradients + e.optimizer) * (1 - 1 / n) if shard_weights or zero_stage == 2 else 0.0
    if shard_weights:
        saved += e.weights * (1 - 1 / n)
    return int(e.total - saved)


def _memory(cfg: SFTConfig, launch: Launch, hw: Hardware, r: Preflight) -> None:
    if hw.device != "cuda" or not hw.memory or r.architecture is None:
        r.add("memory", "ok", "not planned (no GPU)" if hw.device != "cuda" else "not planned (GPU memory unknown)")
        return
    from curiosity_sft.planning.plan import config_method

    arch, method, stage = r.architecture, config_method(cfg), _zero_stage(r)
    budget = hw.memory * HEADROOM

    def need(s: Setting) -> int:
        return per_device_bytes(estimate(arch, s, cfg.max_length, lora_r=cfg.lora_r), launch, stage)

    own = need(Setting(method, cfg.batch_size, cfg.gradient_accumulation_steps, cfg.gradient_checkpointing))
    detail = f"planned peak {own / GIB:.1f} GiB of {hw.memory / GIB:.0f} GiB per GPU"
    if own <= budget:
        r.add("memory", "ok", detail)
        return
    p = propose(arch, method, cfg.global_batch_size, cfg.max_length, hw.memory, cfg.lora_r)
    s = p.setting
    fix = (f"--set batch_size={s.micro_batch} --set gradient_accumulation_steps={s.accumulation} --set "
           f"gradient_checkpointing={str(s.checkpointing).lower()}"
           + {"full": "", "lora": " --set peft_enable=true", "qlora": " --set load_in_4bit=true"}[s.method]
           + f" (planned {p.estimate.total / GIB:.1f} GiB; `curiosity-sft plan` shows the table)"
           if p.fits else "nothing fits this card, not even QLoRA at micro-batch 1: use a larger GPU or several")
    one_row = need(Setting(method, 1, cfg.global_batch_size, cfg.gradient_checkpointing))
    if launch.world_size == 1 and one_row <= budget:  # out-of-memory recovery can halve its way there
        r.add("memory", "warn", f"{detail}: the first steps will run out of memory and halve the micro-batch",
              fix=fix)
        return
    r.add("memory", "fail", f"{detail}: this setting does not fit", fix=fix, where="batch_size")


def _data(cfg: SFTConfig, r: Preflight) -> None:
    missing = [(k, p) for k, p in (("train_file", cfg.train_file), ("val_file", cfg.val_file))
               if p is not None and not Path(p).is_file()]
    if missing:
        key, path = missing[0]
        r.add("data", "fail", f"{key.replace('_', ' ')} not found", where=path,
              fix="run `curiosity-sft prepare` first or set train_file/val_file in the config")
    else:
        r.add("data", "ok", f"train {cfg.train_file}" + (f", validation {cfg.val_file}" if cfg.val_file else ""))


def launcher_env(config_file: str | Path, num_processes: int | None = None) -> dict[str, str]:
    """The variables ``accelerate launch --config_file config_file`` would export to its processes,
    built by accelerate's own launch code without launching anything."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    if not Path(config_file).is_file():
        raise UserError("launcher config not found", where=config_file, fix="e.g. configs/accelerate/fsdp.yaml")
    argv = ["--config_file", str(config_file)] + (["--num_processes", str(num_processes)] if num_processes else [])
    try:
        args, defaults, _ = _validate_launch_command(launch_command_parser().parse_args([*argv, "train"]))
    except (SystemExit, ValueError) as e:
        raise UserError(f"accelerate cannot read this launcher config ({e})", where=config_file) from None
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        env = prepare_deepspeed_cmd_env(args)[1]
    else:
        env = prepare_multi_gpu_env(args)
    return {**{k: str(v) for k, v in env.items()}, "WORLD_SIZE": str(args.num_processes or 1)}
