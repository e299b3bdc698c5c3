"""SIGTERM and Ctrl-C (SIGINT) at any moment, on every launcher: the run stops at a step boundary
with a checkpoint whose data position matches its weights, exits 0 saying how to resume, and the
resumed run equals the uninterrupted one on every later step (defect 2). The 2-process runs use
data whose steps are short under accumulation 2 (defect 1): FSDP2 and ZeRO-3 must finish them and
equal one process.

The moment is chosen either exactly (a wrapper sends the signal as validation, a checkpoint save
or a step starts) or at random (from outside, after a random delay once training
runs; the seed and delay are printed).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from test_distributed import needs_deepspeed, process_env, train_cmd

from conftest import ROOT
from curiosity_sft.cli import main
from curiosity_sft.config import save_config
from curiosity_sft.training import loop as loop_mod
from curiosity_sft.training.checkpoint import list_checkpoints
from curiosity_sft.training.loop import Recipe, train
from curiosity_sft.training.step import StepRunner
from tiny_run import signal_on_call, tiny_config, write_data

LORA = {"peft_enable": True, "lora_r": 4, "lora_dropout": 0.1}  # dropout: every later loss depends on the RNG


def history(out):
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return ({r["step"]: r["loss"] for r in rows if "loss" in r},
            {r["step"]: r["eval_loss"] for r in rows if "eval_loss" in r})


def assert_same_after(ref, run, after, rel):
    (a, ea), (b, eb) = history(ref), history(run)
    later = [s for s in sorted(a) if s > after]
    assert later and sorted(b) == sorted(a), (sorted(a), sorted(b))
    worst = max(abs(a[s] - b[s]) / a[s] for s in sorted(a))
    print(f"after a stop at step {after}: worst relative loss difference over steps 1-{max(a)}: {worst!r}")
    assert [b[s] for s in later] == pytest.approx([a[s] for s in later], rel=rel)
    assert [eb[s] for s in sorted(ea)] == pytest.approx([ea[s] for s in sorted(ea)], rel=rel)


# ---------------------------------------------------------------- one process, chosen moments

@pytest.fixture(scope="module")
def one(tmp_path_factory):
    folder = tmp_path_factory.mktemp("one")
    data = write_data(folder / "data", n_train=24, n_val=4)
    cfg = tiny_config(*data, max_steps=8, save_steps=3, eval_steps=2, save_total_limit=None, **LORA)
    train(cfg, folder / "ref", show_progress=False)
    return cfg, folder / "ref"


MOMENTS = {  # (owner, attribute, nth call): the step whose boundary the run stops at
    "validation": ((loop_mod, "validation_loss", 2), 4),  # validations at steps 2, 4, ...
    "saving": ((Recipe, "save", 1), 3),  # the step-3 checkpoint: saved once, not again
    "step": ((StepRunner, "run", 7), 7),  # in step 7's forward and backward passes
}


@pytest.mark.slow
@pytest.mark.parametrize("sig, moment", [(signal.SIGTERM, "validation"), (signal.SIGINT, "saving"),
                                         (signal.SIGTERM, "step")])
def test_a_signal_stops_at_the_step_boundary_and_the_resume_is_exact(one, tmp_path, monkeypatch, capsys, sig, moment):
    cfg, ref = one
    (owner, attr, nth), stop = MOMENTS[moment]
    save_config(cfg, tmp_path / "cfg.yaml")
    run = tmp_path / "run"
    args = ["train", "--config", str(tmp_path / "cfg.yaml"), "--output", str(run)]
    with monkeypatch.context() as m:
        signal_on_call(m, owner, attr, nth, sig)
        saves = signal_on_call(m, Recipe, "save", 0, sig)  # counts checkpoints (never signals)
        assert main(args) == 0
    err = capsys.readouterr().err
    assert f"stopped by {signal.Signals(sig).name} after step {stop}: saved {run / f'checkpoint-{stop}'}" in err
    assert "run the same command with --resume_from_checkpoint latest" in err
    assert list_checkpoints(run)[-1].name == f"checkpoint-{stop}"
    assert saves["n"] == len(list_checkpoints(run))  # a checkpoint saved at the stop step is not saved twice
    state = json.loads((list_checkpoints(run)[-1] / "trainer_state.json").read_text())
    assert state["step"] == stop and json.loads((run / "manifest.json").read_text())["status"] == "running"
    assert main([*args, "--resume_from_checkpoint", "latest"]) == 0
    assert_same_after(ref, run, stop, rel=1e-7)  # bit-identical on CPU


@pytest.mark.slow
def test_ctrl_c_at_a_random_moment_of_a_launched_run(one, tmp_path):
    cfg, ref = one
    save_config(cfg, tmp_path / "cfg.yaml")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "curiosity_sft", "train", "--config", str(tmp_path / "cfg.yaml"), "--output", str(run)]
    seed = random.randrange(1 << 30)
    env = {k: v for k, v in process_env().items() if k != "OMP_NUM_THREADS"}  # the reference's thread count
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    delay = random_moment(p, run, seed, steps_left=7)
    print(f"random moment: seed {seed}, SIGINT {delay:.2f} s after the first step")
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    if "stopped by SIGINT" not in err:
        pytest.skip(f"the run finished within {delay:.2f} s: nothing to interrupt (seed {seed})")
    stop = json.loads((list_checkpoints(run)[-1] / "trainer_state.json").read_text())["step"]
    subprocess.run([*cmd, "--resume_from_checkpoint", "latest"], check=True, capture_output=True, timeout=300, env=env)
    assert_same_after(ref, run, stop, rel=1e-7)


def random_moment(p, run, seed, steps_left):
    """Wait for the first step's metrics line, then a random share of the time the remaining steps
    should take (from the first step's duration): a moment anywhere in training, validation or a save."""
    while not (run / "metrics.jsonl").is_file() and p.poll() is None:
        time.sleep(0.01)
    first = (run / "metrics.jsonl").read_text().splitlines() if p.poll() is None else []
    step_seconds = json.loads(first[0])["window_seconds"] if first else 0.0
    delay = random.Random(seed).uniform(0.0, 0.8 * steps_left * step_seconds)
    time.sleep(delay)
    return delay


def test_a_signal_before_training_starts_stops_at_once_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    data = write_data(tmp_path / "data", n_train=8, n_val=2)
    cfg = tiny_config(*data, max_steps=2)
    save_config(cfg, tmp_path / "cfg.yaml")
    signal_on_call(monkeypatch, loop_mod, "build_model", 1, signal.SIGTERM)  # while the weights load
    code = main(["train", "--config", str(tmp_path / "cfg.yaml"), "--output", str(tmp_path / "run")])
    assert code == 128 + signal.SIGTERM
    assert "stopped by SIGTERM before training started" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- two processes, short steps

@pytest.fixture(scope="module")
def short(tmp_path_factory):
    """21 examples, unpacked, global batch 8: each epoch's steps hold 8, 8 and 5 rows, and the 5-row
    step's micro-batches of 2, 2 and 1 rows give the 2 processes 2 and 1 forwards (padded to 2).
    The reference is one process with accumulation 4, uninterrupted."""
    folder = tmp_path_factory.mktemp("short")
    data = write_data(folder / "data", n_train=21, n_val=6)
    sets = ["packing=false", "epochs=2", "eval_steps=2", "save_steps=2", "save_total_limit=null"]
    cfg = tiny_config(*data, packing=False, epochs=2, max_steps=None, eval_steps=2, save_steps=2,
                      save_total_limit=None, gradient_accumulation_steps=4)
    train(cfg, folder / "ref", show_progress=False)
    assert sorted(history(folder / "ref")[0]) == [1, 2, 3, 4, 5, 6]
    return data[0].parent, folder / "ref", sets


def launch_two(prepared, out, sets, how, env=(), extra=(), wait=None):
    """2 processes through the signal driver: accelerate launch with a shipped config, or torchrun (DDP)."""
    cmd = train_cmd(prepared, out, [*sets, "gradient_accumulation_steps=2"], nproc=2, extra=extra,
                    accelerate_config=None if how == "ddp" else f"{how}.yaml")
    at = cmd.index("curiosity_sft")
    cmd[at - 1:at + 1] = [str(ROOT / "tests" / "signal_driver.py")]  # the driver instead of `-m curiosity_sft`
    log_file = out.parent / f"{out.name}-{len(list(out.parent.glob(out.name + '-*.log')))}.log"
    with open(log_file, "w") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, text=True,
                             env=process_env({"PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'tests'}", **dict(env)}))
        if wait is not None:
            wait(p)
        p.wait(timeout=400)
    return p.returncode, log_file.read_text()


@pytest.mark.slow
def test_fsdp2_short_steps_finish_equal_one_process_and_sigterm_in_validation_on_one_rank_stops_both(short, tmp_path):
    prepared, ref, sets = short
    run, pids = tmp_path / "run", tmp_path / "pids"
    pids.mkdir()
    env = {"SIGNAL_AT": "validation_loss:1:SIGTERM:1", "PID_DIR": str(pids)}  # rank 1 only, at step 2's validation
    code, log = launch_two(prepared, run, sets, "fsdp", env=env)
    assert code == 0, log[-6000:]
    assert "stopped by a signal on another process after step 2" in log  # rank 0 got none: the ranks agreed
    assert [c.name for c in list_checkpoints(run)] == ["checkpoint-2"]
    # fsdp.yaml's cpu_ram_efficient_loading: rank 1 built its model without weights; rank 0 sent the shards
    assert (pids / "meta0").read_text() == "False" and (pids / "meta1").read_text() == "True"
    code, log = launch_two(prepared, run, sets, "fsdp", extra=["--resume_from_checkpoint", "latest"])
    assert code == 0, log[-6000:]  # before the fix the 5-row steps hung (rank 1 waited in a forward's all-gather)
    assert "data parallelism: FSDP2 full shard over 2 processes" in log
    assert_same_after(ref, run, 2, rel=1e-5)


@pytest.mark.slow
@needs_deepspeed
def test_zero3_short_steps_finish_equal_one_process_and_ctrl_c_while_saving(short, tmp_path):
    prepared, ref, sets = short
    run = tmp_path / "run"
    code, log = launch_two(prepared, run, sets, "deepspeed_zero3", env={"SIGNAL_AT": "save:2:SIGINT:0"})
    assert code == 0, log[-6000:]
    assert "stopped by SIGINT after step 4" in log  # the step-4 checkpoint, saved once
    assert [c.name for c in list_checkpoints(run)] == ["checkpoint-2", "checkpoint-4"]
    code, log = launch_two(prepared, run, sets, "deepspeed_zero3", extra=["--resume_from_checkpoint", "latest"])
    assert code == 0, log[-6000:]
    assert "data parallelism: DeepSpeed ZeRO-3 over 2 processes" in log
    assert_same_after(ref, run, 4, rel=1e-5)


@pytest.mark.slow
def test_ddp_sigterm_to_the_launcher_at_a_random_moment(short, tmp_path):
    """What Slurm and Kubernetes do: SIGTERM to the launcher, which passes it on to every worker."""
    prepared, ref, sets = short
    run = tmp_path / "run"
    seed = random.randrange(1 << 30)
    moment = {}

    def later(p):
        moment["delay"] = random_moment(p, run, seed, steps_left=5)
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)

    _, log = launch_two(prepared, run, sets, "ddp", wait=later)
    delay = moment["delay"]
    print(f"random moment: seed {seed}, SIGTERM to torchrun {delay:.2f} s after the first step")
    if "stopped by SIGTERM" not in log:
        assert json.loads((run / "manifest.json").read_text())["status"] == "finished", log[-6000:]
        pytest.skip(f"the run finished within {delay:.2f} s: nothing to interrupt (seed {seed})")
    stop = json.loads((list_checkpoints(run)[-1] / "trainer_state.json").read_text())["step"]
    assert f"after step {stop}" in log
    code, log = launch_two(prepared, run, sets, "ddp", extra=["--resume_from_checkpoint", "latest"])
    assert code == 0, log[-6000:]
    assert_same_after(ref, run, stop, rel=1e-5)


def test_repeated_signals_force_an_unsaved_stop(monkeypatch):
    from curiosity_sft.training.signals import Interrupted, StopSignals

    with StopSignals() as s:
        s.start_training()
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C under a launcher arrives twice: terminal and launcher
        os.kill(os.getpid(), signal.SIGINT)
        assert s.requested and s.received == "SIGINT"
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
