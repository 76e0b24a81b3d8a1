"""Checkpoints: one safetensors file holding the weights and the run's metadata, and for a resume (the loop's
`last.safetensors`) the optimizer state and random streams too.

Written atomically (a temporary file in the same folder, then a rename), so an interrupted
run never leaves a half-written checkpoint: the previous one stays intact. Loading never
executes code from the file (safetensors holds only tensors and JSON text).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..utils.files import replacing

FORMAT = "buildgpt-checkpoint-1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not fit the model it is loaded into."""


@dataclass
class Checkpoint:
    model_config: dict  # the model's config as a dict (`GPTConfig.from_dict` rebuilds it)
    model_state: dict[str, torch.Tensor]
    step: int
    meta: dict  # the training config, loss history, tokenizer: whatever the trainer stored
    optimizer_state: dict | None = None
    rng_state: torch.Tensor | None = None


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], list]:
    tensors = {}
    for index, param_state in state["state"].items():
        for key, value in param_state.items():
            tensors[f"optim.{index}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, state["param_groups"]


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], param_groups: list) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": param_groups}


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model itself, out of a torch.compile wrapper (`_orig_mod`) and a DDP wrapper (`module`).

    Example: `unwrap(torch.compile(model)) is model`.
    """
    while isinstance(getattr(model, "_orig_mod", None) or getattr(model, "module", None), torch.nn.Module):
        model = getattr(model, "_orig_mod", None) or model.module
    return model


def model_config_of(model: torch.nn.Module) -> dict:
    """The config a checkpoint records: any model with a `.config` that has `to_dict()`.

    Example: `model_config_of(GPT(GPTConfig()))["n_layer"]`.
    """
    config = getattr(unwrap(model), "config", None)
    if config is None or not hasattr(config, "to_dict"):
        raise CheckpointError(f"checkpoints need a model with a .config (a GPT); {type(model).__name__} has none")
    return config.to_dict()


def save(path: str | os.PathLike, model: torch.nn.Module, step: int, meta: dict,
         optimizer: torch.optim.Optimizer | None = None, rng_state: torch.Tensor | None = None, *,
         model_state: dict | None = None, optimizer_state: dict | None = None) -> Path:
    """Write weights, config, `meta` (and optionally optimizer and random state) to `path`, atomically.

    A sharded model's weights and optimizer state come already gathered, as `model_state` and
    `optimizer_state` (see `sharded.full_state`), instead of read from `model` and `optimizer`.
    Example: `save("checkpoints/run/last.safetensors", model, step=100, meta={"preset": "shakespeare-char"})`.
    """
    path = Path(path)
    header = {"format": FORMAT, "model_config": model_config_of(model), "step": step, "meta": meta}
    path.parent.mkdir(parents=True, exist_ok=True)
    model_state = unwrap(model).state_dict() if model_state is None else model_state
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model_state.items()}
    if optimizer is not None:
        optimizer_state = optimizer.state_dict()
    if optimizer_state is not None:
        optim_tensors, header["optim_param_groups"] = _flatten_optimizer(optimizer_state)
        tensors.update({k: v.cpu().contiguous() for k, v in optim_tensors.items()})
    if rng_state is not None:
        tensors["rng"] = rng_state
    with replacing(path) as tmp:
        save_file(tensors, tmp, metadata={"buildgpt": json.dumps(header)})
    return path


def load(path: str | os.PathLike, expected_config: dict | None = None) -> Checkpoint:
    """Read a checkpoint; with `expected_config` (a config dict), refuse one written for a different model.

    Example: `load("checkpoints/shakespeare-char/last.safetensors").step`.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give a checkpoint file in it, such as {path / 'best.safetensors'}")
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    if not os.access(path, os.R_OK):  # safetensors would call it missing
        raise CheckpointError(f"{path} cannot be read: permission denied (check its owner and mode)")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = json.loads((f.metadata() or {}).get("buildgpt", "null"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated?): {e}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not a buildgpt checkpoint")
    try:
        config, step, meta = dict(header["model_config"]), int(header["step"]), dict(header["meta"])
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path} has a damaged header ({type(e).__name__}: {e})") from None
    if expected_config is not None and config != expected_config:
        diffs = [f"{k}: file has {config.get(k)!r}, expected {expected_config.get(k)!r}"
                 for k in sorted(set(config) | set(expected_config)) if config.get(k) != expected_config.get(k)]
        raise CheckpointError(f"{path} was written for a different model ({'; '.join(diffs)})")
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    broken = next((k for k, v in model_state.items() if v.is_floating_point() and not v.isfinite().all()), None)
    if broken:  # bytes overwritten in place, or a run saved after it diverged: any answer would be garbage
        raise CheckpointError(f"{path} is corrupt: its tensor {broken} holds NaN or infinite values; use another "
                              "checkpoint of the run (best.safetensors, or a copy from before it broke)")
    optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    return Checkpoint(
        model_config=config, model_state=model_state, step=step, meta=meta,
        optimizer_state=_unflatten_optimizer(optim, header["optim_param_groups"]) if "optim_param_groups" in header else None,
        rng_state=tensors.get("rng"),
    )


def what_was_kept(out_dir: str | Path | None, if_kept: str = "") -> str:
    """What a stopped run leaves behind, in words, with `if_kept` after a checkpoint's name.
    Example: `what_was_kept(None)` gives "no checkpoint had been written yet"."""
    last = Path(out_dir) / "last.safetensors" if out_dir else None
    if last and last.is_file():
        return f"the last checkpoint, {last}, is intact{if_kept}"
    return "no checkpoint had been written yet"


def gpu_of(model: torch.nn.Module) -> torch.device | None:
    """The GPU `model`'s weights are on, whose own generator its dropout draws from (a resume restores it); None
    on a CPU. Example: `gpu_of(torch.nn.Linear(2, 2))` is None."""
    device = next(model.parameters()).device
    return device if device.type == "cuda" else None
