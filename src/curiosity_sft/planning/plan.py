"""``curiosity-sft plan``: the memory estimate for a config and the fastest setting that fits a card."""

from __future__ import annotations

from curiosity_sft.config import SFTConfig
from curiosity_sft.planning.architectures import KNOWN, Architecture, architecture_for
from curiosity_sft.planning.memory import GIB, Method, Setting, estimate, propose


def config_method(cfg: SFTConfig) -> Method:
    return "qlora" if cfg.load_in_4bit else "lora" if cfg.peft_enable else "full"


def plan_report(cfg: SFTConfig, gpu_bytes: int, launcher: str | None = None, num_processes: int | None = None) -> str:
    """A markdown report: the config's own setting, what each method needs, the proposal, and the
    pre-flight checks ``curiosity-sft train`` would run for this config under ``launcher`` (an
    accelerate config file) on a GPU of ``gpu_bytes``."""
    arch = architecture_for(cfg.model_name, cfg.hidden_dim, cfg.num_layers)
    method = config_method(cfg)
    lines = [f"model: {arch.name} ({arch.params / 1e9:.2f}B parameters; {arch.source or 'config.json'})",
             f"card: {gpu_bytes / GIB:.0f} GiB; tokens per row: {cfg.max_length}; global batch: "
             f"{cfg.global_batch_size} rows", "",
             "| method | micro-batch x accumulation | checkpointing | weights | gradients | optimizer | activations "
             "| peak GiB |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    own = Setting(method, cfg.batch_size, cfg.gradient_accumulation_steps, cfg.gradient_checkpointing)
    rows: list[tuple[str, Setting]] = [("your config", own)]
    for m in ("full", "lora", "qlora"):
        for ckpt in (False, True):
            rows.append(("", Setting(m, 1, cfg.global_batch_size, ckpt)))  # type: ignore[arg-type]
    for label, s in rows:
        g = estimate(arch, s, cfg.max_length, lora_r=cfg.lora_r).as_gib()
        lines.append(f"| {s.method}{' (' + label + ')' if label else ''} | {s.micro_batch} x {s.accumulation} | "
                     f"{'on' if s.checkpointing else 'off'} | {g['weights']} | {g['gradients']} | {g['optimizer']} | "
                     f"{g['activations']} | {g['total']} |")
    p = propose(arch, method, cfg.global_batch_size, cfg.max_length, gpu_bytes, cfg.lora_r)
    s = p.setting
    lines += ["", ("proposal: " if p.fits else "does not fit: ") +
              f"{s.method}, batch_size {s.micro_batch}, gradient_accumulation_steps {s.accumulation}, "
              f"gradient_checkpointing {str(s.checkpointing).lower()} -> peak {p.estimate.total / GIB:.1f} GiB"
              + (f" ({p.note})" if p.note else "")]
    if p.fits:
        lines.append(f"  --set batch_size={s.micro_batch} --set gradient_accumulation_steps={s.accumulation} "
                     f"--set gradient_checkpointing={str(s.checkpointing).lower()}"
                     + {"full": " --set peft_enable=false", "lora": " --set peft_enable=true",
                        "qlora": " --set peft_enable=true --set load_in_4bit=true"}[s.method])
    lines += ["", *preflight_section(cfg, gpu_bytes, launcher, num_processes)]
    return "\n".join(lines)


def preflight_section(cfg: SFTConfig, gpu_bytes: int, launcher: str | None, num_processes: int | None) -> list[str]:
    """The checks `train` runs before loading anything, for this config on such a GPU (assumed to have bf16)."""
    from curiosity_sft.training.distributed import Launch
    from curiosity_sft.training.preflight import Hardware, launcher_env, preflight

    env = launcher_env(launcher, num_processes) if launcher else {"WORLD_SIZE": str(num_processes or 1)}
    hw = Hardware("cuda", "a GPU", gpu_bytes, bf16=True)
    report = preflight(cfg, Launch.from_env(env), hw, env=env if launcher else None)
    where = f"under {launcher}" if launcher else "on one process"
    return [f"pre-flight checks ({where}, {gpu_bytes / GIB:.0f} GiB GPU with bf16; `train` runs the same checks "
            "before loading weights):", "", report.table()]


def distill_table(global_batch: int = 32, seq_len: int = 2048, cards: tuple[int, ...] = (24, 48, 80)) -> str:
    """The docs' table: what the planner proposes for the R1 distills on common cards, asked for a
    full fine-tune and for LoRA (the seed's recipe: global batch 32 rows of 2048 tokens)."""
    lines = ["| model | card | asked: full fine-tune | asked: LoRA |", "| --- | --- | --- | --- |"]
    for arch in KNOWN.values():
        for gb in cards:
            cells = []
            for m in ("full", "lora"):
                p = propose(arch, m, global_batch, seq_len, gb << 30)  # type: ignore[arg-type]
                s = p.setting
                cells.append(f"{s.method}, {s.micro_batch} x {s.accumulation}, checkpointing "
                             f"{'on' if s.checkpointing else 'off'}: {p.estimate.total / GIB:.1f} GiB"
                             if p.fits else f"nothing fits ({p.estimate.total / GIB:.1f} GiB at the smallest)")
            lines.append(f"| {_short(arch)} | {gb} GB | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def _short(arch: Architecture) -> str:
    return arch.name.split("/")[-1]
