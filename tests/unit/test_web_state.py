"""Snapshot bookkeeping: the host partition, the content store under concurrency, shard checks."""

from __future__ import annotations

import json
import threading

import pytest

from curiosity_sft.errors import DataError
from curiosity_sft.io import ownership
from curiosity_sft.web.snapshot import init_root, list_snapshots, merge, shard_name, shard_of
from curiosity_sft.web.state import ContentStore, Journal


def test_host_partition_is_stable_across_processes_and_machines():
    # golden values: sha256 of the host, not Python's salted hash(); recorded when this was written
    assert [shard_of(h, 2) for h in ("127.0.0.1", "127.0.0.2", "127.0.0.3")] == [0, 1, 1]
    assert shard_of("Example.COM", 7) == shard_of("example.com", 7)
    assert shard_name(3, 64) == "shard-00003-of-00064"


def test_content_store_survives_concurrent_writers_of_one_hash(tmp_path):
    store = ContentStore(tmp_path)
    errors = []

    def put():
        try:
            for _ in range(50):
                store.put("ab" * 32, {"text": "same page"})
        except Exception as e:  # noqa: BLE001 - the test reports any failure
            errors.append(e)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and store.get("ab" * 32) == {"text": "same page"}
    assert [p.name for p in (tmp_path / "ab").iterdir()] == ["ab" * 32 + ".json"]  # no temporary left


def test_journal_is_locked_and_skips_a_torn_last_line(tmp_path):
    j = Journal(tmp_path / "w", {"r": 1})
    j.add({"url": "http://a/1"})
    with pytest.raises(Exception, match="another `web ingest`"):
        Journal(tmp_path / "w", {"r": 1})
    j.close()
    with open(tmp_path / "w" / "journal.jsonl", "a") as f:
        f.write('{"url": "http://a/2", "sta')  # killed mid-write
    j2 = Journal(tmp_path / "w", {"r": 1})
    assert list(j2.done) == ["http://a/1"]
    j2.close(remove=True)
    assert not (tmp_path / "w").exists()


def _shard(root, name, index, count):
    folder = root / "snapshots" / name / shard_name(index, count)
    folder.mkdir(parents=True)
    (folder / "documents.jsonl").write_text("")
    (folder / "dropped.jsonl").write_text("")
    (folder / "manifest.json").write_text(json.dumps({
        **ownership("web-ingest"), "kind": "shard", "snapshot": name, "shard": {"index": index, "count": count},
        "finished_at": "2026-01-01T00:00:00+00:00", "urls": [], "corpus": {"snapshots": []},
        "options": {"near_dup_threshold": 0.9}, "files": {"documents.jsonl": "x", "dropped.jsonl": "y"}}))


def test_incomplete_and_inconsistent_snapshots_are_refused(tmp_path):
    init_root(tmp_path)
    _shard(tmp_path, "a", 0, 2)
    with pytest.raises(DataError, match="incomplete"):
        merge(tmp_path / "snapshots" / "a")
    with pytest.raises(DataError, match="no complete snapshot"):
        merge(tmp_path)
    with pytest.raises(DataError, match="one shard of 2"):
        merge(tmp_path / "snapshots" / "a" / shard_name(0, 2))
    _shard(tmp_path, "a", 1, 3)
    with pytest.raises(DataError, match="mixes shard counts"):
        list_snapshots(tmp_path)
