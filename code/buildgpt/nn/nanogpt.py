"""Our GPT in nanoGPT's layout: the per-head model fused into one q/k/v projection, and nanoGPT's names.

nanoGPT's `CausalSelfAttention` makes every head's queries, keys and values with one Linear,
`c_attn` (n_embd -> 3 * n_embd), and splits the result. The lecture's `MultiHeadAttention`
keeps a Linear per head and per role. Stacking the per-head matrices gives `c_attn`'s matrix,
so the two models compute the same function; `fuse_heads` does it for a whole GPT.
"""

from __future__ import annotations

import re
from dataclasses import replace

import torch

from .model import GPT

# Our parameter names -> nanoGPT's model.py names, applied in order (regex, replacement).
NANOGPT_NAMES = [
    (r"^token_embedding\.", "transformer.wte."),
    (r"^position_embedding\.", "transformer.wpe."),
    (r"^blocks\.(\d+)\.ln1\.", r"transformer.h.\1.ln_1."),
    (r"^blocks\.(\d+)\.ln2\.", r"transformer.h.\1.ln_2."),
    (r"^blocks\.(\d+)\.attn\.qkv\.", r"transformer.h.\1.attn.c_attn."),
    (r"^blocks\.(\d+)\.attn\.proj\.", r"transformer.h.\1.attn.c_proj."),
    (r"^blocks\.(\d+)\.ffwd\.up\.", r"transformer.h.\1.mlp.c_fc."),
    (r"^blocks\.(\d+)\.ffwd\.down\.", r"transformer.h.\1.mlp.c_proj."),
    (r"^ln_f\.", "transformer.ln_f."),
]


def nanogpt_name(name: str) -> str:
    """The name nanoGPT's model.py gives the parameter we call `name` (a fused-attention GPT's).

    Example: `nanogpt_name("blocks.0.attn.qkv.weight")` is "transformer.h.0.attn.c_attn.weight".
    """
    if ".attn.heads." in name:
        raise ValueError(f"{name!r} is a per-head matrix; nanoGPT has one c_attn per block: fuse_heads(model) first")
    for pattern, replacement in NANOGPT_NAMES:
        name = re.sub(pattern, replacement, name)
    return name


@torch.no_grad()
def fuse_heads(model: GPT) -> GPT:
    """A copy of a per-head GPT whose attention makes q, k and v with one matrix per block, as nanoGPT's `c_attn`.

    Every other weight is copied as is; each block's heads are stacked by `load_from_heads`
    (query rows of head 0, 1, ..., then the keys, then the values), so the copy computes the same function.
    Example: `fused = fuse_heads(GPT(replace(config, attention="per_head")))`.
    """
    if model.config.attention != "per_head":
        raise ValueError(f"fuse_heads takes a GPT with attention='per_head', got {model.config.attention!r}")
    fused = GPT(replace(model.config, attention="fused")).to(next(model.parameters()).device)
    state = {k: v for k, v in model.state_dict().items() if ".attn.heads." not in k}
    missing, unexpected = fused.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith(".attn.qkv.weight") for k in missing), (missing, unexpected)
    for ours, theirs in zip(model.blocks, fused.blocks, strict=True):
        theirs.attn.load_from_heads(ours.attn)
    return fused.train(model.training)
