"""A GPT back from a checkpoint, ready to generate."""

from __future__ import annotations

import os

from ..nn.model import GPT, GPTConfig
from ..train.checkpoint import Checkpoint, CheckpointError, load


def load_model(path: str | os.PathLike, device: str = "cpu") -> tuple[GPT, Checkpoint]:
    """A GPT rebuilt from a checkpoint's config and weights, in eval mode.

    Example: `model, ckpt = load_model("checkpoints/shakespeare-char/best.safetensors")`.
    """
    ckpt = load(path)
    try:
        model = GPT(GPTConfig.from_dict(ckpt.model_config))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path} has a damaged header ({type(e).__name__}: {e})") from None
    try:
        model.load_state_dict(ckpt.model_state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit its own config: {e}") from None
    return model.to(device).eval(), ckpt
