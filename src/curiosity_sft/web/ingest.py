"""``web ingest``: URLs -> fetch -> extract -> filter -> decontaminate -> deduplicate -> snapshot.

```
discover (list, sitemap, feed) -> this shard's hosts -> fetch (one worker per host at a time,
  conditional requests, journal) -> extract (only new bodies) -> language, length, Gopher, C4,
  FineWeb -> decontamination (prepare's n-gram index) -> near duplicates (prepare's MinHash)
  against earlier snapshots and this crawl -> snapshots/<name>/shard-i-of-n/ (atomic)
```

A page that fails (404, timeout, robots, refused address, too large, not HTML, filtered out)
is one line in ``dropped.jsonl`` and one count in the manifest, never an exception. Only user
mistakes stop the command: an unreadable URL list, a sitemap or feed that cannot be read, a
folder that is not ours, a snapshot shard that exists already.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from curiosity_sft import __version__
from curiosity_sft.data.eval_sets import eval_index
from curiosity_sft.data.filters import contaminated
from curiosity_sft.data.records import BadRecords
from curiosity_sft.data.schema import stable_id, write_jsonl
from curiosity_sft.data.sources.options import SourceOptions
from curiosity_sft.errors import UserError
from curiosity_sft.io import (
    MANIFEST,
    atomic_write_json,
    check_output_dir,
    ownership,
    publish_dir,
    staging_dir,
    written_by,
)
from curiosity_sft.web import quality
from curiosity_sft.web.discover import discover
from curiosity_sft.web.extract import Extracted, extract
from curiosity_sft.web.fetch import XML_TYPES, Fetcher, FetchOptions
from curiosity_sft.web.snapshot import (
    CACHE,
    COMMAND,
    DOCUMENTS,
    DROPPED,
    SNAPSHOTS,
    WORK,
    as_example,
    corpus_for,
    init_root,
    is_root,
    latest_by_url,
    list_snapshots,
    near_duplicate_pass,
    shard_name,
    shard_of,
)
from curiosity_sft.web.state import ContentStore, Journal, find_unfinished

USER_AGENT = f"curiosity-sft/{__version__} (SFT data ingest; honours robots.txt)"
SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
FILTER_ORDER = ("no_text", *quality.STAGES, "contaminated", "near_duplicate")


@dataclass
class IngestOptions:
    """Everything one ``web ingest`` run decides; the CLI maps its flags onto this one to one."""

    kind: str  # "urls", "sitemap" or "feed"
    value: str  # the file or URL
    output: Path
    fetch: FetchOptions = field(default_factory=lambda: FetchOptions(USER_AGENT))
    quality: quality.QualityConfig = field(default_factory=quality.QualityConfig)
    num_shards: int = 1
    shard_index: int = 0
    snapshot: str | None = None
    workers: int = 8
    max_urls: int = 1_000_000
    decontaminate: tuple[str, ...] = ()
    ngram: int = 13
    near_dup_threshold: float = 0.9
    show_progress: bool = True


@dataclass
class IngestResult:
    folder: Path
    manifest: dict[str, Any]
    table: list[tuple[str, int]]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    return _sha256(path.read_bytes())


def check_options(o: IngestOptions) -> None:
    """Refuse impossible combinations before anything is fetched or written."""
    where = "<command line>"
    if o.num_shards < 1 or not 0 <= o.shard_index < o.num_shards:
        raise UserError(f"--shard-index {o.shard_index} is not in [0, --num-shards {o.num_shards})", where=where,
                        fix="shards are numbered 0 .. N-1")
    if o.num_shards > 1 and not o.snapshot:
        raise UserError("--num-shards > 1 needs --snapshot NAME", where=where,
                        fix="give every shard the same name, e.g. --snapshot $SLURM_ARRAY_JOB_ID")
    if o.snapshot is not None and not SNAPSHOT_NAME.match(o.snapshot):
        raise UserError(f"--snapshot `{o.snapshot}` is not a plain folder name", where=where,
                        fix="letters, digits, '.', '_' and '-'")
    if o.workers < 1 or o.max_urls < 1:
        raise UserError("--workers and --max-urls must be at least 1", where=where)
    if not 0 < o.near_dup_threshold <= 1:
        raise UserError("--near-dup-threshold must be in (0, 1]", where=where)


def prepare_root(o: IngestOptions) -> Path:
    """The output folder, refused unless it is new, empty, or an earlier ``web ingest`` output."""
    root = o.output.expanduser().resolve()
    if written_by(root) == COMMAND and not is_root(root):
        raise UserError("this is a snapshot shard of `web ingest`, not its --output folder", where=o.output,
                        fix=f"pass the folder that holds snapshots/ (e.g. {root.parents[2]})")
    if not is_root(root):
        inputs = [o.value] if o.kind == "urls" else []
        check_output_dir(root, COMMAND, inputs=[*inputs, *o.decontaminate])
    init_root(root)
    return root


def request_key(o: IngestOptions) -> dict[str, Any]:
    """What identifies "the same ingest" when a killed one is re-run: source, its content, shard."""
    value = str(Path(o.value).resolve()) if o.kind == "urls" else o.value
    digest = _file_sha256(Path(o.value)) if o.kind == "urls" and Path(o.value).is_file() else None
    return {"source": {"kind": o.kind, "value": value, "sha256": digest},
            "shard": {"index": o.shard_index, "count": o.num_shards}}


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[status]}"), disable=not enabled, transient=True)


class Crawl:
    """The fetch phase of one shard: each URL fetched (or revalidated) once and journalled."""

    def __init__(self, o: IngestOptions, fetcher: Fetcher, store: ContentStore, journal: Journal,
                 previous: dict[str, dict[str, Any]], extract_fn: Callable[[bytes, str, str | None], Extracted]) -> None:
        self.o, self.fetcher, self.store, self.journal = o, fetcher, store, journal
        self.previous, self.extract_fn = previous, extract_fn
        self.stop = threading.Event()

    def one(self, url: str) -> dict[str, Any]:
        old = self.previous.get(url)
        validators = {}
        if old and self.store.get(old.get("sha256")) is not None:  # only revalidate what we can reuse
            if old.get("etag"):
                validators["If-None-Match"] = old["etag"]
            if old.get("last_modified"):
                validators["If-Modified-Since"] = old["last_modified"]
        r = self.fetcher.fetch(url, validators=validators or None)
        rec: dict[str, Any] = {"url": url, "final_url": r.final_url, "status": r.status, "fetched_at": r.fetched_at,
                               "attempts": r.attempts, "redirects": r.redirects, "content_type": r.content_type,
                               "etag": r.etag, "last_modified": r.last_modified, "sha256": None, "bytes": None,
                               "error": r.error, "detail": r.detail, "not_modified": False, "extracted": False}
        if r.error is not None:
            return rec
        if r.status == 304:
            if not validators:
                rec.update(error="unexpected_304", detail="304 to a request without validators")
                return rec
            assert old is not None
            rec.update(sha256=old["sha256"], bytes=old.get("bytes"), not_modified=True,
                       etag=r.etag or old.get("etag"), last_modified=r.last_modified or old.get("last_modified"))
            return rec
        body = r.body or b""
        if b"\x00" in body[:8192]:
            rec.update(error="binary", detail="NUL bytes in the body")
            return rec
        sha = _sha256(body)
        rec.update(sha256=sha, bytes=len(body))
        if self.store.get(sha) is None:
            try:
                found = self.extract_fn(body, r.final_url, r.charset)
            except Exception as e:  # a hostile page that breaks the HTML parser is that page's failure only
                rec.update(error="extract_error", detail=f"{type(e).__name__}: {e}"[:200])
                return rec
            self.store.put(sha, asdict(found))
            rec["extracted"] = True
        return rec

    def run(self, urls: list[str], progress: Progress) -> None:
        by_host: dict[str, list[str]] = defaultdict(list)
        for u in urls:
            by_host[httpx.URL(u).host].append(u)
        task = progress.add_task("fetching", total=len(urls), status="")
        tally: Counter[str] = Counter()
        lock = threading.Lock()

        def host_worker(host_urls: list[str]) -> None:
            for url in host_urls:
                if self.stop.is_set():
                    return
                rec = self.one(url)
                self.journal.add(rec)
                with lock:
                    tally["failed" if rec["error"] else "ok"] += 1
                    progress.update(task, advance=1, status=f"ok {tally['ok']}  failed {tally['failed']}")

        with ThreadPoolExecutor(max_workers=min(self.o.workers, max(1, len(by_host)))) as pool:
            futures = [pool.submit(host_worker, by_host[h]) for h in sorted(by_host)]
            try:
                for f in futures:
                    f.result()
            except BaseException:
                self.stop.set()
                raise


def judge_pages(records: list[dict[str, Any]], store: ContentStore,
                cfg: quality.QualityConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(candidate documents, dropped) after extraction and the quality filters."""
    lid = quality.LanguageID()
    docs, dropped = [], []
    for rec in records:
        base = {"url": rec["url"], "status": rec["status"]}
        if rec["error"] is not None:
            dropped.append({**base, "reason": rec["error"], "detail": rec["detail"]})
            continue
        ex = store.get(rec["sha256"]) or {}
        if not ex.get("text"):
            dropped.append({**base, "reason": "no_text", "detail": "no main text found"})
            continue
        j = quality.judge(ex["text"], cfg, lid)
        if j.reason is not None:
            dropped.append({**base, "reason": j.reason, "detail": j.detail})
            continue
        docs.append({"id": stable_id("web", rec["url"]), "url": rec["url"], "final_url": rec["final_url"],
                     "title": ex.get("title"), "date": ex.get("date"), "sitename": ex.get("sitename"),
                     "language": j.language, "language_score": j.language_score, "sha256": rec["sha256"],
                     "text": j.text})
    return docs, dropped


def summary(records: list[dict[str, Any]], dropped: list[dict[str, Any]], kept: int) -> list[tuple[str, int]]:
    """The end-of-run table: what was fetched, reused, dropped (by reason) and kept."""
    ok = [r for r in records if r["error"] is None]
    rows = [("URLs in this shard", len(records)),
            ("fetched (2xx)", sum(not r["not_modified"] for r in ok)),
            ("not modified (304)", sum(r["not_modified"] for r in ok)),
            ("unchanged body, not re-extracted", sum(not r["not_modified"] and not r["extracted"] for r in ok)),
            ("extracted", sum(r["extracted"] for r in ok))]
    reasons = Counter(d["reason"] for d in dropped)
    order = {r: i for i, r in enumerate(FILTER_ORDER)}
    rows += [(f"dropped: {r}", reasons[r]) for r in sorted(reasons, key=lambda r: (order.get(r, -1), r))]
    rows.append(("kept", kept))
    return rows


def ingest(o: IngestOptions, extract_fn: Callable[[bytes, str, str | None], Extracted] = extract) -> IngestResult:
    """Run one shard of one ingest into ``o.output``; resumes an interrupted run of the same request."""
    check_options(o)
    root = prepare_root(o)
    index, eval_rows = eval_index([], o.decontaminate, o.ngram, SourceOptions(), BadRecords("fail"))
    if not o.decontaminate:
        eval_rows = []
    request = request_key(o)
    shard = shard_name(o.shard_index, o.num_shards)
    name = o.snapshot or find_unfinished(root / WORK, shard, request) or \
        datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    final = root / SNAPSHOTS / name / shard
    if final.exists():
        raise UserError(f"snapshot `{name}` already has {shard}; snapshots are never rewritten", where=final,
                        fix="pass a new --snapshot name (or none: the current time)")
    journal = Journal(root / WORK / name / shard, request)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    fetcher = Fetcher(o.fetch)
    try:
        found_path = journal.folder / "discovered.json"
        if found_path.exists():  # a resumed run: the sitemap or feed is not fetched again
            found = json.loads(found_path.read_text(encoding="utf-8"))
        else:
            d = discover(o.kind, o.value, lambda u: fetcher.fetch(u, accept=XML_TYPES), o.max_urls, o.fetch.max_bytes)
            found = {"urls": d.urls, "failures": d.failures}
            atomic_write_json(found_path, found)
        urls = [u for u in found["urls"] if shard_of(httpx.URL(u).host, o.num_shards) == o.shard_index]
        others = [s for s in list_snapshots(root) if s.name != name and s.complete]
        previous = latest_by_url(others, MANIFEST)
        store = ContentStore(root / CACHE / "extracted")
        todo = [u for u in urls if u not in journal.done]
        with _progress(o.show_progress) as progress:
            Crawl(o, fetcher, store, journal, previous, extract_fn).run(todo, progress)
        records = [journal.done[u] for u in urls]
    except BaseException:
        journal.close()
        raise
    finally:
        fetcher.close()

    docs, dropped = judge_pages(records, store, o.quality)
    if o.shard_index == 0:  # discovery failures are the same in every shard: reported once
        dropped += [{"url": f["url"], "status": 0, "reason": f["reason"], "detail": f["detail"]}
                    for f in found["failures"]]
    hits = contaminated([as_example(d) for d in docs], index)
    dropped += [{"url": docs[i]["url"], "status": 200, "reason": "contaminated", "detail": v.detail}
                for i, v in hits.items()]
    docs = [d for i, d in enumerate(docs) if i not in hits]
    corpus_names = sorted(s.name for s in others)
    corpus = corpus_for(root, corpus_names, set(found["urls"]) | {f["url"] for f in found["failures"]})
    dup = near_duplicate_pass(corpus, docs, o.near_dup_threshold)
    dropped += [{**d, "status": 200, "reason": "near_duplicate", "detail": dup[d["url"]]} for d in docs
                if d["url"] in dup]
    docs = sorted((d for d in docs if d["url"] not in dup), key=lambda d: d["url"])
    dropped.sort(key=lambda d: (d["reason"], d["url"]))

    outcome = {d["url"]: d["reason"] for d in dropped}
    text_sha = {d["url"]: _sha256(d["text"].encode()) for d in docs}
    url_rows = [{**{k: v for k, v in r.items() if k not in ("error", "detail")},
                 "outcome": outcome.get(r["url"], "kept"), "text_sha256": text_sha.get(r["url"])} for r in records]
    table = summary(records, dropped, len(docs))
    reasons = Counter(d["reason"] for d in dropped)
    manifest = {
        **ownership(COMMAND),
        "kind": "shard",
        "snapshot": name,
        "shard": {"index": o.shard_index, "count": o.num_shards, "partition": "sha256(host) mod count"},
        "started_at": started,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "request": request,
        "options": {"fetch": asdict(o.fetch), "quality": asdict(o.quality), "workers": o.workers,
                    "max_urls": o.max_urls, "ngram": o.ngram, "near_dup_threshold": o.near_dup_threshold},
        "counts": {"urls": len(records), "kept": len(docs), "dropped": len(dropped),
                   "dropped_by_reason": dict(sorted(reasons.items())), "summary": dict(table)},
        "filters": {r: reasons.get(r, 0) for r in FILTER_ORDER},
        "decontamination": {"ngram": o.ngram, "eval_sets": eval_rows},
        "corpus": {"snapshots": corpus_names, "documents": len(corpus)},
        "urls": url_rows,
    }
    tmp = staging_dir(final)
    write_jsonl(tmp / DOCUMENTS, docs)
    write_jsonl(tmp / DROPPED, dropped)
    manifest["files"] = {DOCUMENTS: _file_sha256(tmp / DOCUMENTS), DROPPED: _file_sha256(tmp / DROPPED)}
    atomic_write_json(tmp / MANIFEST, manifest)
    publish_dir(tmp, final)
    journal.close(remove=True)
    return IngestResult(final, manifest, table)

