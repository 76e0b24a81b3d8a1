"""Named presets, each defined once: the models and schedules the chapters' settings are built from."""

from __future__ import annotations

from dataclasses import replace

from ..nn.model import GPTConfig
from ..train.loop import TrainConfig

# "Let's build GPT": 6 layers, 6 heads, 384 wide, a 256-character context, dropout 0.2.
LECTURE_MODEL = GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2, mlp="relu")
# nanoGPT's config/train_shakespeare_char.py: AdamW, warmup then cosine decay to a tenth.
NANOGPT_SCHEDULE = TrainConfig(max_iters=5000, eval_interval=250, eval_iters=200, batch_size=64, learning_rate=1e-3,
                               warmup_iters=100, decay_lr=True, min_lr=1e-4, weight_decay=0.1, grad_clip=1.0)
# The gpu book's runs: nanoGPT's schedule, uncompiled (too short for compiling to pay: settings/gpu_plan.py).
GPU_SCHEDULE = replace(NANOGPT_SCHEDULE, compile=False)
# The largest model a 2-core CPU trains in the book's budget (nanoGPT's CPU recipe, GELU, no dropout).
CPU_MODEL = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, mlp="gelu")
# 800 steps: chapter 3 and the takeaway gpt.ipynb both train it inside the CPU book's time. Ten batches per split
# per evaluation (20,480 tokens) draw the curves; chapter 3 also scores the whole val split. Chapter 3 doubles the
# rates (6e-3 to 6e-4): whole val 1.790 and 1.785 instead of 1.823 and 1.821 (seeds 1337, 7), in the same time;
# 1e-2 gave 1.797. The other runs built on it (exercise 3, bits per byte, the fast chapter, the assistant) are unchanged.
CPU_SCHEDULE = TrainConfig(max_iters=800, eval_interval=100, eval_iters=10, batch_size=32, learning_rate=3e-3,
                           warmup_iters=100, decay_lr=True, min_lr=3e-4, weight_decay=0.1, grad_clip=1.0)
# Studies of many small runs on the CPU (chapter 4, exercise 4).
CPU_STUDY_MODEL = replace(CPU_MODEL, n_layer=2, n_embd=64)
CPU_STUDY_SCHEDULE = TrainConfig(max_iters=400, eval_interval=100, eval_iters=10, batch_size=32, learning_rate=6e-3,
                                 warmup_iters=40, decay_lr=True, grad_clip=1.0)
# The same studies on the GPU, eighteen runs each (six variants, three seeds): a step of models this small costs
# its kernel launches, about 1 ms plus 0.8 ms per layer (settings/gpu_plan.py), so two layers instead of four buy
# the steps back; still four times the CPU study's width, twice its context and over six times its tokens.
GPU_STUDY_MODEL = replace(LECTURE_MODEL, n_layer=2, n_head=4, n_embd=256, block_size=128, dropout=0.0, mlp="gelu")
GPU_STUDY_SCHEDULE = replace(GPU_SCHEDULE, max_iters=400, eval_interval=200, eval_iters=20, warmup_iters=40)
# Seconds, not results: every chapter executes end to end (the test suite).
SMOKE_MODEL = GPTConfig(vocab_size=65, block_size=32, n_layer=1, n_head=2, n_embd=32, dropout=0.0, mlp="gelu")
SMOKE_SCHEDULE = TrainConfig(max_iters=60, eval_interval=30, eval_iters=5, batch_size=16, learning_rate=3e-3,
                             warmup_iters=10, decay_lr=True, grad_clip=1.0)
