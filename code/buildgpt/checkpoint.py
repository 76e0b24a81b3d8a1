"""Checkpoints: one safetensors file holding the weights, the optimizer state and the run's metadata.

Written atomically (a temporary file in the same folder, then a rename), so an interrupted
run never leaves a half-written checkpoint: the previous one stays intact. Loading never
executes code from the file (safetensors holds only tensors and JSON text).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .model import GPT, GPTConfig

FORMAT = "buildgpt-checkpoint-1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not fit the model it is loaded into."""


@dataclass
class Checkpoint:
    model_config: GPTConfig
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


def save(path: str | os.PathLike, model: GPT, step: int, meta: dict,
         optimizer: torch.optim.Optimizer | None = None, rng_state: torch.Tensor | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "_orig_mod", model)  # a torch.compile'd model keeps the real one here
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header = {"format": FORMAT, "model_config": model.config.to_dict(), "step": step, "meta": meta}
    if optimizer is not None:
        optim_tensors, header["optim_param_groups"] = _flatten_optimizer(optimizer.state_dict())
        tensors.update({k: v.cpu().contiguous() for k, v in optim_tensors.items()})
    if rng_state is not None:
        tensors["rng"] = rng_state
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"buildgpt": json.dumps(header)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load(path: str | os.PathLike, expected_config: GPTConfig | None = None) -> Checkpoint:
    """Read a checkpoint; with `expected_config`, refuse one written for a different model."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = json.loads((f.metadata() or {}).get("buildgpt", "null"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated?): {e}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not a buildgpt checkpoint")
    try:
        config = GPTConfig.from_dict(header["model_config"])
        step, meta = int(header["step"]), dict(header["meta"])
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path} has a damaged header ({type(e).__name__}: {e})") from None
    if expected_config is not None and config != expected_config:
        diffs = [f"{k}: file has {v!r}, expected {getattr(expected_config, k)!r}"
                 for k, v in config.to_dict().items() if getattr(expected_config, k) != v]
        raise CheckpointError(f"{path} was written for a different model ({'; '.join(diffs)})")
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    return Checkpoint(
        model_config=config, model_state=model_state, step=step, meta=meta,
        optimizer_state=_unflatten_optimizer(optim, header["optim_param_groups"]) if "optim_param_groups" in header else None,
        rng_state=tensors.get("rng"),
    )


def load_model(path: str | os.PathLike, device: str = "cpu") -> tuple[GPT, Checkpoint]:
    """A GPT rebuilt from a checkpoint's config and weights, in eval mode."""
    ckpt = load(path)
    model = GPT(ckpt.model_config)
    try:
        model.load_state_dict(ckpt.model_state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit its own config: {e}") from None
    return model.to(device).eval(), ckpt
