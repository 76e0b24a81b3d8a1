"""Exercise 1's check: the learner's all-heads-at-once attention against the package's per-head heads.

The learner writes `all_heads_attention(x, qkv_weight, n_head)`: x (B, T, C), the (3C, C) weight
of the one linear layer that makes every head's queries, keys and values (the layout of
`BatchedSelfAttention.qkv`), and the number of heads; it returns the heads' outputs side by side,
(B, T, C), before the output projection.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..nn.attention import MultiHeadAttention
from ..nn.batched_attention import BatchedSelfAttention
from .common import call, matches, max_difference

SHAPES = [(2, 6, 8, 2), (3, 5, 12, 3), (2, 7, 16, 4)]  # (B, T, C, n_head): several heads, C not a power of two
ATOL = 1e-5


def per_head_problem(B: int, T: int, C: int, n_head: int, seed: int):
    """x, the fused (3C, C) qkv weight and the per-head module's concatenated heads, the expected answer.

    Example: `x, w, expected = per_head_problem(2, 6, 8, 2, seed=0)`.
    """
    with torch.random.fork_rng():  # the learner's random state is left as it was
        torch.manual_seed(seed)
        heads = MultiHeadAttention(C, n_head).eval()
        qkv_weight = BatchedSelfAttention(C, n_head).load_from_heads(heads).qkv.weight.detach().clone()
        x = torch.randn(B, T, C)
    with torch.no_grad():
        expected = torch.cat([h(x) for h in heads.heads], dim=-1)  # (B, T, C)
    return x, qkv_weight, expected


def _variant(x, qkv_weight, n_head, *, scale_by: str = "head", split: str = "transpose",
             merge: str = "transpose", softmax_dim: int = -1) -> torch.Tensor:
    """Batched causal attention with one thing changed: the known mistakes the check recognises."""
    B, T, C = x.shape
    hs = C // n_head

    def heads(t):  # (B, T, C) -> (B, n_head, T, hs), or the wrong way: reinterpreting the memory
        return t.reshape(B, T, n_head, hs).transpose(1, 2) if split == "transpose" else t.reshape(B, n_head, T, hs)

    q, k, v = map(heads, (x @ qkv_weight.T).split(C, dim=-1))
    scores = q @ k.transpose(-2, -1)  # (B, n_head, T, T)
    scores = scores / math.sqrt({"head": hs, "width": C, "none": 1}[scale_by])
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    y = F.softmax(scores, dim=softmax_dim) @ v  # (B, n_head, T, hs)
    return y.transpose(1, 2).reshape(B, T, C) if merge == "transpose" else y.reshape(B, T, C)


MISTAKES = {  # diagnosis -> what differs from the right computation (a missing mask: see `_causality`)
    "the scores are divided by sqrt(C), the whole width; divide by sqrt(head_size), each head's size": {"scale_by": "width"},
    "the scores are not scaled: divide q @ k^T by sqrt(head_size)": {"scale_by": "none"},
    "the heads are split with view(B, n_head, T, head_size), which mixes positions and channels: "
    "view(B, T, n_head, head_size), then transpose(1, 2)": {"split": "view"},
    "the heads are put back side by side without transposing: (B, n_head, T, hs) -> transpose(1, 2) "
    "-> (B, T, n_head, hs), then reshape to (B, T, C)": {"merge": "view"},
    "the softmax runs over the queries (dim=-2); each query's weights over the keys (dim=-1) must sum to 1": {"softmax_dim": -2},
}


def _causality(fn, x, qkv_weight, n_head, out) -> str | None:
    """What is wrong if changing the last position moves an earlier output, else None."""
    later = x.clone()
    later[:, -1] += 1.0  # (B, T, C): only the last position changes
    moved = (call(fn, later, qkv_weight, n_head, name="your function")[:, :-1] - out[:, :-1]).abs().max().item()
    if moved < ATOL:
        return None
    return (f"it is not causal: changing the last position moved the outputs at earlier positions by "
            f"{moved:.2e}. Mask the scores above the diagonal with -inf before the softmax, so that no "
            "position attends to later ones")


def check_all_heads_attention(fn) -> None:
    """Raise an AssertionError naming the mistake unless `fn` equals the per-head heads on random inputs.

    Example: `check_all_heads_attention(all_heads_attention)` prints one line when all is well.
    """
    name = getattr(fn, "__name__", "your function")
    worst = 0.0
    for seed, (B, T, C, n_head) in enumerate(SHAPES):
        x, qkv_weight, expected = per_head_problem(B, T, C, n_head, seed)
        out = call(fn, x, qkv_weight, n_head, name=name)
        case = f"(B, T, C) = {(B, T, C)}, n_head = {n_head}"
        difference = max_difference(out, expected, f"{name} at {case}")
        if difference > ATOL:
            candidates = {d: _variant(x, qkv_weight, n_head, **change) for d, change in MISTAKES.items()}
            diagnosis = matches(out, candidates, ATOL) or _causality(fn, x, qkv_weight, n_head, out) or (
                "check the split into heads, the scale, the mask and the merge against the shape comments")
            raise AssertionError(f"{name} differs from the per-head attention by up to {difference:.2e} "
                                 f"at {case}: {diagnosis}")
        worst = max(worst, difference)
    print(f"✓ {name} equals the per-head attention on {len(SHAPES)} random problems "
          f"(n_head = {', '.join(str(s[3]) for s in SHAPES)}; largest difference {worst:.1e}) and is causal.")
