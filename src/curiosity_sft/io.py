"""Output folders and atomic file writes.

Every output is written to a temporary name and renamed, so a crash, Ctrl-C or full disk leaves
either the old file or the new one, never a half-written file that looks complete.

Every folder a command writes carries a ``manifest.json`` whose ``written_by`` names the command.
That is how a later run tells its own earlier output (which ``--overwrite`` may replace) from a
user's folder (which is never replaced or emptied, whatever the flags): ``check_output_dir`` is
called before any work starts, so a refused output costs nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from curiosity_sft.errors import UserError

MANIFEST = "manifest.json"
PROGRAM = "curiosity-sft"


@contextmanager
def atomic_open(path: str | Path) -> Iterator[IO[str]]:
    """Open a text file for writing that only appears under its name once fully written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def staging_dir(final_dir: Path) -> Path:
    """A temporary sibling of ``final_dir`` to write into before ``publish_dir``.

    ``mkdtemp`` creates it 0700; it gets the permissions any folder the user creates gets
    (0777 minus the umask), so the published output is readable by the user's group as usual.
    """
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final_dir.parent, prefix=f".{final_dir.name}."))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


def publish_dir(tmp_dir: Path, final_dir: Path) -> None:
    """Move a fully written temporary folder into place, replacing any previous one.

    Callers own ``final_dir``: either it does not exist, or ``check_output_dir`` (or the caller's
    own bookkeeping, for folders inside a run) established that this program wrote it.
    """
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    old = final_dir.with_name(f".{final_dir.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final_dir.exists():
        os.replace(final_dir, old)
    os.replace(tmp_dir, final_dir)
    if old.exists():
        shutil.rmtree(old)


def ownership(command: str) -> dict[str, Any]:
    """The ``written_by`` entry of a manifest: put it in every manifest a command writes."""
    from curiosity_sft import __version__

    return {"written_by": {"program": PROGRAM, "command": command, "version": __version__}}


def written_by(folder: str | Path) -> str | None:
    """The command that wrote ``folder`` (from its manifest), or None when no command of ours did."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    owner = manifest.get("written_by") if isinstance(manifest, dict) else None
    if isinstance(owner, dict) and owner.get("program") == PROGRAM and isinstance(owner.get("command"), str):
        return owner["command"]
    return None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output_dir(output: str | Path, command: str, *, overwrite: bool = False,
                     inputs: Sequence[str | Path] = ()) -> Path:
    """Refuse, before any work, an output folder this command may not fill or replace.

    Allowed: a folder that does not exist yet, an empty folder, and (with ``overwrite``) this
    command's own earlier output. Everything else stops with one line and nothing is touched: a
    file, the current folder or one of its parents, a folder holding one of the ``inputs``, a
    folder of the user's, another command's output. Returns the resolved path.
    """
    out = Path(output).expanduser().resolve()
    flag = "--output"
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} names a file, not a folder", where=output, fix="pass a folder path")
    if _inside(Path.cwd().resolve(), out):
        raise UserError(f"{flag} is the current folder or one of its parents", where=output,
                        fix="pass a new folder, e.g. --output out/")
    for inp in inputs:
        if _inside(Path(inp).expanduser().resolve(), out):
            raise UserError(f"the input {inp} is inside the output folder", where=output,
                            fix="choose an output folder outside the input")
    if not out.is_dir() or not any(out.iterdir()):
        return out
    owner = written_by(out)
    if owner == command:
        if overwrite:
            return out
        raise UserError(f"this folder holds an earlier `{command}` output", where=output,
                        fix="pass --overwrite to replace it, or choose another --output")
    if owner is not None:
        raise UserError(f"this folder holds a `{owner}` output, not a `{command}` one", where=output,
                        fix="choose another --output")
    raise UserError(f"this folder is not empty and was not written by `{PROGRAM} {command}`", where=output,
                    fix="choose a new or empty folder; nothing in it was changed")
