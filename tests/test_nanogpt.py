"""Reading nanoGPT: its fused c_attn, its parameter names, its get_lr and its estimate_mfu, against ours."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from buildgpt.nn.model import GPT
from buildgpt.nn.nanogpt import fuse_heads, nanogpt_name
from buildgpt.settings.presets import NANOGPT_SCHEDULE, SMOKE_MODEL
from buildgpt.train.flops import flops_per_token, model_flops_utilization
from buildgpt.viz.schedule import schedule_figure

pytestmark = pytest.mark.usefixtures("one_thread")

PER_HEAD = replace(SMOKE_MODEL, n_layer=2, n_head=4, attention="per_head")


def per_head_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(PER_HEAD).eval()
    with torch.no_grad():  # biases start at zero: give them values, so a misplaced one would show
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
    return model


def nanogpt_attention(c_attn_weight: torch.Tensor, n_head: int, x: torch.Tensor) -> torch.Tensor:
    """nanoGPT's CausalSelfAttention.forward up to c_proj, written out: one matmul, split, heads as a batch."""
    B, T, C = x.shape
    q, k, v = (x @ c_attn_weight.T).split(C, dim=2)
    q, k, v = (t.view(B, T, n_head, C // n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return y.transpose(1, 2).contiguous().view(B, T, C)


def test_fused_model_computes_the_per_head_function():
    model = per_head_model()
    fused = fuse_heads(model)
    assert fused.config.attention == "fused" and not fused.training
    idx = torch.randint(0, PER_HEAD.vocab_size, (3, PER_HEAD.block_size), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, _ = model(idx)
        torch.testing.assert_close(fused(idx)[0], expected, atol=1e-5, rtol=0)
        # not equal by accident: a fresh fused model gives other logits
        assert (GPT(replace(PER_HEAD, attention="fused"))(idx)[0] - expected).abs().max() > 1e-3


def test_c_attn_split_the_nanogpt_way_equals_the_heads():
    """nanoGPT's own recipe (split C, view as heads) on the fused matrix reproduces our concatenated heads."""
    model = per_head_model(seed=3)
    fused = fuse_heads(model)
    x = torch.randn(2, 12, PER_HEAD.n_embd, generator=torch.Generator().manual_seed(2))
    for ours, theirs in zip(model.blocks, fused.blocks, strict=True):
        with torch.no_grad():
            heads = torch.cat([h(x) for h in ours.attn.heads], dim=-1)  # (B, T, C) before the projection
            torch.testing.assert_close(nanogpt_attention(theirs.attn.qkv.weight, PER_HEAD.n_head, x), heads,
                                       atol=1e-5, rtol=0)


def test_fuse_heads_keeps_training_mode_and_rejects_a_fused_model():
    model = per_head_model().train()
    assert fuse_heads(model).training
    with pytest.raises(ValueError, match="attention='per_head'"):
        fuse_heads(GPT(SMOKE_MODEL))


def test_nanogpt_names():
    fused = fuse_heads(per_head_model())
    ours = {nanogpt_name(n) for n, _ in fused.named_parameters()}
    # nanoGPT's model.py with bias=True and n_layer=2; its lm_head has no bias and shares wte's matrix
    theirs = {"transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight", "transformer.ln_f.bias",
              "lm_head.weight"}
    for i in range(PER_HEAD.n_layer):
        theirs |= {f"transformer.h.{i}.{m}.{p}" for m in ("ln_1", "ln_2", "attn.c_attn", "attn.c_proj", "mlp.c_fc",
                                                           "mlp.c_proj") for p in ("weight", "bias")}
    assert ours - theirs == {"lm_head.bias"}
    assert theirs - ours == {f"transformer.h.{i}.attn.c_attn.bias" for i in range(PER_HEAD.n_layer)}
    with pytest.raises(ValueError, match="fuse_heads"):
        nanogpt_name("blocks.0.attn.heads.0.query.weight")


def nanogpt_get_lr(it: int, learning_rate: float, warmup_iters: int, lr_decay_iters: int, min_lr: float) -> float:
    """nanoGPT's train.py get_lr, written out."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * decay_ratio)) * (learning_rate - min_lr)


def test_schedule_matches_nanogpt_get_lr():
    c = NANOGPT_SCHEDULE
    lr, warmup = c.learning_rate, c.warmup_iters
    theirs = [nanogpt_get_lr(s, lr, warmup, c.max_iters, c.min_lr) for s in range(c.max_iters + 50)]
    ours = [c.lr_at(s) for s in range(c.max_iters + 50)]
    # after warmup: the same cosine, reaching min_lr at max_iters and staying there
    assert ours[warmup:] == pytest.approx(theirs[warmup:], rel=1e-12, abs=0)
    assert ours[c.max_iters] == pytest.approx(c.min_lr) and ours[-1] == pytest.approx(c.min_lr)
    assert ours[warmup] == pytest.approx(lr) and max(ours) == pytest.approx(lr)
    # warmup: linear from lr / warmup, reaching the peak one step earlier than nanoGPT's (its divisor is warmup + 1)
    rises = [b - a for a, b in zip(ours[:warmup], ours[1:warmup], strict=False)]
    assert rises == pytest.approx([lr / warmup] * (warmup - 1))
    assert ours[0] == pytest.approx(lr / warmup) and ours[warmup - 1] == pytest.approx(lr)
    gaps = [o - t for o, t in zip(ours[:warmup], theirs[:warmup], strict=True)]
    assert all(g > 0 for g in gaps) and max(gaps) == pytest.approx(lr / (warmup + 1))


def test_schedule_figure_draws_lr_at():
    fig = schedule_figure(NANOGPT_SCHEDULE)
    (trace,) = fig.data
    assert list(trace.x) == list(range(NANOGPT_SCHEDULE.max_iters + 1))
    assert list(trace.y) == [NANOGPT_SCHEDULE.lr_at(s) for s in trace.x]
    warmup, floor = fig.layout.shapes
    assert (warmup.x0, warmup.x1) == (0, NANOGPT_SCHEDULE.warmup_iters)
    assert floor.y0 == floor.y1 == NANOGPT_SCHEDULE.min_lr


def test_flops_and_mfu_equal_nanogpt_estimate_mfu():
    model = GPT(replace(SMOKE_MODEL, n_layer=2))
    c = model.config
    # nanoGPT: N = get_num_params(non_embedding=True): every parameter but the position table, its token
    # table tied to the output layer and so counted once. Ours are untied: that matrix once means minus one.
    N = model.num_params() - model.position_embedding.weight.numel() - model.token_embedding.weight.numel()
    L, H, Q, T = c.n_layer, c.n_head, c.n_embd // c.n_head, c.block_size
    assert flops_per_token(model) == flops_per_token(torch.compile(model)) == 6 * N + 12 * L * H * Q * T
    fwdbwd_per_iter, dt, peak = 12, 0.25, 312e12
    their_mfu = (6 * N + 12 * L * H * Q * T) * T * fwdbwd_per_iter / dt / peak
    tokens_per_second = fwdbwd_per_iter * T / dt
    assert model_flops_utilization(model, tokens_per_second, peak) == pytest.approx(their_mfu, rel=1e-12)
    with pytest.raises(ValueError, match="peak_flops"):
        model_flops_utilization(model, tokens_per_second, 0.0)
