"""Where data parallelism stops paying: a model, not a measurement, of one training step on N processes.

A step is the compute on this rank's share of the batch, then a ring all-reduce of the
gradients: 2(N-1) rounds (N-1 to reduce-scatter, N-1 to all-gather), each sending 1/N of the
gradient bytes over every link at once and paying the link's latency. The bandwidth term is
almost flat in N; the latency term grows with N; and with a fixed global batch the compute per
rank shrinks as 1/N, so communication eventually dominates.
"""

from __future__ import annotations


def ring_allreduce_seconds(nbytes: float, n: int, bandwidth: float, latency: float = 0.0) -> float:
    """Seconds to all-reduce `nbytes` over a ring of `n` ranks, links of `bandwidth` bytes/s and `latency` s.

    Example: `ring_allreduce_seconds(4 * 124e6, 8, 50e9)` is about 0.017 (GPT-2's fp32 gradients, 8 GPUs).
    """
    if n < 1:
        raise ValueError(f"need at least one rank, got {n}")
    return 2 * (n - 1) * (latency + nbytes / n / bandwidth)


def efficiency(batch_compute_seconds: float, nbytes: float, n: int, bandwidth: float, latency: float = 0.0) -> float:
    """The fraction of perfect speed-up that `n` ranks keep, sharing one global batch.

    `batch_compute_seconds`: the whole batch's compute on one rank. Communication is not
    overlapped with compute here, so this is a lower bound for a framework that overlaps them.
    Example: `efficiency(1.0, 4 * 124e6, 64, 50e9)` is about 0.44.
    """
    compute = batch_compute_seconds / n
    return compute / (compute + ring_allreduce_seconds(nbytes, n, bandwidth, latency))
