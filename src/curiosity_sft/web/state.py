"""What survives between and during ingests: extractions by content hash, and the journal of a run.

- ``ContentStore``: trafilatura's result for each response body, keyed by the body's sha256 and
  written atomically, so a page whose bytes did not change (or that answered 304) is never
  extracted again, whichever ingest or shard fetched it first.
- ``Journal``: one JSON line per finished URL of the ingest in progress, flushed and fsynced
  before the next URL is counted done. A killed ingest re-run with the same arguments reads it
  and fetches only what is missing. The journal lives under ``.work/`` and is removed once the
  snapshot is published; a lock file keeps two processes off the same journal.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from curiosity_sft.errors import UserError
from curiosity_sft.io import atomic_write_json


class ContentStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, sha: str) -> Path:
        return self.folder / sha[:2] / f"{sha}.json"

    def get(self, sha: str | None) -> dict[str, Any] | None:
        if not sha:
            return None
        try:
            return json.loads(self._path(sha).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def put(self, sha: str, value: dict[str, Any]) -> None:
        """Write atomically under a unique temporary name: two workers may store the same body at once."""
        path = self._path(sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(value, f, ensure_ascii=False)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


class Journal:
    """Append-only record of finished URLs; ``done`` maps URL -> its record."""

    def __init__(self, folder: Path, request: dict[str, Any]) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._lock_file: IO[str] = open(folder / "lock", "w")  # noqa: SIM115 - held for the run
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise UserError("another `web ingest` is running on this snapshot and shard", where=folder,
                            fix="wait for it to finish, or pass another --snapshot") from None
        req = folder / "request.json"
        if not req.exists():
            atomic_write_json(req, request)
        self.done: dict[str, dict[str, Any]] = {}
        path = folder / "journal.jsonl"
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:  # the line being written when the process was killed
                    continue
                self.done[rec["url"]] = rec
        self._out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - appended to until close
        self._write = threading.Lock()

    def add(self, rec: dict[str, Any]) -> None:
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        with self._write:
            self._out.write(line)
            self._out.flush()
            os.fsync(self._out.fileno())
            self.done[rec["url"]] = rec

    def close(self, remove: bool = False) -> None:
        self._out.close()
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)
            for parent in (self.folder.parent, self.folder.parent.parent):  # <name>/, then .work/
                if parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()
        self._lock_file.close()


def find_unfinished(work: Path, shard: str, request: dict[str, Any]) -> str | None:
    """The snapshot name of an interrupted ingest of the same request and shard, if there is one."""
    if not work.is_dir():
        return None
    for folder in sorted(work.iterdir(), reverse=True):
        req = folder / shard / "request.json"
        try:
            if json.loads(req.read_text(encoding="utf-8")) == request:
                return folder.name
        except (OSError, ValueError):
            continue
    return None
