"""A ``web ingest`` snapshot as a ``prepare`` source: each page cut into passages, like a book.

The folder may be the ingest's ``--output`` (every complete snapshot, the newest version of each
URL) or one snapshot folder; several shards are merged as one shard would have been (``web.snapshot.merge``). A page
is split between paragraphs into passages that fit ``passage_tokens`` of the training tokenizer
(the book reader's own functions), so pages longer than ``max_length`` are used whole instead of
being dropped as too long. Each passage is a text example (loss on every token) keeping the URL,
title, date and snapshot as provenance; difficulty is its Flesch-Kincaid grade, as for books.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from curiosity_sft.data.schema import Example, stable_id
from curiosity_sft.data.sources.books import _count, passages, readability, split_long
from curiosity_sft.data.sources.options import SourceOptions

MIN_WORDS = 20  # a passage shorter than this is a heading or a caption, not text to learn from


def read(path: Path, opts: SourceOptions) -> Iterator[Example]:
    from curiosity_sft.web.snapshot import merge

    merged = merge(path)
    source = opts.source_name or "web"
    for doc in merged.documents:
        paras = [p.strip() for p in doc["text"].split("\n") if p.strip()]
        pieces = [s for p, n in zip(paras, _count(paras, opts), strict=True) for s in split_long(p, n, opts.passage_tokens)]
        for k, run in enumerate(passages(pieces, _count(pieces, opts), opts.passage_tokens)):
            text = "\n\n".join(run)
            if len(text.split()) < MIN_WORDS:
                continue
            meta = {"url": doc["url"], "title": doc.get("title"), "date": doc.get("date"),
                    "snapshot": doc["snapshot"], "passage": k, "kind": "web_passage"}
            yield Example(id=stable_id(source, doc["url"], text), source=source, text=text,
                          difficulty=readability(text), meta=meta)


def sha256(path: Path) -> str:
    """The snapshot's hash, from its shards' published file hashes (what the manifest records)."""
    from curiosity_sft.web.snapshot import snapshot_sha256

    return snapshot_sha256(path)


def is_web_folder(path: Path) -> bool:
    """A ``web ingest`` output, one of its snapshots, or a snapshot shard."""
    from curiosity_sft.web.snapshot import is_web_folder as check

    return check(path)


def roots_under(path: Path) -> list[Path]:
    """Web-ingest folders inside ``path``: each is one input, none of their files is read as data."""
    from curiosity_sft.web.snapshot import roots_under as find

    return find(path)
