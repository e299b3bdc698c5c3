"""Training speed of this engine against TRL's SFTTrainer, like for like, in one command.

    flock /tmp/heavy.lock .venv/bin/python bench/bench_train.py            # the full bench (about an hour)
    .venv/bin/python bench/bench_train.py --examples 40 --steps 3 --skip 1 --repeats 1 --eval 4   # smoke test

Setup (issue 15): SmolLM2-135M-Instruct, full fine-tune, the first ``--examples`` (2,000) GSM8K
training problems from ../shared/data/raw (calculator annotations removed), global batch 4,
max_length 512, learning rate 1e-4 linear without warmup, ``--steps`` (12) optimizer steps, the
first ``--skip`` (2) not timed. Each run is its own subprocess, runs are interleaved (every
configuration once, then again) ``--repeats`` (3) times, and the JSON and markdown table are
written by this script from what the subprocesses report.

- real tokens/s: non-padding tokens of the timed steps over their wall time (step end to step end).
- held-out loss: the same function for every run (loss.py: mean loss per answer token, fp32) on
  the first ``--eval`` GSM8K test problems, after the same number of optimizer steps.
- peak RSS: the subprocess's VmHWM (model, tokenized data, training, held-out evaluation).
- MFU: the FLOPs the run performs (PaLM convention: 6 per weight per token through the decoder on
  real tokens, attention, and the vocabulary head only where the run applies it: this engine on
  labelled positions, TRL on a CPU on every position of the padded batch) against the matmul rate
  of the precision it trains in (fp32 or bf16, measured by this script at start).

Runs: TRL at its true defaults (bf16 autocast, gradient checkpointing, chat data with loss on all
tokens), the same with bf16=False, TRL tuned (no gradient checkpointing, prompt-completion data
with completion-only loss) in fp32 and in bf16, TRL tuned with packing (fp32), and this engine at
its defaults (packing, ``precision: auto``), with fp32 and bf16 forced for reference.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT.parent / "shared" / "data" / "raw" / "gsm8k"
MODEL = "smollm2-135m-instruct"
MAX_LENGTH, GLOBAL_BATCH, LR = 512, 4, 1e-4

# name -> (what it is, trainer, settings)
RUNS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "trl_default": ("TRL 1.16 true defaults: bf16 autocast, gradient checkpointing, loss on all tokens", "trl",
                    {}),
    "trl_default_fp32": ("TRL defaults with bf16=False", "trl", {"bf16": False}),
    "trl_tuned_fp32": ("TRL tuned: no gradient checkpointing, prompt-completion data, completion-only loss, fp32",
                       "trl", {"bf16": False, "gradient_checkpointing": False, "prompt_completion": True}),
    "trl_tuned_bf16": ("TRL tuned, bf16 autocast", "trl",
                       {"bf16": True, "gradient_checkpointing": False, "prompt_completion": True}),
    "trl_packing": ("TRL tuned + packing (bfd, padding-free), fp32", "trl",
                    {"bf16": False, "gradient_checkpointing": False, "prompt_completion": True, "packing": True}),
    "ours": ("this engine at its defaults: packing, precision auto, fused AdamW, chunked head", "ours", {}),
    "ours_fp32": ("this engine, precision: fp32 forced", "ours", {"precision": "fp32"}),
    "ours_bf16": ("this engine, precision: bf16 forced", "ours", {"precision": "bf16"}),
}


def gsm8k_messages(path: Path, n: int) -> list[list[dict[str, str]]]:
    out = []
    for line in path.read_text().splitlines()[:n]:
        r = json.loads(line)
        answer = re.sub(r"<<[^>]*>>", "", r["answer"])
        out.append([{"role": "user", "content": r["question"]}, {"role": "assistant", "content": answer}])
    return out


def peak_rss_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / (1 << 20)
    return 0.0


def heldout_loss(model: Any, tok: Any, convs: list[list[dict[str, str]]]) -> float:
    import torch

    from curiosity_sft.data.schema import Example
    from curiosity_sft.training.batching import collate, encode_all
    from curiosity_sft.training.loss import sum_token_loss

    enc = encode_all([Example(id=str(i), source="gsm8k", messages=m) for i, m in enumerate(convs)], tok, MAX_LENGTH).kept
    model = model.float().eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(enc), 8):
            s, k = sum_token_loss(model, collate([[e] for e in enc[i:i + 8]], tok.pad_token_id))
            total, n = total + float(s), n + k
    return total / n


def run_ours(train: list, test: list, work: Path, steps: int, skip: int, settings: dict[str, Any]) -> dict[str, Any]:
    from curiosity_sft.config import SFTConfig
    from curiosity_sft.data.schema import Example, write_examples
    from curiosity_sft.training.export import load_for_inference
    from curiosity_sft.training.loop import train as train_run

    path = work / "train.jsonl"
    write_examples(path, [Example(id=str(i), source="gsm8k", messages=m) for i, m in enumerate(train)])
    cfg = SFTConfig(model_name=MODEL, train_file=str(path), val_file=None, max_length=MAX_LENGTH,
                    batch_size=GLOBAL_BATCH, gradient_accumulation_steps=1, learning_rate=LR, max_steps=steps,
                    warmup_ratio=0.0, lr_scheduler="linear", peft_enable=False, logging_steps=1,
                    save_steps=10_000, **settings)
    out = work / "run"
    train_run(cfg, out, show_progress=False)
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    timed = [r for r in recs if "loss" in r][skip:]
    manifest = json.loads((out / "manifest.json").read_text())
    rates = manifest["precision"]["matmul_gflops"]
    peak = rates["bf16" if manifest["precision"]["precision"] == "bf16" else "fp32"] * 1e9
    seconds = sum(r["window_seconds"] for r in timed)
    model, tok, _ = load_for_inference(str(out / "hf_model"))
    return {"seconds": seconds, "tokens": sum(r["tokens_per_second"] * r["window_seconds"] for r in timed),
            # the loop's own MFU uses the cached rate of the precision it trained in: back to FLOPs
            "flops": sum(r["mfu"] * r["window_seconds"] for r in timed) * peak,
            "steps": len([r for r in recs if "loss" in r]), "precision": manifest["precision"]["precision"],
            "optimizer": manifest["optimizer"], "train_loss_last": timed[-1]["loss"] if timed else None,
            "heldout_loss": heldout_loss(model, tok, test)}


def run_trl(train: list, test: list, work: Path, steps: int, skip: int, settings: dict[str, Any],
            context: float) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from transformers import AutoConfig, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from curiosity_sft.models import load_model, load_tokenizer, resolve_model
    from curiosity_sft.training.telemetry import model_flops

    settings = dict(settings)
    prompt_completion = settings.pop("prompt_completion", False)
    tok = load_tokenizer(MODEL)
    model = load_model(MODEL)
    rows = ([{"prompt": m[:1], "completion": m[1:]} for m in train] if prompt_completion
            else [{"messages": m} for m in train])
    args = SFTConfig(output_dir=str(work / "trl"), per_device_train_batch_size=GLOBAL_BATCH,
                     gradient_accumulation_steps=1, learning_rate=LR, max_steps=steps, max_length=MAX_LENGTH,
                     use_cpu=True, report_to=[], save_strategy="no", disable_tqdm=True, seed=42,
                     dataloader_num_workers=0, **settings)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)

    batches: list[tuple[int, int]] = []  # (real tokens, positions) of each collated batch, in order
    collate = trainer.data_collator

    def counting(features: list) -> dict:
        b = collate(features)
        real = int(b["attention_mask"].sum()) if "attention_mask" in b else int(b["input_ids"].numel())
        batches.append((real, int(b["input_ids"].numel())))
        return b

    trainer.data_collator = counting  # the dataloader is built by train() from the collator held then
    ends: list[float] = []

    class StepTimes(TrainerCallback):
        def on_step_end(self, *_: Any, **__: Any) -> None:
            ends.append(time.perf_counter())

    trainer.add_callback(StepTimes())
    trainer.train()
    timed = batches[skip:steps]  # batch i is step i + 1's (no accumulation); the loader may prefetch one more
    mcfg = AutoConfig.from_pretrained(resolve_model(MODEL).path)
    # TRL's fused head on a CPU (no Triton) scores every position of the batch, padding included
    flops = sum(model_flops(mcfg, context, real, positions) for real, positions in timed)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    amp = "bf16" if args.bf16 else "fp32"
    return {"seconds": ends[steps - 1] - ends[skip - 1], "tokens": sum(real for real, _ in timed), "flops": flops,
            "steps": trainer.state.global_step, "precision": amp, "optimizer": trainer.args.optim,
            "gradient_checkpointing": bool(trainer.args.gradient_checkpointing),
            "completion_only_loss": bool(getattr(trainer, "completion_only_loss", False)),
            "train_loss_last": losses[-1] if losses else None,
            "heldout_loss": heldout_loss(trainer.model.to(torch.float32), tok, test)}


def example_context(train: list[list[dict[str, str]]]) -> float:
    """Attention context for TRL's MFU, as the loop computes its own: mean of length^2 / mean length, per example."""
    from curiosity_sft.models import load_tokenizer

    tok = load_tokenizer(MODEL)
    lengths = [len(tok.apply_chat_template(m, tokenize=True, return_dict=True)["input_ids"]) for m in train[:500]]
    return sum(n * n for n in lengths) / sum(lengths)


def one(name: str, a: argparse.Namespace) -> None:
    train = gsm8k_messages(RAW / "train.jsonl", a.examples)
    test = gsm8k_messages(RAW / "test.jsonl", a.eval)
    _, trainer, settings = RUNS[name]
    with tempfile.TemporaryDirectory() as d:
        if trainer == "ours":
            res = run_ours(train, test, Path(d), a.steps, a.skip, settings)
        else:
            res = run_trl(train, test, Path(d), a.steps, a.skip, settings, example_context(train))
    res["peak_rss_gib"] = peak_rss_gib()
    print("RESULT " + json.dumps(res))


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Median and spread per run, ratios against the fastest TRL run, and the goal checks."""
    rates = {"fp32": results["matmul_gflops"]["fp32"], "bf16": results["matmul_gflops"]["bf16"]}
    out: dict[str, Any] = {}
    for name, reps in results["runs"].items():
        tps = [r["tokens"] / r["seconds"] for r in reps]
        out[name] = {"tokens_per_second_median": statistics.median(tps), "tokens_per_second_min": min(tps),
                     "tokens_per_second_max": max(tps), "repeats": len(tps),
                     "heldout_loss_median": statistics.median(r["heldout_loss"] for r in reps),
                     "peak_rss_gib_median": statistics.median(r["peak_rss_gib"] for r in reps),
                     "mfu_median": statistics.median(r["flops"] / r["seconds"] / (rates[r["precision"]] * 1e9)
                                                     for r in reps),
                     "precision": reps[0]["precision"], "steps": reps[0]["steps"]}
    trl = {k: v for k, v in out.items() if RUNS[k][1] == "trl"}
    best = max(trl, key=lambda k: trl[k]["tokens_per_second_median"]) if trl else None
    for v in out.values():
        v["vs_best_trl"] = v["tokens_per_second_median"] / trl[best]["tokens_per_second_median"] if best else None
    goal: dict[str, Any] = {"best_trl": best}
    if best and "ours" in out:
        o, b = out["ours"], trl[best]
        goal.update(speedup=o["vs_best_trl"], reached_1_5x=o["vs_best_trl"] >= 1.5,
                    loss_equal_or_lower=o["heldout_loss_median"] <= b["heldout_loss_median"])
    if "ours_fp32" in out:
        ref = out["ours_fp32"]["heldout_loss_median"]
        goal["heldout_loss_vs_fp32"] = {k: out[k]["heldout_loss_median"] / ref - 1 for k in ("ours", "ours_bf16")
                                        if k in out}
    return {"runs": out, "goal": goal}


def table(results: dict[str, Any]) -> str:
    s = results["summary"]
    lines = ["| run | precision | real tokens/s, median (min-max) | vs best TRL | held-out loss | MFU | peak RSS GiB |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, v in s["runs"].items():
        star = "**" if name == "ours" else ""
        lines.append(f"| {star}{RUNS[name][0]}{star} (`{name}`) | {v['precision']} | "
                     f"{star}{v['tokens_per_second_median']:.1f}{star} ({v['tokens_per_second_min']:.1f}-"
                     f"{v['tokens_per_second_max']:.1f}) | {v['vs_best_trl']:.2f} | {v['heldout_loss_median']:.4f} | "
                     f"{100 * v['mfu_median']:.0f}% | {v['peak_rss_gib_median']:.2f} |")
    g = s["goal"]
    m = results["matmul_gflops"]
    lines += ["", f"Matmul rates ({m.get('when', 'at the start')}; {results['threads']} threads, {m['size']}^2): fp32 "
              f"{m['fp32']:.0f} GFLOP/s, bf16 {m['bf16']:.0f} GFLOP/s. Load average: {results['load_start']} at "
              f"the start, {results['load_end']} at the end; per run in the JSON."]
    if "speedup" in g:
        lines.append(f"Best TRL run: `{g['best_trl']}`; this engine's defaults are {g['speedup']:.2f}x its real "
                     f"tokens/s (goal 1.5x: {'reached' if g['reached_1_5x'] else 'not reached'}), held-out loss "
                     f"{'equal or lower' if g['loss_equal_or_lower'] else 'higher'}.")
    if "heldout_loss_vs_fp32" in g:
        diffs = ", ".join(f"`{k}` {100 * d:+.2f}%" for k, d in g["heldout_loss_vs_fp32"].items())
        lines.append(f"Held-out loss against the engine's fp32 run at equal steps: {diffs} (target: within 1%).")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--eval", type=int, default=64, help="GSM8K test problems for the held-out loss")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--skip", type=int, default=2, help="first steps not timed (warm-up)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--out", default="bench/results/bench_train.json")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        one(a.one, a)
        return
    if not RAW.is_dir():
        print(f"skipped: {RAW} is absent")
        return
    if not 1 <= a.skip < a.steps:
        raise SystemExit("--skip must be at least 1 (the first step's start is not timed) and below --steps")
    import torch

    from curiosity_sft.training.telemetry import measure_matmul_flops

    names = a.runs.split(",")
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        raise SystemExit(f"unknown runs {unknown}; known: {', '.join(RUNS)}")
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "threads": torch.get_num_threads(),
        "uptime_start": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "load_start": round(os.getloadavg()[0], 2),
        "matmul_gflops": {"size": 1024, "fp32": measure_matmul_flops(1024, 2.0) / 1e9,
                          "bf16": measure_matmul_flops(1024, 2.0, torch.bfloat16) / 1e9, "when": "start"},
        "setup": {"model": MODEL, "examples": a.examples, "eval": a.eval, "steps": a.steps, "skip": a.skip,
                  "repeats": a.repeats, "max_length": MAX_LENGTH, "global_batch": GLOBAL_BATCH, "learning_rate": LR},
        "runs": {}, "failed": {}}
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for rep in range(a.repeats):
        for name in names:
            t0, load0 = time.perf_counter(), os.getloadavg()[0]
            p = subprocess.run([sys.executable, __file__, "--one", name, "--examples", str(a.examples), "--eval",
                                str(a.eval), "--steps", str(a.steps), "--skip", str(a.skip)],
                               capture_output=True, text=True, env=env)
            line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                results["failed"].setdefault(name, []).append(p.stderr[-3000:])
                print(f"{name} failed:\n{p.stderr[-3000:]}", flush=True)
                continue
            r = json.loads(line[7:])
            r.update(repeat=rep, wall_seconds=time.perf_counter() - t0, load_before=round(load0, 2),
                     load_after=round(os.getloadavg()[0], 2), tokens_per_second=r["tokens"] / r["seconds"])
            results["runs"].setdefault(name, []).append(r)
            print(f"{name} #{rep}: {r['tokens_per_second']:.1f} tokens/s, held-out {r['heldout_loss']:.4f}, "
                  f"load {r['load_before']}->{r['load_after']}", flush=True)
            out.write_text(json.dumps({**results, "complete": False}, indent=2))  # a killed bench keeps its runs
    results["load_end"] = round(os.getloadavg()[0], 2)
    # MFU's denominators: the larger of the start and end measurements, the one less disturbed by other work
    end = {"fp32": measure_matmul_flops(1024, 2.0) / 1e9, "bf16": measure_matmul_flops(1024, 2.0, torch.bfloat16) / 1e9}
    results["matmul_gflops_end"] = end
    results["matmul_gflops"] = {"size": 1024, "when": "max of start and end",
                                **{k: max(results["matmul_gflops"][k], end[k]) for k in end}}
    results["uptime_end"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results["summary"] = summarise(results)
    results["complete"] = True
    out.write_text(json.dumps(results, indent=2))
    md = table(results)
    out.with_suffix(".md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
