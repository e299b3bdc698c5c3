"""The on-disk layout of a web-ingest folder, and reading it back (merging shards).

```
data/web/                                  --output: written once, marked by manifest.json
  manifest.json                            written_by web-ingest, layout version
  snapshots/<name>/shard-00000-of-00001/   one per ingest and shard, immutable once published
    manifest.json                          URLs (fetch time, HTTP status, validators, hashes, outcome),
                                           counts per filter, options, corpus and eval sets used
    documents.jsonl                        kept pages: id, url, final_url, title, date, text, ...
    dropped.jsonl                          every other URL with its reason (and detail)
  cache/extracted/<h[:2]>/<h>.json         trafilatura's result per body sha256 (never re-extracted)
  .work/<name>/shard-.../journal.jsonl     an ingest in progress (resumed after a crash), then removed
```

A snapshot is complete when all its shards are published, and holds every URL of its crawl.
Reading a root reads every complete snapshot, the newest version of each URL winning (so a
page kept in March and gone in April is gone). A snapshot's documents are the union of its
shards' documents; with several shards, near duplicates *between* shards are found here, at
merge time, by the same greedy MinHash pass (``data.filters.near_duplicates``) over the same
pages in the same order (sorted by URL, after the same corpus) that one shard would have made:
each shard keeps the text of the pages it dropped as near duplicates, so the merge can redo the
pass over exactly the pages a single shard would have seen. Every other filter judges a page on
its own, so it gives the same answer in any shard.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curiosity_sft.data.filters import near_duplicates
from curiosity_sft.data.schema import Example, iter_jsonl
from curiosity_sft.errors import DataError
from curiosity_sft.io import MANIFEST, atomic_write_json, ownership, written_by

COMMAND = "web-ingest"
LAYOUT = 1
SHARD = re.compile(r"^shard-(\d{5})-of-(\d{5})$")
SNAPSHOTS, CACHE, WORK = "snapshots", "cache", ".work"
DOCUMENTS, DROPPED = "documents.jsonl", "dropped.jsonl"


def shard_name(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}"


def shard_of(host: str, count: int) -> int:
    """The shard a host belongs to: a stable hash (not ``hash()``, which is salted per process)."""
    return int(hashlib.sha256(host.lower().encode()).hexdigest()[:16], 16) % count


def read_manifest(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"unreadable web snapshot manifest ({e})", where=folder / MANIFEST) from None


def is_root(folder: Path) -> bool:
    return written_by(folder) == COMMAND and read_manifest(folder).get("kind") == "root"


def init_root(root: Path) -> None:
    """Mark ``root`` as a web-ingest folder (written once; identical if two shards race to write it)."""
    if not (root / MANIFEST).exists():
        atomic_write_json(root / MANIFEST, {**ownership(COMMAND), "kind": "root", "layout": LAYOUT})
    (root / SNAPSHOTS).mkdir(parents=True, exist_ok=True)


def is_web_folder(path: Path) -> bool:
    """A web-ingest root, one of its snapshots, or one shard of a snapshot."""
    if not path.is_dir():
        return False
    if written_by(path) == COMMAND:
        return True
    return any(SHARD.match(p.name) and written_by(p) == COMMAND for p in path.iterdir() if p.is_dir())


@dataclass
class Snapshot:
    """One snapshot: its name, its published shard folders, and how many shards it should have."""

    root: Path
    name: str
    shards: list[Path]
    count: int
    finished_at: str = ""

    @property
    def complete(self) -> bool:
        return len(self.shards) == self.count


def list_snapshots(root: Path) -> list[Snapshot]:
    """Every snapshot under ``root``, oldest first (by when its last shard finished)."""
    out = []
    base = root / SNAPSHOTS
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) if base.is_dir() else []:
        shards = sorted(p for p in folder.iterdir() if SHARD.match(p.name) and (p / MANIFEST).is_file())
        if not shards:
            continue
        manifests = [read_manifest(p) for p in shards]
        counts = {m["shard"]["count"] for m in manifests}
        if len(counts) > 1:
            raise DataError(f"snapshot `{folder.name}` mixes shard counts {sorted(counts)}", where=folder,
                            fix="every shard of one --snapshot needs the same --num-shards")
        out.append(Snapshot(root, folder.name, shards, counts.pop(), max(m["finished_at"] for m in manifests)))
    return sorted(out, key=lambda s: (s.finished_at, s.name))


def snapshots_of(path: Path) -> list[Snapshot]:
    """The snapshots a path stands for, oldest first: a root's complete ones, or the one named.

    A snapshot folder must be complete; a shard folder stands for its snapshot only when it is
    the snapshot's only shard."""
    path = path.resolve()
    if is_root(path):
        complete = [s for s in list_snapshots(path) if s.complete]
        if not complete:
            raise DataError("no complete snapshot in this web-ingest folder", where=path,
                            fix="run `curiosity-sft web ingest` (every shard) first")
        return complete
    if SHARD.match(path.name) and written_by(path) == COMMAND:
        m = read_manifest(path)
        if m["shard"]["count"] != 1:
            raise DataError(f"this is one shard of {m['shard']['count']}", where=path,
                            fix=f"pass the snapshot folder {path.parent} so all shards are merged")
        path = path.parent
    root = path.parents[1]
    found = [s for s in list_snapshots(root) if s.name == path.name] if is_root(root) else []
    if not found:
        raise DataError("not a web-ingest folder or snapshot", where=path, fix="pass the --output of `web ingest`")
    snap = found[0]
    if not snap.complete:
        have = {int(SHARD.match(p.name).group(1)) for p in snap.shards}
        missing = sorted(set(range(snap.count)) - have)
        raise DataError(f"snapshot is incomplete: shard(s) {missing[:5]} of {snap.count} missing", where=path,
                        fix="run the missing `web ingest --shard-index` tasks, or pass the root for the complete ones")
    return [snap]


def read_records(path: Path) -> list[dict[str, Any]]:
    return [rec for _, rec in iter_jsonl(path)] if path.stat().st_size else []


def latest_by_url(snapshots: Iterable[Snapshot], file: str, exclude: set[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """URL -> its record in the newest of ``snapshots`` that has one (documents or manifest URLs)."""
    out: dict[str, dict[str, Any]] = {}
    for snap in snapshots:  # oldest first: newer ones overwrite
        for shard in snap.shards:
            recs = read_manifest(shard)["urls"] if file == MANIFEST else read_records(shard / file)
            for rec in recs:
                if rec["url"] not in exclude:
                    out[rec["url"]] = rec
    return out


def as_example(doc: dict[str, Any]) -> Example:
    """A page as prepare's filters see it: one text example, id from its URL."""
    return Example(id=doc["id"], source="web", text=doc["text"])


def near_duplicate_pass(corpus: list[dict[str, Any]], pages: list[dict[str, Any]],
                        threshold: float) -> dict[str, str]:
    """URL -> URL of the earlier page (or corpus document) it nearly repeats, for ``pages``.

    Corpus first, then pages sorted by URL, through prepare's ``near_duplicates``: the result is
    a function of the set of pages, whatever shard or order they were fetched in.
    """
    pages = sorted(pages, key=lambda d: d["url"])
    docs = [*sorted(corpus, key=lambda d: d["url"]), *pages]
    by_id = {d["id"]: d["url"] for d in docs}
    verdicts = near_duplicates([as_example(d) for d in docs], threshold)
    return {docs[i]["url"]: by_id.get(v.detail, v.detail) for i, v in verdicts.items() if i >= len(corpus)}


@dataclass
class Merged:
    """Snapshots read back: documents (sorted by URL) and everything dropped, with reasons."""

    snapshots: list[str]
    documents: list[dict[str, Any]]
    dropped: list[dict[str, Any]]
    manifests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return files_sha256(self.manifests)


def files_sha256(manifests: Iterable[dict[str, Any]]) -> str:
    """A hash of the shards' published files: what ``prepare`` records for a web input."""
    parts = [f"{m['snapshot']} {m['shard']['index']} {m['files'][DOCUMENTS]} {m['files'][DROPPED]}" for m in manifests]
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()


def snapshot_sha256(path: Path) -> str:
    return files_sha256(read_manifest(p) for s in snapshots_of(path) for p in s.shards)


def roots_under(path: Path) -> list[Path]:
    """Every web-ingest root at or below ``path``."""
    if not path.is_dir():
        return []
    return sorted({m.parent for m in path.rglob(MANIFEST) if is_root(m.parent)})


def corpus_for(root: Path, names: Iterable[str], urls: set[str]) -> list[dict[str, Any]]:
    """The documents of the snapshots ``names`` (newest version of each URL), minus ``urls``.

    ``urls`` are the current crawl's: a page's own earlier version is not a duplicate of it."""
    wanted = set(names)
    earlier = [s for s in list_snapshots(root) if s.name in wanted]
    return list(latest_by_url(earlier, DOCUMENTS, exclude=urls).values())


def merge_snapshot(snap: Snapshot) -> Merged:
    """One complete snapshot, its shards merged as one shard would have been."""
    manifests = [read_manifest(p) for p in snap.shards]
    docs = [d for p in snap.shards for d in read_records(p / DOCUMENTS)]
    dropped = [d for p in snap.shards for d in read_records(p / DROPPED)]
    if snap.count > 1:
        threshold = manifests[0]["options"]["near_dup_threshold"]
        pool = docs + [d for d in dropped if d["reason"] == "near_duplicate"]
        names = sorted({n for m in manifests for n in m["corpus"]["snapshots"]})
        crawl = {u["url"] for m in manifests for u in m["urls"]} | {d["url"] for d in dropped}
        dup = near_duplicate_pass(corpus_for(snap.root, names, crawl), pool, threshold)
        dropped = [d for d in dropped if d["reason"] != "near_duplicate"]
        dropped += [{**d, "reason": "near_duplicate", "detail": dup[d["url"]]} for d in pool if d["url"] in dup]
        docs = [{k: v for k, v in d.items() if k not in ("reason", "detail", "status")} for d in pool
                if d["url"] not in dup]
    docs.sort(key=lambda d: d["url"])
    dropped.sort(key=lambda d: (d["reason"], d["url"]))
    return Merged([snap.name], docs, dropped, manifests)


def merge(path: Path) -> Merged:
    """What a web folder holds: one snapshot (shards merged), or for a root every complete snapshot
    with the newest version of each URL (a URL dropped in a later crawl, e.g. gone 404, is dropped)."""
    parts = [merge_snapshot(s) for s in snapshots_of(path)]
    latest: dict[str, tuple[str, dict[str, Any]]] = {}
    for part in parts:
        name = part.snapshots[0]
        for d in part.dropped:
            latest[d["url"]] = ("dropped", d)
        for d in part.documents:
            latest[d["url"]] = ("doc", {**d, "snapshot": name})
    docs = sorted((d for kind, d in latest.values() if kind == "doc"), key=lambda d: d["url"])
    dropped = sorted((d for kind, d in latest.values() if kind == "dropped"), key=lambda d: (d["reason"], d["url"]))
    return Merged([p.snapshots[0] for p in parts], docs, dropped, [m for p in parts for m in p.manifests])
