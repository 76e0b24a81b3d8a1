"""Run profiles: how big each chapter's runs are on this machine.

`BUILDGPT_PROFILE` picks one of `smoke` (every chapter in seconds, for the tests), `cpu`
(the book a laptop or CI builds) and `gpu` (the published book, full size). Left unset, it is
`gpu` when CUDA is available and `cpu` otherwise. One table, `SETTINGS`, says per chapter what
each profile runs, so the sizes live in one place instead of in every chapter.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

PROFILES = ("smoke", "cpu", "gpu")
ENV_VAR = "BUILDGPT_PROFILE"

# Per chapter, per profile: the run sizes and the claim the chapter asserts.
SETTINGS: dict[str, dict[str, dict]] = {
    "bigram": {
        "smoke": dict(max_iters=200, eval_interval=50, eval_iters=10, batch_size=32,
                      block_size=8, learning_rate=1e-2, max_val_loss=3.6),
        "cpu": dict(max_iters=5000, eval_interval=250, eval_iters=100, batch_size=32,
                    block_size=8, learning_rate=1e-2, max_val_loss=2.6),
        "gpu": dict(max_iters=10000, eval_interval=500, eval_iters=200, batch_size=32,
                    block_size=8, learning_rate=1e-2, max_val_loss=2.6),
    },
    # A one-layer, one-head model trained just long enough to show what attention looks at.
    "attention": {
        "smoke": dict(max_iters=30, eval_interval=15, eval_iters=5, batch_size=16, block_size=32,
                      learning_rate=3e-3, n_embd=32),
        "cpu": dict(max_iters=600, eval_interval=100, eval_iters=20, batch_size=32, block_size=32,
                    learning_rate=3e-3, n_embd=64),
        "gpu": dict(max_iters=3000, eval_interval=250, eval_iters=50, batch_size=64, block_size=64,
                    learning_rate=3e-3, n_embd=128),
    },
    # Exercise 1: timing per-head vs batched vs fused attention (forward + backward).
    "batched_heads": {
        "smoke": dict(n_embd=64, head_counts=[1, 4], batch_size=2, block_size=32, repeats=2),
        "cpu": dict(n_embd=384, head_counts=[1, 2, 6, 12, 24], batch_size=8, block_size=256, repeats=5),
        "gpu": dict(n_embd=768, head_counts=[1, 2, 6, 12, 24, 48], batch_size=32, block_size=512, repeats=20),
    },
    # Positional encodings: every scheme, same budget and seeds; then longer evaluation windows.
    "positions": {
        "smoke": dict(model=dict(n_layer=1, n_head=2, n_embd=32, block_size=16, dropout=0.0, mlp="gelu",
                                 attention="fused"),
                      train=dict(max_iters=20, eval_interval=10, eval_iters=2, batch_size=16, block_size=16,
                                 learning_rate=3e-3, warmup_iters=5, decay_lr=True, grad_clip=1.0),
                      seeds=[0], eval_multiples=[1, 2, 4], extrapolation_tokens=2000),
        "cpu": dict(model=dict(n_layer=2, n_head=4, n_embd=64, block_size=64, dropout=0.0, mlp="gelu",
                               attention="fused"),
                    train=dict(max_iters=400, eval_interval=100, eval_iters=10, batch_size=32, block_size=64,
                               learning_rate=6e-3, warmup_iters=40, decay_lr=True, grad_clip=1.0),
                    seeds=[0, 1], eval_multiples=[1, 2, 4], extrapolation_tokens=20000),
        "gpu": dict(model=dict(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2, mlp="gelu",
                               attention="fused"),
                    train=dict(max_iters=3000, eval_interval=250, eval_iters=50, batch_size=64, block_size=256,
                               learning_rate=1e-3, warmup_iters=100, decay_lr=True, min_lr=1e-4,
                               weight_decay=0.1, grad_clip=1.0),
                    seeds=[0, 1, 2], eval_multiples=[1, 2, 4], extrapolation_tokens=111000),
    },
    # Exercise 4: baseline vs each change alone vs all together, several seeds each.
    "researcher": {
        "smoke": dict(model=dict(n_layer=1, n_head=2, n_embd=32, block_size=16, dropout=0.0, mlp="gelu",
                                 attention="fused"),
                      train=dict(max_iters=20, eval_interval=10, eval_iters=2, batch_size=16, block_size=16,
                                 learning_rate=3e-3, warmup_iters=5, decay_lr=True, grad_clip=1.0),
                      seeds=[0, 1, 2]),
        "cpu": dict(model=dict(n_layer=2, n_head=4, n_embd=64, block_size=64, dropout=0.0, mlp="gelu",
                               attention="fused"),
                    train=dict(max_iters=250, eval_interval=125, eval_iters=5, batch_size=32, block_size=64,
                               learning_rate=6e-3, warmup_iters=25, decay_lr=True, grad_clip=1.0),
                    seeds=[0, 1, 2]),
        "gpu": dict(model=dict(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2, mlp="gelu",
                               attention="fused"),
                    train=dict(max_iters=3000, eval_interval=250, eval_iters=50, batch_size=64, block_size=256,
                               learning_rate=1e-3, warmup_iters=100, decay_lr=True, min_lr=1e-4,
                               weight_decay=0.1, grad_clip=1.0),
                    seeds=[0, 1, 2]),
    },
    # The GPT of "Let's build GPT" on tinyshakespeare (chapter 3 and `buildgpt train shakespeare-char`).
    "gpt": {
        "smoke": dict(model=dict(n_layer=1, n_head=2, n_embd=32, block_size=32, dropout=0.0, mlp="gelu"),
                      train=dict(max_iters=60, eval_interval=30, eval_iters=5, batch_size=16, block_size=32,
                                 learning_rate=3e-3, warmup_iters=10, decay_lr=True, grad_clip=1.0),
                      max_val_loss=3.5),
        "cpu": dict(model=dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0, mlp="gelu"),
                    train=dict(max_iters=1200, eval_interval=100, eval_iters=20, batch_size=32, block_size=64,
                               learning_rate=3e-3, warmup_iters=100, decay_lr=True, min_lr=3e-4,
                               weight_decay=0.1, grad_clip=1.0),
                    max_val_loss=2.0),
        # The lecture's model (10.8M parameters) with nanoGPT's shakespeare-char schedule.
        "gpu": dict(model=dict(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2, mlp="relu"),
                    train=dict(max_iters=5000, eval_interval=250, eval_iters=200, batch_size=64, block_size=256,
                               learning_rate=1e-3, warmup_iters=100, decay_lr=True, min_lr=1e-4,
                               weight_decay=0.1, grad_clip=1.0),
                    max_val_loss=1.50),
    },
    # The BPE tokenizer chapter: a Shakespeare slice for Basic vs Regex, the reference and fast
    # trainers raced on `reference_chars`, and a tokenizer of novels for the compression curve.
    # `lm`: one GPT trained on characters and one on BPE tokens of tinyshakespeare, same shape,
    # steps and batches (in tokens), compared in bits per byte. `min_bpe_margin`: how many bits
    # per byte the BPE model must win by (None: no claim). Under cpu it won by 0.43, 0.39 and
    # 0.40 with seeds 0, 1, 2 (each model's spread across seeds at most 0.03), so 0.2 is a wide
    # margin; gpu trains longer, which may narrow the gap, and is unmeasured: no claim.
    "tokenizer": {
        "smoke": dict(small_chars=5_000, small_vocab_size=300, reference_chars=5_000, reference_vocab_size=280,
                      corpus_chars=200_000, eval_chars=20_000, vocab_sizes=[256, 300, 400, 512], min_speedup=1,
                      lm=dict(vocab_size=512, seed=0, min_bpe_margin=None,
                              model=dict(n_layer=1, n_head=2, n_embd=32, block_size=32, dropout=0.0, mlp="gelu"),
                              train=dict(max_iters=100, eval_interval=25, eval_iters=2, batch_size=16,
                                         block_size=32, learning_rate=1e-2, warmup_iters=10, decay_lr=True,
                                         grad_clip=1.0))),
        "cpu": dict(small_chars=50_000, small_vocab_size=512, reference_chars=300_000, reference_vocab_size=512,
                    corpus_chars=5_000_000, eval_chars=500_000,
                    vocab_sizes=[256, 512, 1024, 2048, 4096, 8192, 16384, 32768], min_speedup=30,
                    lm=dict(vocab_size=512, seed=0, min_bpe_margin=0.2,
                            model=dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0, mlp="gelu"),
                            train=dict(max_iters=300, eval_interval=50, eval_iters=10, batch_size=32, block_size=64,
                                       learning_rate=3e-3, warmup_iters=30, decay_lr=True, min_lr=3e-4,
                                       weight_decay=0.1, grad_clip=1.0))),
        "gpu": dict(small_chars=50_000, small_vocab_size=512, reference_chars=1_115_394, reference_vocab_size=512,
                    corpus_chars=20_000_000, eval_chars=2_000_000,
                    vocab_sizes=[256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536], min_speedup=100,
                    lm=dict(vocab_size=512, seed=0, min_bpe_margin=None,
                            model=dict(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2, mlp="relu"),
                            train=dict(max_iters=2500, eval_interval=250, eval_iters=50, batch_size=64,
                                       block_size=256, learning_rate=1e-3, warmup_iters=100, decay_lr=True,
                                       min_lr=1e-4, weight_decay=0.1, grad_clip=1.0))),
    },
}

# Seconds one notebook cell may run before the book build gives up on it.
CELL_TIMEOUT = {"smoke": 120, "cpu": 900, "gpu": 1800}


@dataclass(frozen=True)
class Profile:
    name: str
    device: str

    def settings(self, chapter: str) -> dict:
        """The run sizes of `chapter` under this profile."""
        if chapter not in SETTINGS:
            raise KeyError(f"no settings for chapter {chapter!r}; known: {sorted(SETTINGS)}")
        return dict(SETTINGS[chapter][self.name])

    def describe(self) -> str:
        name = torch.cuda.get_device_name() if self.device == "cuda" else f"{os.cpu_count()} CPU cores"
        return f"profile '{self.name}' on {self.device} ({name}), torch {torch.__version__}"


def profile_name() -> str:
    """The profile asked for by `BUILDGPT_PROFILE`, or the one this machine suits."""
    name = os.environ.get(ENV_VAR, "").strip().lower()
    if not name:
        return "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(f"{ENV_VAR}={name!r} is not a profile; use one of {', '.join(PROFILES)}")
    return name


def current() -> Profile:
    """The active profile and the device its runs use."""
    name = profile_name()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "gpu" and device != "cuda":
        raise RuntimeError(f"{ENV_VAR}=gpu needs a CUDA device and none is available; "
                           "use 'cpu' or 'smoke', or leave it unset to choose automatically")
    return Profile(name=name, device=device)
