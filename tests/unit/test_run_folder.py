"""The run folder: refused or claimed before any work, old runs replaced only with --overwrite, and
nothing left behind by a run that never trained (defects 3 and 10)."""

from __future__ import annotations

import json
import signal

import pytest

from curiosity_sft.cli import main
from curiosity_sft.config import save_config
from curiosity_sft.errors import UserError
from curiosity_sft.io import written_by
from curiosity_sft.training import step as step_mod
from curiosity_sft.training.checkpoint import list_checkpoints
from curiosity_sft.training.loop import train
from curiosity_sft.training.step import StepRunner
from tiny_run import signal_on_call, tiny_config, write_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("data"), n_train=16, n_val=2)


def cli_train(cfg, tmp_path, out, *extra):
    save_config(cfg, tmp_path / "cfg.yaml")
    return main(["train", "--config", str(tmp_path / "cfg.yaml"), "--output", str(out), *extra])


def steps(out):
    return [r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.mark.slow
def test_overwrite_of_an_interrupted_run_removes_only_its_own_old_outputs(data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    # An interrupted earlier run: SIGTERM during step 9, so it stops after step 9 with checkpoints 6 and 9
    # (save_total_limit 2) and its manifest still says "running".
    cfg = tiny_config(*data, val_file=None, max_steps=12, save_steps=3, save_total_limit=2)
    with monkeypatch.context() as m:
        signal_on_call(m, StepRunner, "run", 9, signal.SIGTERM)  # as step 9 starts
        r = train(cfg, out, show_progress=False)
    assert r.stopped_by == "SIGTERM" and r.steps == 9
    assert [c.name for c in list_checkpoints(out)] == ["checkpoint-6", "checkpoint-9"]
    assert written_by(out) == "train" and json.loads((out / "manifest.json").read_text())["status"] == "running"
    (out / "notes.txt").write_text("mine")

    new = tiny_config(*data, val_file=None, max_steps=4, save_steps=2, save_total_limit=2)
    capsys.readouterr()
    assert cli_train(new, tmp_path, out) == 2
    err = capsys.readouterr().err.strip()
    assert "interrupted run of `curiosity-sft train` (checkpoint-9)" in err and len(err.splitlines()) == 1
    assert "--resume_from_checkpoint latest" in err and "--overwrite" in err

    assert cli_train(new, tmp_path, out, "--overwrite") == 0
    # Before the fix the old checkpoints stayed: pruning kept 6 and 9 (the highest numbers), deleting the new
    # run's, and `latest` resumed the old run.
    assert [c.name for c in list_checkpoints(out)] == ["checkpoint-2", "checkpoint-4"]
    assert steps(out) == [1, 2, 3, 4]
    assert (out / "notes.txt").read_text() == "mine"  # never delete a file we did not write
    assert json.loads((out / "manifest.json").read_text())["status"] == "finished"


def test_a_finished_run_is_refused_without_overwrite_and_a_foreign_folder_always(data, tmp_path, capsys):
    out = tmp_path / "done"
    cfg = tiny_config(*data, val_file=None, max_steps=1)
    assert cli_train(cfg, tmp_path, out) == 0
    assert cli_train(cfg, tmp_path, out) == 2
    assert "finished run" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    for extra in ((), ("--overwrite",)):
        assert cli_train(cfg, tmp_path, foreign, *extra) == 2
        assert "not empty and was not written by" in capsys.readouterr().err
    assert [p.name for p in foreign.iterdir()] == ["thesis.tex"]


def test_a_run_that_fails_on_bad_input_leaves_nothing_behind(data, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    new = tmp_path / "new"
    assert cli_train(tiny_config(bad, None, max_steps=1), tmp_path, new) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not new.exists()  # before the fix: a new folder holding only .lock
    # every example too long: also found after the folder was claimed
    assert cli_train(tiny_config(*data, max_steps=1, max_length=16), tmp_path, new) == 2
    assert "longer than max_length" in capsys.readouterr().err and not new.exists()
    # a folder the user made beforehand stays, as it was
    mine = tmp_path / "mine"
    mine.mkdir()
    assert cli_train(tiny_config(*data, max_steps=1, max_length=16), tmp_path, mine) == 2
    assert mine.is_dir() and not any(mine.iterdir())


def test_a_folder_of_ours_that_never_saved_and_a_stale_lock_are_reused(data, tmp_path, monkeypatch):
    out = tmp_path / "early"
    cfg = tiny_config(*data, val_file=None, max_steps=3, save_steps=100, max_nonfinite_steps=1)
    real = step_mod.sum_token_loss
    with monkeypatch.context() as m:  # step 1 trains, step 2 diverges: the run stops before any checkpoint
        m.setattr(step_mod, "sum_token_loss", lambda model, b, n=[0]: (lambda s, k: (
            s * float("nan") if (n.__setitem__(0, n[0] + 1) or n[0]) > 2 else s, k))(*real(model, b)))
        with pytest.raises(UserError, match="non-finite"):
            train(cfg, out, show_progress=False)
    assert written_by(out) == "train" and not list_checkpoints(out)
    assert train(cfg, out, show_progress=False).steps == 3  # nothing to lose: no --overwrite needed
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / ".lock").write_text("123")  # what a failed run of an older version left
    assert train(cfg, stale, show_progress=False).steps == 3


def test_a_folder_of_ours_is_reused_only_under_the_guards_every_command_has(data, tmp_path, capsys):
    """io.check_output_dir's guards hold for train's own folders too: before, a folder of ours that
    never saved skipped them, so a run could start in a folder holding its own train file."""
    import shutil

    from curiosity_sft.io import MANIFEST, atomic_write_json, ownership

    out = tmp_path / "ours"
    out.mkdir()
    atomic_write_json(out / MANIFEST, {**ownership("train"), "status": "running"})  # killed before any checkpoint
    inside = shutil.copy(data[0], out / "train.jsonl")
    assert cli_train(tiny_config(inside, None, max_steps=1), tmp_path, out) == 2
    assert "is inside the output folder" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "train.jsonl"]  # nothing touched
