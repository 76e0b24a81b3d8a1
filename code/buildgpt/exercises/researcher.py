"""Exercise 4's checks: the learner's RoPE against the package's (whose scores depend only on the
offset, tests/test_nn_positions.py, and which equals Meta LLaMA's complex-number form,
tests/test_exercises.py), the learner's RMSNorm against `torch.nn.functional.rms_norm`, and the
learner's SwiGLU against the package's `SwiGLU` module given the same weights.

The learner writes `apply_rope(x, base=10000.0)`: x (..., T, head_size), each pair of channels
(0, 1), (2, 3), ... at position p rotated by the angle p * base ** (-2i / head_size) of pair i;
`rms_norm(x, weight, eps=1e-6)`: each position's features divided by their root mean square,
times the gain; and `swiglu(x, gate_weight, up_weight, down_weight)`: down(SiLU(gate(x)) * up(x)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..nn import positions
from ..nn.model import GPTConfig, SwiGLU
from .common import call, matches, max_difference

ROPE_CASES = [((2, 3, 8, 16), 10000.0), ((5, 6), 10000.0), ((1, 2, 12, 8), 100.0)]  # (shape, base): heads or none
ATOL = 1e-5


def reference_rope(x: torch.Tensor, base: float = 10000.0, *, sign: float = 1.0, layout: str = "interleaved",
                   exponent: float = 2.0) -> torch.Tensor:
    """The package's RoPE on positions 0 .. T-1, or, with the keywords changed, a known mistake.

    Example: `reference_rope(torch.randn(4, 8))` rotates 4 positions of 8 channels.
    """
    T, hs = x.shape[-2:]
    cos, sin = positions.rope_angles(torch.arange(T), hs, base)  # (T, hs / 2) each
    if exponent != 2.0:  # angles p * base ** (-exponent * i / hs)
        frequencies = base ** (-exponent * torch.arange(hs // 2) / hs)
        angles = torch.arange(T)[:, None] * frequencies[None, :]
        cos, sin = angles.cos(), angles.sin()
    sin = sign * sin
    if layout == "interleaved":
        return positions.apply_rope(x, cos, sin)
    if layout == "halves":  # Hugging Face's rotate_half: pairs (i, i + hs / 2)
        first, second = x[..., : hs // 2], x[..., hs // 2:]  # (..., T, hs / 2) each
        return torch.cat((first * cos - second * sin, first * sin + second * cos), dim=-1)
    even, odd = x[..., 0::2], x[..., 1::2]  # neighbours paired, but written back as two halves
    return torch.cat((even * cos - odd * sin, even * sin + odd * cos), dim=-1)


ROPE_MISTAKES = {  # diagnosis -> the keywords of `reference_rope` that reproduce it
    "it rotates the wrong way: the pair (a, b) must become (a cos θ - b sin θ, a sin θ + b cos θ)": {"sign": -1.0},
    "it pairs channel i with channel i + head_size/2 (the 'rotate_half' layout of Hugging Face's LLaMA); "
    "this book pairs neighbours: (0, 1), (2, 3), ...": {"layout": "halves"},
    "it writes the rotated pairs back as two halves (torch.cat); put each pair back side by side "
    "(torch.stack(..., dim=-1).flatten(-2))": {"layout": "written_as_halves"},
    "pair i turns at base ** (-i / head_size); the exponent is -2i / head_size": {"exponent": 1.0},
}


def _rope_property(fn, x: torch.Tensor, base: float, out: torch.Tensor) -> str | None:
    """Which of RoPE's defining properties `out` breaks, or None."""
    pairs_in, pairs_out = x.unflatten(-1, (-1, 2)).norm(dim=-1), out.unflatten(-1, (-1, 2)).norm(dim=-1)
    if (pairs_out - pairs_in).abs().max().item() > ATOL:
        return ("a rotation keeps the length of each pair of channels, and yours changes it: rotate (a, b) "
                "to (a cos θ - b sin θ, a sin θ + b cos θ)")
    if (out[..., 0, :] - x[..., 0, :]).abs().max().item() > ATOL:
        return "position 0 must not move (its angle is 0): use positions 0 .. T-1"
    q, k = torch.randn(2, x.shape[-1], generator=torch.Generator().manual_seed(1))
    T = x.shape[-2]
    scores = call(fn, q.expand(T, -1).clone(), base, name="your function") @ call(fn, k.expand(T, -1).clone(), base, name="your function").T
    if (scores[1:, 1:] - scores[:-1, :-1]).abs().max().item() > 1e-4:  # (T, T): constant along diagonals
        return ("the score of a rotated query and key depends on where they are, not only on how far apart: "
                "the angle must be the position times a fixed frequency per pair")
    return None


def check_apply_rope(fn) -> None:
    """Raise an AssertionError naming the mistake unless `fn` equals the package's RoPE on random inputs.

    Example: `check_apply_rope(apply_rope)` prints one line when all is well.
    """
    name = getattr(fn, "__name__", "your function")
    generator, worst = torch.Generator().manual_seed(0), 0.0
    for shape, base in ROPE_CASES:
        x = torch.randn(*shape, generator=generator)
        out = call(fn, x, base, name=name)
        case = f"x of shape {shape}, base = {base:g}"
        difference = max_difference(out, reference_rope(x, base), f"{name} at {case}")
        if difference > ATOL:
            candidates = {d: reference_rope(x, base, **change) for d, change in ROPE_MISTAKES.items()}
            if base != 10000.0:
                candidates["it ignores its base argument: the frequencies are base ** (-2i / head_size)"] = reference_rope(x)
            diagnosis = matches(out, candidates, ATOL) or _rope_property(fn, x, base, out) or (
                "check the angles (position times frequency) and which channels form a pair")
            raise AssertionError(f"{name} differs from the package's RoPE by up to {difference:.2e} at {case}: {diagnosis}")
        worst = max(worst, difference)
    print(f"✓ {name} equals the package's RoPE on {len(ROPE_CASES)} random inputs (largest difference {worst:.1e}).")


def check_rms_norm(fn) -> None:
    """Raise an AssertionError naming the mistake unless `fn` equals `torch.nn.functional.rms_norm`.

    Example: `check_rms_norm(rms_norm)` prints one line when all is well.
    """
    name = getattr(fn, "__name__", "your function")
    generator, worst = torch.Generator().manual_seed(0), 0.0
    for shape in [(4, 16, 32), (3, 10)]:
        x = torch.randn(*shape, generator=generator) * 3 + 1  # a mean away from 0, so centring shows
        weight = torch.randn(shape[-1], generator=generator)
        out = call(fn, x, weight, 1e-6, name=name)
        expected = F.rms_norm(x, (shape[-1],), weight, eps=1e-6)
        difference = max_difference(out, expected, f"{name} at x of shape {shape}")
        if difference > ATOL:
            rms = x.pow(2).mean(-1, keepdim=True).add(1e-6).rsqrt()
            centred = x - x.mean(-1, keepdim=True)
            diagnosis = matches(out, {
                "it subtracts the mean, as LayerNorm does; RMSNorm only divides by the root mean square": (
                    centred * centred.pow(2).mean(-1, keepdim=True).add(1e-6).rsqrt() * weight),
                "the gain (weight) is missing: multiply the normalised features by it": x * rms,
                "it divides by the root mean square of the whole tensor; each position has its own, over the "
                "last dimension (mean(dim=-1, keepdim=True))": x * x.pow(2).mean().add(1e-6).rsqrt() * weight,
            }, 1e-4) or "divide each position's features by sqrt(mean(x²) + eps) over the last dimension, then multiply by the weight"
            raise AssertionError(f"{name} differs from torch's RMSNorm by up to {difference:.2e} at x of shape {shape}: {diagnosis}")
        worst = max(worst, difference)
    print(f"✓ {name} equals torch.nn.functional.rms_norm on two random inputs (largest difference {worst:.1e}).")


def check_swiglu(fn) -> None:
    """Raise an AssertionError naming the mistake unless `fn` equals the package's `SwiGLU` with the same weights.

    Example: `check_swiglu(swiglu)` prints one line when all is well.
    """
    name = getattr(fn, "__name__", "your function")
    generator, worst = torch.Generator().manual_seed(0), 0.0
    for C in (12, 48):
        module = SwiGLU(GPTConfig(n_embd=C, mlp="swiglu", bias=False)).eval()  # eval: no dropout
        weights = [torch.randn(layer.weight.shape, generator=generator) / C**0.5 for layer in (module.gate, module.up, module.down)]
        for layer, weight in zip((module.gate, module.up, module.down), weights):
            layer.weight.data.copy_(weight)
        x = torch.randn(2, 5, C, generator=generator)
        out = call(fn, x, *weights, name=name)
        with torch.no_grad():
            difference = max_difference(out, module(x), f"{name} at n_embd = {C}")
        if difference > ATOL:
            gate, up, down = weights
            g, u = x @ gate.T, x @ up.T  # (B, T, hidden) each
            diagnosis = matches(out, {
                "SiLU is applied to the up projection; it belongs on the gate: down(SiLU(gate(x)) * up(x))":
                    (F.silu(u) * g) @ down.T,
                "the activation is not SiLU (x * sigmoid(x)): ReLU": (F.relu(g) * u) @ down.T,
                "the activation is not SiLU (x * sigmoid(x)): GELU": (F.gelu(g) * u) @ down.T,
                "SiLU is applied to the product; apply it to the gate alone, then multiply": F.silu(g * u) @ down.T,
                "the down projection is missing: project the hidden vector back to n_embd": F.silu(g) * u,
            }, ATOL) or "compute down(SiLU(gate(x)) * up(x)), where each projection is x @ weight.T"
            raise AssertionError(f"{name} differs from the package's SwiGLU by up to {difference:.2e} "
                                 f"at n_embd = {C}: {diagnosis}")
        worst = max(worst, difference)
    print(f"✓ {name} equals the package's SwiGLU on two random inputs (largest difference {worst:.1e}).")
