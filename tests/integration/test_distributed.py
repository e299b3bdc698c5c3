"""DDP proven on CPU: 2 gloo processes give the 1-process loss curve; a killed 2-process run resumes on 1."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from curiosity_sft.training.loop import KILL_ENV

BASE = ["model_name=smollm2-135m-instruct", "hidden_dim=64", "num_layers=2", "batch_size=2", "max_length=256",
        "learning_rate=1e-3", "logging_steps=1", "eval_steps=100", "peft_enable=false", "lora_dropout=0.0",
        "device=cpu", "precision=fp32"]  # fp32 on any CPU: the tolerances below are fp32's (tiny_run.py)


def train_cmd(prepared, out, sets, nproc=1, extra=(), accelerate_config=None):
    port = str(29500 + os.getpid() % 1000)
    if accelerate_config:  # accelerate's own launcher, with a shipped config
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                    str(ROOT / "configs" / "accelerate" / accelerate_config), "--num_processes", str(nproc),
                    "--main_process_port", port]
    elif nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", port]
    else:
        launcher = [sys.executable]
    args = [*launcher, "-m", "curiosity_sft", "train", "--output", str(out),
            "--set", f"train_file={prepared / 'train.jsonl'}", "--set", f"val_file={prepared / 'val.jsonl'}"]
    for s in [*BASE, *sets]:
        args += ["--set", s]
    return [*args, *extra]


def process_env(extra=()):
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "300", **dict(extra)}


def run(cmd, env=(), ok=True):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=process_env(env))
    assert (p.returncode == 0) == ok, p.stderr[-12000:]
    return p


def run_two(prepared, out, sets, sharding, extra=(), env=(), ok=True):
    """2 processes: DeepSpeed through accelerate's launcher and its shipped config; DDP and FSDP
    through torchrun, with ACCELERATE_USE_FSDP as accelerate's FSDP configs export it."""
    if sharding.startswith("deepspeed"):
        return run(train_cmd(prepared, out, sets, nproc=2, extra=extra, accelerate_config=f"{sharding}.yaml"),
                   env=env, ok=ok)
    return run(train_cmd(prepared, out, sets, nproc=2, extra=extra),
               env={**dict(env), "ACCELERATE_USE_FSDP": str(sharding == "fsdp").lower()}, ok=ok)


def losses(out):
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def eval_loss(out):
    return [json.loads(x)["eval_loss"] for x in (out / "metrics.jsonl").read_text().splitlines() if "eval_loss" in x]


needs_deepspeed = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                     reason="deepspeed not installed (pip install '.[deepspeed]')")
LABEL = {"ddp": "DDP", "fsdp": "FSDP2 full shard", "deepspeed_zero2": "DeepSpeed ZeRO-2",
         "deepspeed_zero3": "DeepSpeed ZeRO-3"}


# FSDP2 and ZeRO-3 are compared with 1 process (accumulation 2, a short last step) in
# test_signals.py's short-step tests, which also stop and resume them; running them here again
# would only add minutes to the suite.
@pytest.mark.slow
@pytest.mark.parametrize("sharding", ["ddp", pytest.param("deepspeed_zero2", marks=needs_deepspeed)])
def test_two_processes_equal_one_with_double_accumulation(prepared, tmp_path, sharding):
    one, two = tmp_path / "one", tmp_path / "two"
    run(train_cmd(prepared, one, ["gradient_accumulation_steps=2", "max_steps=4", "save_steps=2"]))
    sets = ["gradient_accumulation_steps=1", "max_steps=4", "save_steps=2"]
    # accelerate launch with the shipped configs (the 8-GPU FSDP one, on 2 processes)
    p = run(train_cmd(prepared, two, sets, nproc=2, accelerate_config=f"{sharding}.yaml"))
    log = p.stderr + p.stdout
    assert "global batch 4 = micro-batch 2 x accumulation 1 x 2 processes" in log
    assert f"data parallelism: {LABEL[sharding]} over 2 processes" in log
    a, b = losses(one), losses(two)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    print(sharding, "step, 1-process loss, 2-process loss, relative difference")
    for s in a:
        print(s, a[s], b[s], abs(b[s] - a[s]) / a[s])
        assert b[s] == pytest.approx(a[s], rel=1e-5), s
    assert eval_loss(two) == pytest.approx(eval_loss(one), rel=1e-5)
    # only rank 0 wrote: one metrics line per step plus the final validation, and one set of exports
    assert len((two / "metrics.jsonl").read_text().splitlines()) == 5
    assert (two / "latest.pt").is_file() and (two / "hf_model").is_dir()
    # the checkpoints are the same whole files whatever the sharding
    from safetensors.torch import load_file
    w1, w2 = load_file(one / "checkpoint-2" / "model.safetensors"), load_file(two / "checkpoint-2" / "model.safetensors")
    assert w1.keys() == w2.keys()
    for k in w1:  # an Adam step moves a weight by up to lr = 1e-3 whatever the gradient's size, so where a
        # gradient is at float-noise level (sharded sums add in another order) 1e-5 is 1% of one step
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5)
    o1, o2 = (torch.load(x / "checkpoint-2" / "optimizer.pt", weights_only=True) for x in (one, two))
    assert o1["state"].keys() == o2["state"].keys() and len(o1["param_groups"]) == len(o2["param_groups"])
    torch.testing.assert_close(o2["state"][0]["exp_avg_sq"], o1["state"][0]["exp_avg_sq"], rtol=1e-3, atol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("sharding", ["ddp", "fsdp", pytest.param("deepspeed_zero3", marks=needs_deepspeed)])
def test_killed_two_process_run_resumes_on_one_process(prepared, tmp_path, sharding):
    out = tmp_path / "run"
    ref = tmp_path / "ref"
    sets = ["gradient_accumulation_steps=1", "max_steps=4", "save_steps=2"]
    run_two(prepared, out, sets, sharding, env={KILL_ENV: "2"}, ok=False)  # SIGKILL after step 2
    assert (out / "checkpoint-2").is_dir() and json.loads((out / "manifest.json").read_text())["status"] == "running"
    p = run(train_cmd(prepared, out, sets, extra=["--resume_from_checkpoint", "latest", "--keep-global-batch"]))
    assert "accumulation 1 -> 2 to keep the global batch of 4 on 1 process" in p.stderr + p.stdout
    run(train_cmd(prepared, ref, ["gradient_accumulation_steps=2", "max_steps=4", "save_steps=2"]))
    a, b = losses(ref), losses(out)
    assert sorted(b) == [1, 2, 3, 4]
    for s in (3, 4):  # resumed on 1 process with accumulation rescaled to keep the global batch of 4
        assert b[s] == pytest.approx(a[s], rel=1e-5), s


@pytest.mark.slow
def test_two_process_resume_with_dropout_is_exact(prepared, tmp_path):
    """Each process draws its own dropout masks: the checkpoint keeps every process's RNG stream."""
    ref, out = tmp_path / "ref", tmp_path / "run"
    sets = ["gradient_accumulation_steps=1", "max_steps=4", "save_steps=2", "peft_enable=true", "lora_r=4",
            "lora_dropout=0.1"]
    run(train_cmd(prepared, ref, sets, nproc=2))
    run(train_cmd(prepared, out, sets, nproc=2), env={KILL_ENV: "2"}, ok=False)
    rngs = torch.load(out / "checkpoint-2" / "rng.pt", weights_only=False)
    assert len(rngs) == 2 and not torch.equal(rngs[0]["torch"], rngs[1]["torch"])
    run(train_cmd(prepared, out, sets, nproc=2, extra=["--resume_from_checkpoint", "latest"]))
    a, b = losses(ref), losses(out)
    for s in (3, 4):  # bit-identical on CPU; before the fix rank 1 took rank 0's stream (7.6e-5 at step 4)
        assert b[s] == pytest.approx(a[s], rel=1e-7), s


@pytest.mark.slow
@pytest.mark.parametrize("sharding", ["fsdp", pytest.param("deepspeed_zero2", marks=needs_deepspeed),
                                      pytest.param("deepspeed_zero3", marks=needs_deepspeed)])
def test_one_process_checkpoint_resumes_sharded_on_two(prepared, tmp_path, sharding):
    """The other direction: whole checkpoints are split into shards on load (LoRA under ZeRO-2)."""
    out, ref = tmp_path / "run", tmp_path / "ref"
    one = ["gradient_accumulation_steps=2", "max_steps=4", "save_steps=2"]
    if sharding.startswith("deepspeed"):
        one += ["peft_enable=true", "lora_r=4"]
    run(train_cmd(prepared, out, one), env={KILL_ENV: "2"}, ok=False)
    p = run_two(prepared, out, one, sharding, extra=["--resume_from_checkpoint", "latest", "--keep-global-batch"])
    assert "accumulation 2 -> 1 to keep the global batch of 4 on 2 processes" in p.stderr + p.stdout
    assert f"data parallelism: {LABEL[sharding]} over 2 processes" in p.stderr + p.stdout
    run(train_cmd(prepared, ref, one))
    a, b = losses(ref), losses(out)
    assert sorted(b) == [1, 2, 3, 4]
    for s in (3, 4):
        assert b[s] == pytest.approx(a[s], rel=1e-5), s


@pytest.mark.slow
def test_two_machines_meet_over_tcp_with_the_multinode_config(prepared, tmp_path):
    """configs/accelerate/multinode.yaml run as two 'machines' (machine_rank 0 and 1, one process
    each) that rendezvous over TCP on this host, sharing the output folder as nodes share storage."""
    one, two = tmp_path / "one", tmp_path / "two"
    sets = ["gradient_accumulation_steps=1", "max_steps=4", "save_steps=2"]
    port = str(29700 + os.getpid() % 200)
    procs = []
    for machine in (0, 1):
        cmd = train_cmd(prepared, two, sets)
        cmd[1:1] = ["-m", "accelerate.commands.launch", "--config_file", str(ROOT / "configs/accelerate/multinode.yaml"),
                    "--machine_rank", str(machine), "--num_processes", "2", "--main_process_ip", "127.0.0.1",
                    "--main_process_port", port]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=process_env()))
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-4000:] + logs[1][-4000:]
    assert "DDP over 2 processes" in logs[0]
    run(train_cmd(prepared, one, ["gradient_accumulation_steps=2", "max_steps=4", "save_steps=2"]))
    a, b = losses(one), losses(two)
    assert sorted(b) == [1, 2, 3, 4]
    for s in a:
        assert b[s] == pytest.approx(a[s], rel=1e-5), s


@pytest.mark.slow
@needs_deepspeed
def test_zero3_offload_on_one_gpu_resumes_a_plain_checkpoint(prepared, tmp_path):
    """ZeRO-3 with parameters and optimizer in CPU RAM on a single process (the one-GPU offload
    setup), its step run by torch's fused AdamW on the CPU, continues a plain run's checkpoint exactly."""
    out, ref = tmp_path / "run", tmp_path / "ref"
    sets = ["gradient_accumulation_steps=2", "max_steps=4", "save_steps=2"]
    run(train_cmd(prepared, out, sets), env={KILL_ENV: "2"}, ok=False)
    p = run(train_cmd(prepared, out, sets, nproc=1, extra=["--resume_from_checkpoint", "latest"],
                      accelerate_config="deepspeed_zero3_offload.yaml"))
    assert "data parallelism: DeepSpeed ZeRO-3 over 1 process" in p.stderr + p.stdout
    run(train_cmd(prepared, ref, sets))
    a, b = losses(ref), losses(out)
    for s in (3, 4):
        assert b[s] == pytest.approx(a[s], rel=1e-5), s
    o = torch.load(out / "checkpoint-4" / "optimizer.pt", weights_only=True)
    assert float(o["state"][0]["step"]) == 4.0 and set(o["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert (out / "hf_model").is_dir()


def launcher_env(path):
    """What ``accelerate launch --config_file path`` would export to the processes, without launching."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args, defaults, _ = _validate_launch_command(launch_command_parser().parse_args(["--config_file", str(path), "x.py"]))
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        return args, prepare_deepspeed_cmd_env(args)[1]
    return args, prepare_multi_gpu_env(args)


def test_launcher_configs_dry_run():
    """Every shipped accelerate config goes through accelerate's own launch validation and env building."""
    found = {p.stem: launcher_env(p) for p in sorted((ROOT / "configs" / "accelerate").glob("*.yaml"))}
    assert set(found) == {"ddp", "fsdp", "fsdp_offload", "deepspeed_zero2", "deepspeed_zero3",
                          "deepspeed_zero3_offload", "multinode"}
    for name, (_, env) in found.items():
        assert env["ACCELERATE_MIXED_PRECISION"] == "no", name  # the training config owns precision
        assert (env.get("ACCELERATE_USE_FSDP") == "true") == name.startswith("fsdp"), name
    assert found["fsdp"][1]["FSDP_VERSION"] == "2" and found["fsdp"][1]["FSDP_OFFLOAD_PARAMS"] == "false"
    assert found["fsdp_offload"][1]["FSDP_OFFLOAD_PARAMS"] == "true"
    assert found["deepspeed_zero2"][1]["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == "2"
    assert found["deepspeed_zero3"][1]["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == "3"
    assert found["deepspeed_zero3_offload"][1]["ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE"] == "cpu"
    assert found["multinode"][0].num_machines == 2 and found["multinode"][0].num_processes == 16


@pytest.mark.parametrize("processes", ["1", "2"])
def test_deepspeed_launch_without_deepspeed_installed_is_a_clear_error(monkeypatch, processes):
    from curiosity_sft.errors import UserError
    from curiosity_sft.training.distributed import make_world

    monkeypatch.setenv("WORLD_SIZE", processes)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a))
    with pytest.raises(UserError, match=r"DeepSpeed, which is not installed.*pip install '\.\[deepspeed\]'"):
        make_world(torch.device("cpu"))
