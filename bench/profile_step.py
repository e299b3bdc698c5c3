"""Where a training step's time goes: torch.profiler over the engine's own step on real data.

    flock /tmp/heavy.lock .venv/bin/python bench/profile_step.py [--precision fp32] [--steps 3] [--compile]

SmolLM2-135M-Instruct, full fine-tune, the engine's default step (packing into 4 rows of 512
tokens, chunked head, fused AdamW) on the first GSM8K training problems from ../shared. After
``--warmup`` untimed steps, ``--steps`` steps run under torch.profiler; printed: seconds per step
split into matmuls (mm/addmm/bmm/linear backward), attention, the optimizer and everything else,
the top operators by self CPU time, and the process's minor page faults and system time per
step (the kernel zeroing fresh pages for large allocations shows up there, not in the profile).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT.parent / "shared" / "data" / "raw" / "gsm8k" / "train.jsonl"

GROUPS = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "mkldnn", "aten::_addmm_activation"),
    "attention": ("scaled_dot_product", "flash_attention", "_efficient_attention"),
    "optimizer": ("_fused_adamw", "_foreach_", "Optimizer.step", "clip_grad"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", default=None, help="write the summary as JSON here")
    a = ap.parse_args()

    from curiosity_sft.config import SFTConfig
    from curiosity_sft.data.schema import Example
    from curiosity_sft.models import load_tokenizer
    from curiosity_sft.training.batching import batches, encode_all, plan_epoch
    from curiosity_sft.training.loop import build_model
    from curiosity_sft.training.optimizer import build_adamw
    from curiosity_sft.training.precision import choose_precision
    from curiosity_sft.training.step import StepRunner

    cfg = SFTConfig(peft_enable=False, batch_size=4, max_length=512, precision=a.precision, compile=a.compile,
                    val_file=None)
    device = torch.device("cpu")
    amp = choose_precision(cfg, device).dtype
    tok = load_tokenizer(cfg.model_name)
    rows = [json.loads(x) for x in RAW.read_text().splitlines()[:a.examples]]
    exs = [Example(id=str(i), source="gsm8k", messages=[{"role": "user", "content": r["question"]},
                                                         {"role": "assistant", "content": re.sub(r"<<[^>]*>>", "", r["answer"])}])
           for i, r in enumerate(rows)]
    enc = encode_all(exs, tok, cfg.max_length).kept
    plan = plan_epoch([len(e.input_ids) for e in enc], list(range(len(enc))), 4, True, cfg.max_length, seed=0)
    model = build_model(cfg, device, amp)
    params = [p for p in model.parameters() if p.requires_grad]
    runner = StepRunner(model, build_adamw(params, 1e-5, 0.0), params, device, amp, None, 1.0)
    steps = iter(plan)

    def step() -> int:
        micro = list(batches(enc, [next(steps)], tok.pad_token_id))
        runner.run(micro)
        return sum(b.n_real for b in micro)

    for _ in range(a.warmup):
        step()
    ru0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        tokens = sum(step() for _ in range(a.steps))
    wall = (time.perf_counter() - t0) / a.steps
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    share = {g: sum(e.self_cpu_time_total for e in events if any(k in e.key for k in keys)) / total
             for g, keys in GROUPS.items()}
    share["other"] = 1.0 - sum(share.values())
    summary = {"precision": a.precision, "compile": a.compile, "seconds_per_step": wall,
               "tokens_per_second": tokens / a.steps / wall,
               "minor_faults_per_step": (ru1.ru_minflt - ru0.ru_minflt) / a.steps,
               "system_seconds_per_step": (ru1.ru_stime - ru0.ru_stime) / a.steps,
               "user_seconds_per_step": (ru1.ru_utime - ru0.ru_utime) / a.steps,
               "self_cpu_share": {k: round(v, 3) for k, v in share.items()}}
    print(json.dumps(summary, indent=2))
    print(events.table(sort_by="self_cpu_time_total", row_limit=a.top))
    if a.out:
        Path(a.out).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
