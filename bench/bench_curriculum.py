"""Issue 16's experiment: does any curriculum sampler beat `stratified` at an equal token budget?

Usage (from the repository root; ``--lock`` takes a lock file for each run, so on a shared
machine the experiment waits between runs for other heavy jobs instead of holding them off for
the whole experiment):

    .venv/bin/python bench/bench_curriculum.py --lock /tmp/heavy.lock --out bench/results/curriculum
    .venv/bin/python bench/bench_curriculum.py --smoke --out /tmp/curriculum_smoke

The data mix is prepared from ../shared/data/raw (GSM8K, MATH, the three children's books, the
logic puzzles; at most ``--per-source`` training examples each) with ``curiosity-sft prepare``'s
own code; ``--smoke`` uses the embedded synthetic data and tiny sizes instead, to check the
harness end to end in a few minutes. Every sampler trains with packing, the same global batch of
rows of ``--max-length`` tokens and the same number of steps, so the token budget is equal (the
tokens each run saw are reported to show it); ``--seeds`` seeds on a fresh small model
(``--fresh WIDTHxLAYERS``) and one SmolLM2-135M LoRA run per sampler (``--lora-steps``, 0 to skip).

Each run is scored on the prepared validation split (per-source loss, the training loss
definition), GSM8K accuracy on a fixed subset of the official test split and logic-puzzle
accuracy on a fixed subset of the logic validation examples (the puzzles have no test split).
Per sampler: mean and standard deviation over seeds; a sampler "beats stratified beyond the seed
spread" on a metric when the difference of the means exceeds the sum of the two standard
deviations. Writes ``results.json``, ``results.md`` and ``curiosity_probabilities.png`` (the
curiosity sampler's bucket probabilities over training: fresh model seed 0 and the LoRA run) into
``--out``; the runs themselves (checkpoints, exported models) go to ``--work``, outside the
repository. A run whose results are already in ``--work`` with the same settings is not
repeated, so an interrupted experiment continues.

The harness checks that the training loop honoured ``curriculum.strategy`` (the competence and
curiosity runs must log ``curriculum/competence`` and ``curriculum/p/<bucket>``); if one did not,
the report says so in its first line instead of comparing samplers that all ran as ``random``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT.parent / "shared" / "data" / "raw"
MODEL = "smollm2-135m-instruct"
SAMPLER_KEYS = {"competence": "curriculum/competence", "curiosity": "curriculum/p/"}


@contextlib.contextmanager
def held(lock: Path | None) -> Iterator[None]:
    """The shared machine's heavy-job lock (``flock``), held for one run only."""
    if lock is None:
        yield
        return
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def shown_path(p: Path) -> str:
    """Relative to the repository when inside its workspace (``../shared/...``), so the results name
    no machine's folders; other paths (``/tmp/...``) as given."""
    p = p.resolve()
    return os.path.relpath(p, ROOT) if p.is_relative_to(ROOT.parent) else str(p)


def prepare_mix(raw: Path, work: Path, per_source: int, max_length: int, smoke: bool) -> Path:
    """The shared data mix as `prepare` makes it (reused when already prepared with the same settings)."""
    from curiosity_sft.data.data_config import DataConfig
    from curiosity_sft.data.prepare import prepare

    out = work / "prepared"
    if smoke:
        from curiosity_sft.data.synthetic import write_raw_dataset

        raw = work / "raw"
        if not raw.is_dir():
            write_raw_dataset(raw, seed=1, n_gsm8k=120, n_math=60, n_logic=60, n_test=12)
    spec = {"sources": [
        {"name": "gsm8k", "paths": ["gsm8k"], "max_examples": per_source},
        {"name": "math", "paths": ["math"], "max_examples": per_source},
        {"name": "books", "paths": ["children_books"], "format": "books", "max_examples": per_source},
        {"name": "logic", "paths": ["logic_puzzles"], "max_examples": per_source},
    ], "max_length": max_length}
    stamp = out / "bench_settings.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == {"raw": str(raw), **spec}:
        return out
    prepare(raw, out, val_ratio=0.05, seed=0, show_progress=False, data_config=DataConfig(**spec))
    stamp.write_text(json.dumps({"raw": str(raw), **spec}))
    return out


def eval_subsets(prepared: Path, work: Path, n: int) -> dict[str, Path]:
    """Fixed subsets: GSM8K from the official test split, logic from validation (no test split)."""
    from curiosity_sft.data.schema import read_examples, write_examples
    from curiosity_sft.evaluation.evaluate import subset

    test = read_examples(prepared / "test.jsonl") if (prepared / "test.jsonl").is_file() else []
    val = read_examples(prepared / "val.jsonl")
    out = {}
    for name, pool in (("gsm8k", [e for e in test if e.source == "gsm8k"]),
                       ("logic", [e for e in val if e.source == "logic" and e.answer is not None])):
        if pool:
            out[name] = work / f"{name}_eval.jsonl"
            write_examples(out[name], subset(pool, n, seed=0))
    return out


def run_config(prepared: Path, sampler: str, seed: int, kind: str, steps: int, a: argparse.Namespace) -> Any:
    from curiosity_sft.config import SFTConfig

    model: dict[str, Any]
    if kind == "fresh":
        width, layers = (int(x) for x in a.fresh.lower().split("x"))
        model = {"hidden_dim": width, "num_layers": layers, "peft_enable": False, "learning_rate": a.fresh_lr}
    else:
        model = {"peft_enable": True, "lora_r": 16, "lora_alpha": 32, "learning_rate": a.lora_lr}
    curriculum: dict[str, Any] = {"strategy": sampler, "curiosity_bands": a.bands,
                                  "curiosity_probe_examples": a.probe_examples, "curiosity_probe_every": a.probe_every}
    return SFTConfig(model_name=MODEL, train_file=str(prepared / "train.jsonl"), val_file=str(prepared / "val.jsonl"),
                     max_length=a.max_length, packing=True, batch_size=a.batch_size,
                     gradient_accumulation_steps=a.accumulation, max_steps=steps, warmup_ratio=0.05,
                     lr_scheduler="cosine", seed=seed, logging_steps=1, eval_steps=steps, save_steps=steps,
                     save_total_limit=1, eval_batch_size=8, curriculum=curriculum, **model)


def train_run(cfg: Any, out: Path, sampler: str) -> dict[str, Any]:
    from curiosity_sft.training.loop import train

    t0 = time.perf_counter()
    res = train(cfg, out, show_progress=False, overwrite=True)
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    steps = [r for r in recs if "loss" in r]
    key = SAMPLER_KEYS.get(sampler)
    return {"steps": res.steps, "seconds": time.perf_counter() - t0, "final_train_loss": res.final_loss,
            # tokens_per_second x window_seconds is the window's real (non-padding) tokens, logged every step
            "tokens": round(sum(r["tokens_per_second"] * r["window_seconds"] for r in steps)),
            "applied": None if key is None else any(k.startswith(key) for r in recs for k in r)}


def evaluate_run(run: Path, prepared: Path, subsets: dict[str, Path], a: argparse.Namespace) -> dict[str, Any]:
    from curiosity_sft.evaluation.evaluate import evaluate
    from curiosity_sft.training.export import load_for_inference

    bundle = load_for_inference(str(run / "hf_model"))
    ppl = evaluate(str(run), prepared / "val.jsonl", tasks=("perplexity",), max_length=a.max_length,
                   batch_size=8, show_progress=False, model_bundle=bundle)["perplexity"]
    out: dict[str, Any] = {"val_loss": {s: v["loss"] for s, v in ppl.items()}}
    for name, path in subsets.items():
        res = evaluate(str(run), path, tasks=("accuracy",), max_new_tokens=a.max_new_tokens, batch_size=8,
                       max_length=a.max_length, show_progress=False, model_bundle=bundle)
        out[f"{name}_accuracy"] = res.get("accuracy", {}).get("overall", {}).get("accuracy", 0.0)
    return out


def flatten(r: dict[str, Any]) -> dict[str, float]:
    row = {f"val_loss/{s}": v for s, v in r["val_loss"].items()}
    row.update({k: v for k, v in r.items() if k.endswith("_accuracy") or k == "tokens"})
    return row


def aggregate(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per (model kind, sampler): mean, standard deviation (0 for one run) and n of every metric."""
    groups: dict[str, list[dict[str, float]]] = {}
    for r in runs:
        groups.setdefault(f"{r['kind']}/{r['sampler']}", []).append(flatten(r))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for g, rows in groups.items():
        out[g] = {k: {"mean": statistics.fmean(row[k] for row in rows),
                      "std": statistics.stdev([row[k] for row in rows]) if len(rows) > 1 else 0.0, "n": len(rows)}
                  for k in rows[0]}
    return out


def verdicts(agg: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Each (sampler, metric) that differs from stratified beyond the seed spread, better or worse."""
    lines = []
    for g, metrics in sorted(agg.items()):
        kind, sampler = g.split("/")
        base = agg.get(f"{kind}/stratified")
        if sampler == "stratified" or base is None:
            continue
        for k, m in metrics.items():
            if k == "tokens" or k not in base:
                continue
            lower_better = k.startswith("val_loss")
            diff = m["mean"] - base[k]["mean"]
            better = diff < 0 if lower_better else diff > 0
            spread = m["std"] + base[k]["std"]
            beyond = abs(diff) > spread and m["n"] > 1 and base[k]["n"] > 1
            if beyond:
                lines.append(f"{kind}: {sampler} {'beats' if better else 'is worse than'} stratified on {k} beyond "
                             f"the seed spread ({m['mean']:.4f} vs {base[k]['mean']:.4f}, spread {spread:.4f})")
    return lines


def probability_series(run: Path) -> dict[str, list[tuple[int, float]]]:
    """``curriculum/p/<bucket>`` of every logged step of a run, per bucket."""
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    series: dict[str, list[tuple[int, float]]] = {}
    for r in recs:
        for k, v in r.items():
            if k.startswith("curriculum/p/"):
                series.setdefault(k.removeprefix("curriculum/p/"), []).append((r["step"], v))
    return series


def plot_probabilities(runs: dict[str, Path] | Path, path: Path) -> bool:
    """One panel per curiosity run (title: its label); False when no run logged probabilities."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(runs, Path):
        runs = {"seed 0": runs}
    panels = {label: s for label, run in runs.items() if (run / "metrics.jsonl").is_file()
              and (s := probability_series(run))}
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.5), squeeze=False)
    for ax, (label, series) in zip(axes[0], panels.items(), strict=True):
        for name, pts in sorted(series.items()):
            ax.plot([s for s, _ in pts], [p for _, p in pts], label=name)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("probability of drawing the bucket")
        ax.set_title(f"curiosity sampler: bucket probabilities ({label})")
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def fmt(m: dict[str, float], digits: int = 4) -> str:
    return f"{m['mean']:.{digits}f} ± {m['std']:.{digits}f}" if m["n"] > 1 else f"{m['mean']:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    agg = results["aggregate"]
    lines = []
    if not results["loop_uses_curriculum"]:
        lines += ["**The training loop ignored `curriculum.strategy` in these runs: every sampler trained as "
                  "`random`, so the table compares seeds, not samplers.**", ""]
    lines += [f"Command: `{results['command']}`", "",
              f"Settings: {json.dumps(results['settings'])}", ""]
    if results.get("missing_runs"):
        lines += [f"**Not run (the experiment was stopped before them): {', '.join(results['missing_runs'])}.**", ""]
    if results.get("machine_seconds"):
        lines += [f"Machine time: {results['machine_seconds'] / 60:.1f} minutes (training and evaluation of every run).", ""]
    for kind in ("fresh", "lora"):
        groups = sorted(g for g in agg if g.startswith(kind + "/"))
        if not groups:
            continue
        metrics = list(agg[groups[0]])
        lines += [f"### {'fresh ' + results['settings']['fresh'] + ' model' if kind == 'fresh' else 'SmolLM2-135M LoRA'}",
                  "", "| sampler | runs | " + " | ".join(metrics) + " |", "| --- | --- |" + " --- |" * len(metrics)]
        for g in groups:
            m = agg[g]
            cells = [fmt(m[k], 0) if k == "tokens" else fmt(m[k]) for k in metrics]
            lines.append(f"| {g.split('/')[1]} | {m[metrics[0]]['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Different from stratified beyond the seed spread (difference of means > sum of standard "
              "deviations; needs 2+ runs each):", ""]
    lines += [f"- {v}" for v in results["verdicts"]] or ["- none"]
    if results.get("plot"):
        lines += ["", f"![curiosity bucket probabilities]({results['plot']})"]
    return "\n".join(lines) + "\n"


def main() -> None:
    # The defaults are sized for about 40 minutes on 2 busy CPU cores (12 fresh-model runs of 200
    # steps x 1024 tokens, 4 LoRA runs of 40 steps, each scored on 20 + 20 problems): enough to
    # check the samplers against each other at equal tokens, far too little to show a curriculum
    # effect at scale (docs/CURRICULUM.md, Results, says what a GPU run would need).
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", type=Path, default=RAW)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "curriculum")
    ap.add_argument("--work", type=Path, default=None,
                    help="where the runs go (default: $CURIOSITY_SFT_CACHE/bench_curriculum, outside the repository)")
    ap.add_argument("--lock", type=Path, default=None, help="lock file held (flock) for each run, e.g. /tmp/heavy.lock")
    ap.add_argument("--samplers", default="random,stratified,competence,curiosity")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200, help="optimizer steps of every fresh-model run")
    ap.add_argument("--fresh", default="128x4", help="WIDTHxLAYERS of the fresh model of SmolLM2's architecture")
    ap.add_argument("--fresh-lr", type=float, default=2e-3)
    ap.add_argument("--lora-steps", type=int, default=40, help="steps of the one SmolLM2 LoRA run per sampler")
    ap.add_argument("--lora-lr", type=float, default=2e-4)
    ap.add_argument("--per-source", type=int, default=600, help="training examples kept per source at most")
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--accumulation", type=int, default=1)
    ap.add_argument("--eval-n", type=int, default=20, help="GSM8K and logic problems scored per run")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--bands", type=int, default=2, help="curriculum.curiosity_bands")
    ap.add_argument("--probe-examples", type=int, default=4, help="curriculum.curiosity_probe_examples")
    ap.add_argument("--probe-every", type=int, default=10, help="curriculum.curiosity_probe_every")
    ap.add_argument("--smoke", action="store_true", help="synthetic data and tiny sizes: check the harness")
    ap.add_argument("--report-only", action="store_true",
                    help="train nothing: report the runs already in --work with these settings, naming the missing")
    a = ap.parse_args()
    if a.smoke:
        a.seeds, a.steps, a.fresh, a.lora_steps, a.per_source = 2, 6, "32x2", 2, 60
        a.max_length, a.batch_size, a.accumulation, a.eval_n, a.max_new_tokens = 256, 2, 2, 3, 8
        a.probe_examples, a.probe_every = 2, 2
    elif not a.raw.is_dir():
        print(f"skipped: {a.raw} is absent (use --smoke for the synthetic data)")
        return
    a.out.mkdir(parents=True, exist_ok=True)
    cache = Path(os.environ.get("CURIOSITY_SFT_CACHE", ROOT / ".cache"))
    work = a.work or cache / ("bench_curriculum_smoke" if a.smoke else "bench_curriculum")
    with held(a.lock):
        prepared = prepare_mix(a.raw, work, a.per_source, a.max_length, a.smoke)
    subsets = eval_subsets(prepared, work, a.eval_n)
    samplers = a.samplers.split(",")
    plan = [(s, seed, "fresh", a.steps) for seed in range(a.seeds) for s in samplers]
    if a.lora_steps:
        plan += [(s, 0, "lora", a.lora_steps) for s in samplers]
    runs, missing = [], []
    for sampler, seed, kind, steps in plan:
        run = work / "runs" / f"{kind}-{sampler}-seed{seed}"
        done = run / "bench_result.json"
        cfg = run_config(prepared, sampler, seed, kind, steps, a)
        settings = {"config": cfg.model_dump(mode="json"), "eval_n": a.eval_n, "max_new_tokens": a.max_new_tokens}
        fresh = done.is_file() and json.loads(done.read_text()).get("settings") == settings
        if not fresh and a.report_only:
            missing.append(run.name)
            continue
        if not fresh:  # never run, or run with other settings: run again
            with held(a.lock):
                t0 = time.perf_counter()
                r = {"sampler": sampler, "seed": seed, "kind": kind, **train_run(cfg, run, sampler)}
                r.update(evaluate_run(run, prepared, subsets, a))
                r["total_seconds"] = time.perf_counter() - t0
            done.write_text(json.dumps({**r, "settings": settings}))
        runs.append({k: v for k, v in json.loads(done.read_text()).items() if k != "settings"})
        print(json.dumps(runs[-1]), flush=True)
    applied = [r["applied"] for r in runs if r["applied"] is not None]
    plot = a.out / "curiosity_probabilities.png"
    curious = {"fresh model, seed 0": work / "runs" / "fresh-curiosity-seed0",
               "SmolLM2-135M LoRA": work / "runs" / "lora-curiosity-seed0"}
    results = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {k: shown_path(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
        "loop_uses_curriculum": bool(applied) and all(applied),
        "runs": runs, "aggregate": aggregate(runs), "missing_runs": missing,
        "machine_seconds": round(sum(r.get("total_seconds", r["seconds"]) for r in runs)),
        "plot": plot.name if plot_probabilities(curious, plot) else None,
    }
    results["verdicts"] = verdicts(results["aggregate"]) if results["loop_uses_curriculum"] else []
    (a.out / "results.json").write_text(json.dumps(results, indent=2))
    (a.out / "results.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
