"""What every exercise check shares: calling the learner's function, and comparing its answer."""

from __future__ import annotations

import torch


def call(fn, *args, name: str) -> torch.Tensor:
    """`fn(*args)` without gradients, on copies of the tensors (an answer that works in place must not change
    the inputs the reference is then computed from); the learner's stub raising NotImplementedError passes through.

    Example: `call(torch.relu, torch.randn(3), name="relu")`.
    """
    with torch.no_grad():
        out = fn(*(arg.clone() if isinstance(arg, torch.Tensor) else arg for arg in args))
    assert isinstance(out, torch.Tensor), f"{name} returned a {type(out).__name__}, not a tensor"
    return out


def max_difference(out: torch.Tensor, expected: torch.Tensor, name: str) -> float:
    """The largest absolute difference, after checking the shapes agree. Example: `max_difference(a, a, "f")` is 0.0."""
    assert out.shape == expected.shape, (
        f"{name} returned shape {tuple(out.shape)}, expected {tuple(expected.shape)}")
    assert torch.isfinite(out).all(), f"{name} returned NaN or infinite values"
    return (out.float() - expected.float()).abs().max().item()


def matches(out: torch.Tensor, candidates: dict[str, torch.Tensor], atol: float) -> str | None:
    """The diagnosis of the first known mistake `out` reproduces, or None. Example: `matches(y, {"no mask": z}, 1e-5)`."""
    for diagnosis, wrong in candidates.items():
        if out.shape == wrong.shape and (out - wrong).abs().max().item() < atol:
            return diagnosis
    return None
