"""``curiosity-sft``: subcommands only. Parse, load config, call one function, map user errors to exit 2."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from curiosity_sft.errors import UserError

log = logging.getLogger("curiosity_sft")


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    level = logging.INFO if not verbose else logging.DEBUG
    if int(os.environ.get("RANK", "0")) > 0:
        level = logging.WARNING  # under torchrun / accelerate launch, rank 0 tells the story once
    logging.basicConfig(level=level, format="%(message)s",
                        handlers=[RichHandler(show_path=False, rich_tracebacks=False, markup=False)])
    for noisy in ("transformers", "peft", "accelerate", "datasets", "httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not verbose:
        import warnings

        warnings.filterwarnings("ignore", category=FutureWarning)
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def cmd_prepare(a: argparse.Namespace) -> None:
    from curiosity_sft.data.prepare import prepare

    r = prepare(a.input, a.output, val_ratio=a.val_ratio, seed=a.seed, data_config=a.data_config,
                on_error=a.on_error, max_length=a.max_length, model=a.model, decontaminate=a.decontaminate,
                ngram=a.ngram, overflow=a.overflow)
    for split, c in r.counts.items():
        log.info("%s: %d examples %s", split, sum(c.values()), dict(c))
    for source, f in r.manifest["filters"].items():
        log.info("%s: %s", source, ", ".join(f"{k} {v}" for k, v in f.items() if v))
    if r.skipped:
        log.warning("skipped %d bad records (--on-error skip): %s", sum(r.skipped.values()), r.skipped)
        for msg in r.skipped_examples:
            log.warning("  %s", msg)
    log.info("wrote %s", r.output_dir)


def cmd_train(a: argparse.Namespace) -> None:
    from curiosity_sft.config import load_config
    from curiosity_sft.training.loop import train

    cfg = load_config(a.config, a.set)
    r = train(cfg, a.output, resume_from=a.resume_from_checkpoint, overwrite=a.overwrite,
              keep_global_batch=a.keep_global_batch, force_resume=a.force_resume)
    if not r.is_main:
        return
    if r.stopped_by is None:
        log.info("finished %d steps, final loss %s, eval loss %s; outputs in %s", r.steps, _fmt(r.final_loss),
                 _fmt(r.final_eval_loss), r.output_dir)
    elif r.checkpoint is None:
        print(f"stopped by {r.stopped_by} before the first step: nothing to save; run the same command again",
              file=sys.stderr)
    else:
        print(f"stopped by {r.stopped_by} after step {r.steps}: saved {r.checkpoint}; to resume, run the same command "
              "with --resume_from_checkpoint latest", file=sys.stderr)


def cmd_evaluate(a: argparse.Namespace) -> None:
    import json

    from curiosity_sft.config import load_config
    from curiosity_sft.evaluation.evaluate import evaluate
    from curiosity_sft.evaluation.tasks import parse_tasks

    cfg = load_config(a.config, a.set)
    res = evaluate(a.model, a.data, a.output, limit=a.limit, max_new_tokens=a.max_new_tokens or cfg.eval_max_new_tokens,
                   batch_size=a.batch_size or cfg.eval_batch_size, max_length=a.max_length,
                   tasks=parse_tasks(a.tasks), config=cfg, compare=a.compare)
    summary: dict = {}
    if "perplexity" in res:
        summary["perplexity"] = res["perplexity"]["overall"]["perplexity"]
    if "bleu" in res:
        summary["bleu_01"] = res["bleu"]["overall"].get("bleu_01")
    if "accuracy" in res:
        summary["accuracy"] = {s: v["accuracy"] for s, v in res["accuracy"].items()}
    summary["gates"] = {g["name"]: g["status"] for g in res["gates"]}
    print(json.dumps(summary, indent=2))
    if a.output:
        log.info("wrote %s/results.json, samples.jsonl, report.md, report.html", a.output)
    if a.fail_on_gates and any(g["status"] == "fail" for g in res["gates"]):
        log.error("quality gate(s) failed: %s", ", ".join(g["name"] for g in res["gates"] if g["status"] == "fail"))
        raise SystemExit(1)


def cmd_plan(a: argparse.Namespace) -> None:
    from curiosity_sft.config import load_config
    from curiosity_sft.planning.memory import parse_size
    from curiosity_sft.planning.plan import plan_report

    print(plan_report(load_config(a.config, a.set), parse_size(a.gpu_memory), a.launcher, a.num_processes))


def cmd_demo(a: argparse.Namespace) -> None:
    from curiosity_sft.demo import run_demo

    run_demo(a.output, a.config, a.set)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="curiosity-sft", description="Supervised fine-tuning for reasoning data.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging and library warnings")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("prepare", help="raw files -> train/val/test JSONL + manifest")
    s.add_argument("--input", required=True, help="folder (or file) of raw data")
    s.add_argument("--output", required=True, help="folder for train.jsonl, val.jsonl, test.jsonl, manifest.json")
    s.add_argument("--val-ratio", "--val_ratio", type=float, default=0.05, help="share of each source held out")
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--data-config", "--data_config", help="YAML listing sources, paths, weights, caps (docs/DATA.md)")
    s.add_argument("--on-error", "--on_error", choices=("fail", "skip"), default="fail",
                   help="fail on the first bad record (exit 2) or skip and count bad records")
    s.add_argument("--max-length", "--max_length", type=int, help="tokens per example, chat template included (1024)")
    s.add_argument("--overflow", choices=("drop", "truncate"), help="longer examples are dropped (default) or truncated")
    s.add_argument("--model", help="tokenizer for length accounting (smollm2-135m-instruct; `none`: estimate)")
    s.add_argument("--decontaminate", nargs="+", default=[], metavar="FILE", help="extra evaluation sets")
    s.add_argument("--ngram", type=int, help="shared word n-gram that counts as contamination (13)")
    s.set_defaults(fn=cmd_prepare)

    s = sub.add_parser("train", help="fine-tune a model (LoRA or full)")
    s.add_argument("--config", help="YAML config (configs/*.yaml)")
    s.add_argument("--output", required=True, help="run folder: checkpoints, latest.pt, hf_model/, runs/")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    s.add_argument("--resume_from_checkpoint", "--resume-from-checkpoint", help="checkpoint-N folder or `latest`")
    s.add_argument("--overwrite", action="store_true",
                   help="replace an earlier run in --output (its checkpoints and exports; nothing else is touched)")
    s.add_argument("--keep-global-batch", "--keep_global_batch", action="store_true",
                   help="on resume with another number of processes, rescale accumulation to keep the global batch")
    s.add_argument("--force-resume", "--force_resume", action="store_true",
                   help="resume even though the data, max_length, packing, seed or tokenizer changed (re-plans the data)")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("evaluate", help="perplexity and answer accuracy of a model on a data file")
    s.add_argument("--model", required=True, help="latest.pt, checkpoint-N, run folder, HF folder, adapter, alias")
    s.add_argument("--data", required=True, help="prepared val.jsonl/test.jsonl or a raw GSM8K/MATH/logic file")
    s.add_argument("--output", help="folder for results.json, samples.jsonl, report.md and report.html")
    s.add_argument("--tasks", help="comma-separated: perplexity, bleu, accuracy (default: all)")
    s.add_argument("--limit", type=int, help="evaluate a deterministic subset of N examples")
    s.add_argument("--max-new-tokens", "--max_new_tokens", type=int, help="default: eval_max_new_tokens")
    s.add_argument("--batch-size", "--batch_size", type=int, help="default: eval_batch_size")
    s.add_argument("--max-length", "--max_length", type=int, default=1024)
    s.add_argument("--config", help="YAML config whose gate_* keys set the quality-gate thresholds")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    s.add_argument("--compare", help="another evaluation's results.json (e.g. the base model) to report against")
    s.add_argument("--fail-on-gates", "--fail_on_gates", action="store_true", help="exit 1 when a quality gate fails")
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser("plan", help="estimate peak GPU memory and propose the fastest setting that fits")
    s.add_argument("--config", help="YAML config (configs/*.yaml)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    s.add_argument("--gpu-memory", "--gpu_memory", required=True, help="the card's memory, e.g. 24GB")
    s.add_argument("--launcher", help="accelerate config the run would be launched with (configs/accelerate/*.yaml)")
    s.add_argument("--num-processes", "--num_processes", type=int, help="processes (GPUs) of that launch")
    s.set_defaults(fn=cmd_plan)

    s = sub.add_parser("demo", help="the whole pipeline on embedded data, offline")
    s.add_argument("--output", default="demo_output", help="folder for everything the demo writes")
    s.add_argument("--config", default=None, help="training config (default: configs/cpu_demo.yaml)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    s.set_defaults(fn=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        args.fn(args)
    except UserError as e:
        print(f"error: {e.one_line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        from curiosity_sft.training.signals import Interrupted

        if isinstance(e, Interrupted) and args.command == "train":
            print(f"stopped by {e.signame} before training started (or at once, on repeated signals): nothing new was "
                  "saved; the last checkpoint, if any, is intact", file=sys.stderr)
            return 128 + int(getattr(signal, e.signame))
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
