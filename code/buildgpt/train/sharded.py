"""State that lives on many ranks: whole state dicts for our checkpoints, sharded DCP checkpoints, bytes per rank.

Under FSDP2 each rank holds a shard of every parameter (a DTensor), so writing a checkpoint is
a collective: every rank takes part in gathering the whole tensors, then rank 0 writes the usual
single safetensors file. Loading goes the other way and works into a plain model, DDP or FSDP2
alike, so a checkpoint moves freely between one process and many. PyTorch's
`torch.distributed.checkpoint` (DCP) does the gathering and scattering; it can also write a
*sharded* checkpoint, each rank its own piece, which any number of ranks (or one) can load.
"""

from __future__ import annotations

import os
import warnings

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.tensor import DTensor

from .checkpoint import unwrap

WHOLE = StateDictOptions(full_state_dict=True, cpu_offload=True)  # whole tensors, on rank 0's CPU


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def full_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights, named as in a plain model (collective; rank 0 gets them). Example: `full_weights(model)`."""
    return get_model_state_dict(model, options=WHOLE) if _distributed() else unwrap(model).state_dict()


def full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """The whole model's weights and the optimizer's state, as one process would hold them.

    Collective under torch.distributed (every rank calls it; rank 0 gets the result, the others
    may get empty dicts). The optimizer state is keyed by parameter index, as `optimizer.state_dict()` is.
    Example: `weights, optim = full_state(model, optimizer)`.
    """
    if not _distributed():
        return unwrap(model).state_dict(), optimizer.state_dict()
    weights = full_weights(model)
    plain = optimizer.state_dict()  # the index-keyed layout; its tensors are this rank's shards
    if not optimizer.state:  # no step taken yet; DCP would take a fake step to create the state
        return weights, plain
    named = get_optimizer_state_dict(model, optimizer, options=WHOLE)  # keyed by parameter name
    if not named:  # ranks other than 0 get nothing
        return weights, named
    index = {name: i for i, name in enumerate(n for group in named["param_groups"] for n in group["params"])}
    return weights, {"state": {index[n]: s for n, s in named["state"].items()}, "param_groups": plain["param_groups"]}


def load_full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, weights: dict, optim: dict) -> None:
    """Load `full_state`'s output (from any run, one process or many) into a plain, DDP or FSDP2 model.

    The optimizer takes its state (moments, step counts) from the file and keeps its own settings (learning rate,
    betas, weight decay), which loading would otherwise replace with the saved run's.
    Example: `load_full_state(model, optimizer, ckpt.model_state, ckpt.optimizer_state)`.
    """
    own = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    optim = {**optim, "param_groups": [{**saved, **mine} for saved, mine in zip(optim["param_groups"], own, strict=True)]}
    if not _distributed():
        unwrap(model).load_state_dict(weights)
        optimizer.load_state_dict(optim)
        return
    set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True))
    if not optim["state"]:  # saved before the first step: nothing to scatter
        optimizer.load_state_dict(optim)
        return
    names = {id(p): n for n, p in unwrap(model).named_parameters()}
    order = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    named = {"state": {order[int(i)]: s for i, s in optim["state"].items()},
             "param_groups": [{**g, "params": [order[int(i)] for i in g["params"]]} for g in optim["param_groups"]]}
    set_optimizer_state_dict(model, optimizer, named, options=StateDictOptions(full_state_dict=True))


def save_sharded(path: str | os.PathLike, model: torch.nn.Module) -> None:
    """Write a DCP checkpoint of the weights into the folder `path`: every rank writes its own shards.

    Example: `save_sharded("checkpoints/run/dcp", fsdp_model)` on every rank.
    """
    dcp.save(get_model_state_dict(model), checkpoint_id=os.fspath(path))


def load_sharded(path: str | os.PathLike, model: torch.nn.Module) -> None:
    """Load a DCP checkpoint into `model`, however it is sharded now: FSDP2 on any number of ranks, or one process.

    Example: `load_sharded("checkpoints/run/dcp", GPT(config))` in a plain Python session.
    """
    state = get_model_state_dict(model)  # the layout wanted here: DCP reads each piece into it
    with warnings.catch_warnings():  # loading into one process without a group is meant, not a mistake
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, checkpoint_id=os.fspath(path))
    set_model_state_dict(model, state)


def local(t: torch.Tensor) -> torch.Tensor:
    """The part of `t` this rank holds: its shard of a DTensor, or all of a plain tensor.

    Example: `local(torch.ones(3))` is the same tensor; under FSDP2, `local(p)` is this rank's rows.
    """
    return t.to_local() if isinstance(t, DTensor) else t


def bytes_per_rank(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes of parameters, gradients and optimizer state held by this rank (its shards under FSDP2).

    Example: `bytes_per_rank(model, optimizer)["optimizer state"]` after a step.
    """
    params = list(model.parameters())

    def size(t: torch.Tensor) -> int:
        return local(t).numel() * local(t).element_size()

    return {"parameters": sum(size(p) for p in params),
            "gradients": sum(size(p.grad) for p in params if p.grad is not None),
            "optimizer state": sum(size(v) for s in optimizer.state.values() for v in s.values()
                                   if torch.is_tensor(v) and v.dim() > 0)}
