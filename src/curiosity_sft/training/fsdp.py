"""FSDP2 as the run's parallelism: PyTorch's ``fully_shard`` applied directly, with the launcher's settings.

accelerate enables FSDP only on GPUs, while ``fully_shard`` (the FSDP2 accelerate calls itself)
also runs over gloo: applying it here makes the path users run on 8 GPUs the one the CPU tests run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch

from curiosity_sft.training.batching import Batch
from curiosity_sft.training.distributed import FsdpSettings, Parallelism, World


class FSDP2(Parallelism):
    """FSDP2 full shard: each decoder layer is a unit (gathered only while it runs), the rest is the root.

    Shards are gathered to whole tensors on save with ``torch.distributed.checkpoint.state_dict``,
    which keys optimizer states by parameter name; they are converted to and from ``torch.optim``'s
    index keys (the optimizer's parameter order, the same with or without sharding) so the files
    match the replicated ones. Every rank must call ``gather_state`` and ``restore_optimizer``:
    they are collectives.

    The launcher's settings apply: ``fsdp_reshard_after_forward`` (free a layer's gathered weights
    after its forward, or keep them for the backward), ``fsdp_offload_params`` (shards and the
    optimizer step in CPU RAM, on GPUs), ``fsdp_cpu_ram_efficient_loading`` (only rank 0 reads the
    weights; the others build the model on the meta device and receive their shards from rank 0)
    and ``fsdp_activation_checkpointing`` (the loop turns on gradient checkpointing). The model is
    sharded layer by layer from CPU RAM, so no rank ever holds the whole model on its GPU.
    """

    name = "FSDP2 full shard"
    collective = True
    PREFIX = "model."  # TokenLoss holds the model as ``.model``

    def __init__(self, world: World, settings: FsdpSettings) -> None:
        super().__init__(world)
        self.settings = settings
        self.loads_on_meta = settings.cpu_ram_efficient_loading and not world.is_main
        self.names: list[str] = []

    def prepare(self, objective: torch.nn.Module, layers: Sequence[torch.nn.Module]) -> None:
        from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard

        offload = self.settings.offload_params and self.world.device.type != "cpu"
        policy = CPUOffloadPolicy() if offload else OffloadPolicy()
        # Rank 0's whole tensors, kept in CPU RAM past sharding when the others have none to shard
        # (views of the CPU storage: fully_shard moves each parameter to the GPU by rebinding it).
        efficient = self.settings.cpu_ram_efficient_loading
        whole = {n: p.detach() for n, p in objective.named_parameters()} if efficient and self.world.is_main else {}
        for layer in layers:
            fully_shard(layer, reshard_after_forward=self.settings.reshard_after_forward, offload_policy=policy)
        fully_shard(objective, reshard_after_forward=self.settings.reshard_after_forward, offload_policy=policy)
        if self.settings.cpu_ram_efficient_loading:
            self._scatter_from_main(objective, whole, offload)
        self.module = objective

    def _scatter_from_main(self, objective: torch.nn.Module, whole: dict[str, torch.Tensor], offload: bool) -> None:
        """Ranks built on the meta device get storage for their shards, then every shard and buffer
        comes from rank 0 (``distribute_tensor`` scatters from rank 0). Parameters keep their
        identity, so tied weights (a head tied to the embeddings) stay tied."""
        import torch.distributed as dist
        from torch.distributed.tensor import distribute_tensor

        device = self.world.device
        if self.loads_on_meta:
            objective.to_empty(device=torch.device("cpu") if offload else device)
        with torch.no_grad():
            for name, p in objective.named_parameters():
                mesh = p.device_mesh
                full = (whole[name].detach().to(mesh.device_type) if self.world.is_main
                        else torch.empty(p.shape, dtype=p.dtype, device=mesh.device_type))
                p.to_local().copy_(distribute_tensor(full, mesh, p.placements).to_local())
            for _, b in objective.named_buffers():  # not sharded (RoPE's inv_freq): sent whole
                t = b.to(device)
                dist.broadcast(t, src=0)
                b.copy_(t)

    def attach(self, optimizer: torch.optim.Optimizer, filler: Batch) -> None:
        by_id = {id(p): n for n, p in self.module.model.named_parameters()}
        self.names = [by_id[id(p)] for g in optimizer.param_groups for p in g["params"]]

    def optimizer_order(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
        return list(self.names)

    def no_sync(self) -> contextlib.AbstractContextManager[Any]:
        return _fsdp_no_sync(self.module)

    def gather_state(self, model: torch.nn.Module,
                     optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
        full = get_model_state_dict(self.module, options=opts)
        osd = get_optimizer_state_dict(self.module, optimizer, options=opts)
        if not full:  # ranks other than 0 receive nothing with cpu_offload
            return {}, {}
        index = {self.PREFIX + n: i for i, n in enumerate(self.names)}
        weights = {n: full[self.PREFIX + n].contiguous() for n in self.names}
        state = {index[k]: v for k, v in osd["state"].items()}
        groups = [{**g, "params": [index[k] for k in g["params"]]} for g in osd["param_groups"]]
        return weights, {"state": state, "param_groups": groups}

    def restore_optimizer(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        fqn = [self.PREFIX + n for n in self.names]
        osd = {"state": {fqn[int(i)]: v for i, v in state["state"].items()},
               "param_groups": [{**g, "params": [fqn[int(i)] for i in g["params"]]} for g in state["param_groups"]]}
        set_optimizer_state_dict(self.module, optimizer, osd, options=StateDictOptions(full_state_dict=True, strict=False))


@contextlib.contextmanager
def _fsdp_no_sync(objective: Any) -> Any:
    """FSDP2's counterpart of DDP's ``no_sync``: keep unreduced gradients across accumulation."""
    objective.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        objective.set_requires_gradient_sync(True)
