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
                ngram=a.ngram, overflow=a.overflow, overwrite=a.overwrite, train_config=a.config, train_overrides=a.set)
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
    from curiosity_sft.config import load_config
    from curiosity_sft.evaluation.evaluate import evaluate
    from curiosity_sft.evaluation.tasks import parse_tasks

    flags = {"eval_num_fewshot": a.num_fewshot, "eval_sampling": a.sampling, "eval_num_samples": a.num_samples,
             "eval_max_thinking_tokens": a.max_thinking_tokens}
    cfg = load_config(a.config, [*a.set, *(f"{k}={v}" for k, v in flags.items() if v is not None)])
    res = evaluate(a.model, a.data, a.output, limit=a.limit, max_new_tokens=a.max_new_tokens or cfg.eval_max_new_tokens,
                   batch_size=a.batch_size or cfg.eval_batch_size, max_length=a.max_length,
                   tasks=parse_tasks(a.tasks), config=cfg, compare=a.compare, overwrite=a.overwrite, split=a.split,
                   fewshot_file=a.fewshot_file)
    _report_scores(res, a.output, "results.json, samples.jsonl, report.md, report.html", a.fail_on_gates)


def cmd_score(a: argparse.Namespace) -> None:
    from curiosity_sft.config import load_config
    from curiosity_sft.evaluation.score import score_samples

    res = score_samples(a.samples, a.data, a.output, config=load_config(a.config, a.set), overwrite=a.overwrite)
    _report_scores(res, a.output, "results.json, samples.jsonl", a.fail_on_gates)


def _report_scores(res: dict, output: str | None, files: str, fail_on_gates: bool) -> None:
    """The headline numbers on stdout (JSON), and exit 1 under --fail-on-gates when a gate did not pass."""
    import json

    from curiosity_sft.evaluation.gates import Gate, failed

    summary: dict = {}
    if "perplexity" in res:
        summary["perplexity"] = res["perplexity"]["overall"]["perplexity"]
    if "bleu" in res:
        summary["bleu_01"] = {s: v.get("bleu_01") for s, v in res["bleu"].items()}
    if "accuracy" in res:
        summary["accuracy"] = {s: v["accuracy"] for s, v in res["accuracy"].items()}
    summary["gates"] = {g["name"]: g["status"] for g in res["gates"]}
    print(json.dumps(summary, indent=2))
    if output:
        log.info("wrote %s/%s, manifest.json", output, files)
    stopped = failed([Gate(**g) for g in res["gates"]])
    if fail_on_gates and stopped:
        log.error("quality gate(s) did not pass: %s",
                  ", ".join(f"{g.name} ({g.status})" for g in stopped))
        raise SystemExit(1)


def cmd_inspect(a: argparse.Namespace) -> None:
    from curiosity_sft.config import load_config
    from curiosity_sft.training.inspect_data import inspect_data

    inspect_data(load_config(a.config, a.set), a.data, a.n, a.json)
    if a.json:
        log.info("wrote %s", a.json)


def cmd_plan(a: argparse.Namespace) -> None:
    from curiosity_sft.config import load_config
    from curiosity_sft.planning.memory import parse_size
    from curiosity_sft.planning.plan import plan_report

    print(plan_report(load_config(a.config, a.set), parse_size(a.gpu_memory), a.launcher, a.num_processes))


def cmd_curriculum(a: argparse.Namespace) -> None:
    from curiosity_sft.config import load_config
    from curiosity_sft.curriculum.preview import preview

    print(preview(load_config(a.config, a.set), processes=a.processes))


def cmd_demo(a: argparse.Namespace) -> None:
    from curiosity_sft.demo import run_demo

    run_demo(a.output, a.config, a.set)


def cmd_web_ingest(a: argparse.Namespace) -> None:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from curiosity_sft.web.fetch import FetchOptions
    from curiosity_sft.web.ingest import USER_AGENT, IngestOptions, ingest
    from curiosity_sft.web.quality import QualityConfig

    kind, value = next((k, getattr(a, k)) for k in ("urls", "sitemap", "feed") if getattr(a, k))
    fetch = FetchOptions(a.user_agent or USER_AGENT, allow_private=a.allow_private_addresses, timeout=a.timeout,
                         deadline=a.deadline, retries=a.retries, backoff=a.backoff, max_retry_after=a.max_retry_after,
                         max_bytes=a.max_bytes, max_redirects=a.max_redirects, delay=a.delay,
                         max_crawl_delay=a.max_crawl_delay)
    quality = QualityConfig(languages=tuple(a.languages), language_threshold=a.language_threshold,
                            min_words=a.min_words)
    r = ingest(IngestOptions(kind, value, Path(a.output), fetch=fetch, quality=quality, num_shards=a.num_shards,
                             shard_index=a.shard_index, snapshot=a.snapshot, workers=a.workers, max_urls=a.max_urls,
                             decontaminate=tuple(a.decontaminate), ngram=a.ngram,
                             near_dup_threshold=a.near_dup_threshold))
    table = Table(title=f"web ingest: {r.manifest['snapshot']} {r.folder.name}")
    table.add_column("stage")
    table.add_column("pages", justify="right")
    for name, n in r.table:
        table.add_row(name, f"{n:,}")
    Console().print(table)
    log.info("wrote %s", r.folder)


def _add_web(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("web", help="dynamic web data: ingest pages into snapshots prepare can mix in")
    wsub = w.add_subparsers(dest="web_command", required=True)
    s = wsub.add_parser("ingest", help="fetch, extract, filter, deduplicate and decontaminate pages into a snapshot")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--urls", metavar="FILE", help="text file, one URL a line (# comments)")
    src.add_argument("--sitemap", metavar="URL", help="a sitemap or sitemap index (.xml or .xml.gz)")
    src.add_argument("--feed", metavar="URL", help="an RSS or Atom feed")
    s.add_argument("--output", required=True, help="web-ingest folder; each run adds snapshots/<name>/shard-i-of-n/")
    s.add_argument("--snapshot", help="snapshot name (default: the UTC time); every shard of one crawl needs the same")
    s.add_argument("--num-shards", type=int, default=1, help="split the crawl by host into N independent shards")
    s.add_argument("--shard-index", type=int, default=0, help="which shard this process runs (0 .. N-1)")
    s.add_argument("--allow-private-addresses", action="store_true",
                   help="allow loopback/private/link-local hosts (intranets, tests); metadata addresses stay refused")
    s.add_argument("--decontaminate", nargs="+", default=[], metavar="FILE",
                   help="evaluation sets (files or folders, any prepare format) pages must not overlap")
    s.add_argument("--ngram", type=int, default=13, help="shared word n-gram that counts as contamination")
    s.add_argument("--near-dup-threshold", type=float, default=0.9, help="MinHash Jaccard of near duplicates")
    s.add_argument("--languages", nargs="+", default=["en"], help="languages kept (fastText lid.176 codes)")
    s.add_argument("--language-threshold", type=float, default=0.65, help="minimum language score (FineWeb: 0.65)")
    s.add_argument("--min-words", type=int, default=50, help="fewest words a page may have (Gopher: 50)")
    s.add_argument("--delay", type=float, default=1.0, help="seconds between two requests to one host")
    s.add_argument("--max-crawl-delay", type=float, default=60.0, help="skip hosts whose robots crawl-delay is longer")
    s.add_argument("--timeout", type=float, default=10.0, help="seconds to connect and for each read")
    s.add_argument("--deadline", type=float, default=30.0, help="seconds for a whole response")
    s.add_argument("--retries", type=int, default=3, help="retries on 429/5xx, timeouts and refused connections")
    s.add_argument("--backoff", type=float, default=1.0, help="first retry delay in seconds (doubles each time)")
    s.add_argument("--max-retry-after", type=float, default=120.0, help="give up on a Retry-After longer than this")
    s.add_argument("--max-bytes", type=int, default=10 * 1024 * 1024, help="cap on a decoded body")
    s.add_argument("--max-redirects", type=int, default=5)
    s.add_argument("--max-urls", type=int, default=1_000_000, help="at most this many URLs from the list/sitemap/feed")
    s.add_argument("--workers", type=int, default=8, help="hosts fetched at once (one request at a time per host)")
    s.add_argument("--user-agent", help="User-Agent header (default names curiosity-sft)")
    s.set_defaults(fn=cmd_web_ingest)


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
    s.add_argument("--max-length", "--max_length", type=int,
                   help="tokens per example, chat template included (default: the training config's max_length)")
    s.add_argument("--overflow", choices=("drop", "truncate"), help="longer examples are dropped (default) or truncated")
    s.add_argument("--model", help="tokenizer for length accounting (default: the training config's model_name; "
                                   "`none`: estimate)")
    s.add_argument("--decontaminate", nargs="+", default=[], metavar="FILE", help="extra evaluation sets")
    s.add_argument("--ngram", type=int, help="shared word n-gram that counts as contamination (13)")
    s.add_argument("--overwrite", action="store_true", help="replace an earlier `prepare` output in --output (only that)")
    s.add_argument("--config", help="training config (configs/*.yaml) whose max_length and model_name prepare uses")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a training config key")
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
    s.add_argument("--output", help="folder for results.json, samples.jsonl, report.md, report.html, manifest.json")
    s.add_argument("--overwrite", action="store_true", help="replace an earlier `evaluate` output in --output")
    s.add_argument("--split", choices=("held-out", "train", "all"), default="held-out",
                   help="which examples of --data to score: held-out (default; a training file is refused), "
                        "train, or all")
    s.add_argument("--tasks", help="comma-separated: perplexity, bleu, accuracy (default: all)")
    s.add_argument("--limit", type=int, help="evaluate a deterministic subset of N examples")
    s.add_argument("--max-new-tokens", "--max_new_tokens", type=int,
                   help="budget for scored answers (default: eval_max_new_tokens); BLEU sizes its own per reference")
    s.add_argument("--batch-size", "--batch_size", type=int, help="default: eval_batch_size")
    s.add_argument("--max-length", "--max_length", type=int,
                   help="tokens per example for perplexity (default: the checkpoint's training max_length)")
    s.add_argument("--config", help="YAML config whose gate_* keys set the quality-gate thresholds")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    s.add_argument("--compare", help="another evaluation's results.json (e.g. the base model) to report against")
    s.add_argument("--fail-on-gates", "--fail_on_gates", action="store_true",
                   help="exit 1 when a quality gate fails or measured nothing")
    s.add_argument("--num-fewshot", "--num_fewshot", type=int, help="GSM8K few-shot examples, lm-eval's format (5)")
    s.add_argument("--fewshot-file", "--fewshot_file", help="GSM8K train.jsonl for the shots (default: beside --data)")
    s.add_argument("--sampling", choices=("greedy", "deepseek"), help="default: eval_sampling (greedy)")
    s.add_argument("--num-samples", "--num_samples", type=int, help="samples per prompt with --sampling deepseek")
    s.add_argument("--max-thinking-tokens", "--max_thinking_tokens", type=int,
                   help="extra budget for thinking (default: eval_max_thinking_tokens)")
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser("inspect", help="show what training will see: examples rendered, trained tokens highlighted")
    s.add_argument("--config", help="YAML config (configs/*.yaml)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    s.add_argument("--data", help="a prepared JSONL (default: the config's train_file)")
    s.add_argument("--n", type=int, default=3, help="examples to show (default 3)")
    s.add_argument("--json", help="write the shown examples as JSON: id, rendered, trained_text, n_tokens, n_trained")
    s.set_defaults(fn=cmd_inspect)

    s = sub.add_parser("score", help="re-score an evaluation's samples.jsonl without a model")
    s.add_argument("--samples", required=True, help="samples.jsonl written by `evaluate`")
    s.add_argument("--data", required=True, help="the --data file that evaluation was given (joined by id)")
    s.add_argument("--output", help="folder for results.json, samples.jsonl, manifest.json")
    s.add_argument("--overwrite", action="store_true", help="replace an earlier `score` output in --output")
    s.add_argument("--config", help="YAML config whose gate_* keys set the quality-gate thresholds")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    s.add_argument("--fail-on-gates", "--fail_on_gates", action="store_true",
                   help="exit 1 when a quality gate fails or measured nothing")
    s.set_defaults(fn=cmd_score)

    s = sub.add_parser("plan", help="estimate peak GPU memory and propose the fastest setting that fits")
    s.add_argument("--config", help="YAML config (configs/*.yaml)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    s.add_argument("--gpu-memory", "--gpu_memory", required=True, help="the card's memory, e.g. 24GB")
    s.add_argument("--launcher", help="accelerate config the run would be launched with (configs/accelerate/*.yaml)")
    s.add_argument("--num-processes", "--num_processes", type=int, help="processes (GPUs) of that launch")
    s.set_defaults(fn=cmd_plan)

    s = sub.add_parser("curriculum", help="show what curriculum.strategy will do with the training data, before training")
    s.add_argument("--config", help="YAML config (configs/*.yaml)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    s.add_argument("--processes", type=int, default=1, help="training processes (the global batch is per step)")
    s.set_defaults(fn=cmd_curriculum)

    s = sub.add_parser("demo", help="the whole pipeline on embedded data, offline")
    s.add_argument("--output", default="demo_output", help="folder for everything the demo writes")
    s.add_argument("--config", default=None, help="training config (default: configs/cpu_demo.yaml)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    s.set_defaults(fn=cmd_demo)
    _add_web(sub)
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
