"""Output folders: only a command's own earlier output may be replaced; nothing else is touched."""

from __future__ import annotations

import json
import os
import stat

import pytest

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


def _ours(folder, command="prepare"):
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / MANIFEST, {**ownership(command), "counts": {}})


def test_new_and_empty_folders_are_accepted(tmp_path):
    assert check_output_dir(tmp_path / "new", "prepare") == (tmp_path / "new").resolve()
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty", "prepare")


def test_a_foreign_file_in_the_folder_is_refused_even_with_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(UserError, match="not empty and was not written by"):
            check_output_dir(out, "prepare", overwrite=overwrite)
    assert (out / "notes.txt").read_text() == "mine"


def test_own_output_needs_overwrite_and_another_commands_output_is_refused(tmp_path):
    out = tmp_path / "out"
    _ours(out, "prepare")
    assert written_by(out) == "prepare"
    with pytest.raises(UserError, match="--overwrite"):
        check_output_dir(out, "prepare")
    check_output_dir(out, "prepare", overwrite=True)
    with pytest.raises(UserError, match="holds a `prepare` output, not a `evaluate` one"):
        check_output_dir(out, "evaluate", overwrite=True)


def test_a_manifest_of_someone_else_is_not_ours(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST).write_text(json.dumps({"written_by": {"program": "other-tool", "command": "prepare"}}))
    assert written_by(out) is None
    (out / MANIFEST).write_text("not json")
    assert written_by(out) is None
    with pytest.raises(UserError, match="not empty"):
        check_output_dir(out, "prepare", overwrite=True)


def test_a_file_the_current_folder_and_an_input_inside_are_refused(tmp_path, monkeypatch):
    f = tmp_path / "file.jsonl"
    f.write_text("{}\n")
    with pytest.raises(UserError, match="names a file"):
        check_output_dir(f, "prepare")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for bad in (".", "..", str(work)):
        with pytest.raises(UserError, match="current folder"):
            check_output_dir(bad, "prepare")
    out = tmp_path / "out"
    _ours(out)
    (out / "raw").mkdir()
    with pytest.raises(UserError, match="inside the output folder"):
        check_output_dir(out, "prepare", overwrite=True, inputs=[out / "raw"])
    with pytest.raises(UserError, match="inside the output folder"):
        check_output_dir(out, "prepare", overwrite=True, inputs=[out])


def test_staging_folders_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        tmp = staging_dir(tmp_path / "out")
        (tmp / "a.txt").write_text("x")
        publish_dir(tmp, tmp_path / "out")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "out").stat().st_mode)
    assert mode == 0o755, oct(mode)
