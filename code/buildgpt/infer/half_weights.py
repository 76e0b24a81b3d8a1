"""Faster generation steps: half-precision weights for the one-token steps of a KV-cached decode.

With the cache, each new token runs the model on a single position: every weight matrix is
read from memory to do just two flops per weight, so a step's time is the time to *read* the
weights, not to multiply. Storing a float16 copy halves those bytes (and half as many may
stay in a CPU's cache). Many positions at once (a prompt, the
uncached path, training) are compute-bound instead, where a CPU multiplies float16 slower
than float32: those keep the float32 weights. The KV cache and the activations between layers
stay float32; a skinny linear layer rounds its weights, its input and its output to float16.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .quantize import replace_linears

# Below this many rows a matrix multiply is bound by reading the weights (measured on a CPU:
# float16 wins at 1-4 rows, ties at 8, loses from 16 on).
SKINNY_ROWS = 8


class HalfWeightLinear(nn.Module):
    """A frozen linear layer that uses a float16 copy of its weights for skinny inputs."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.linear = linear
        self.register_buffer("weight16", linear.weight.detach().to(torch.float16), persistent=False)
        bias16 = None if linear.bias is None else linear.bias.detach().to(torch.float16)
        self.register_buffer("bias16", bias16, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[:-1].numel() >= SKINNY_ROWS:
            return self.linear(x)
        return F.linear(x.to(torch.float16), self.weight16, self.bias16).to(x.dtype)


def with_half_weights(model: nn.Module) -> nn.Module:
    """A copy of `model` for generation, each nn.Linear wrapped in a HalfWeightLinear.

    The original is untouched (training it later does not leave stale copies behind). The
    copy is in eval mode with gradients off.
    Example: `generate(with_half_weights(model), prompt, max_new_tokens=100)`.
    """
    return replace_linears(model, HalfWeightLinear)
