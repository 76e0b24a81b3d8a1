"""A stand-in for nanoGPT's model, to time it side by side with ours in the same run.

nanoGPT itself cannot be fetched offline, so this file re-creates the operations its
model.py performs, as documented there: a GPT-2 block with F.layer_norm, one fused q/k/v
projection, F.scaled_dot_product_attention(is_causal=True, dropout_p=...) for attention,
nn.Dropout on the residual branches, a GELU MLP, the LM head tied to the token embedding,
no biases (its shakespeare-char default), AdamW with decay on matrices only, fused only on
CUDA, and fp32 on the CPU (train.py autocasts only on the GPU). Its parameter count at the
lecture's size is nanoGPT's 10.65M (non-embedding), which `benchmarks/bench_gpt_cpu.py --part train-step` prints.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ReferenceBlock(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float):
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.ln_1 = nn.LayerNorm(n_embd, bias=False)
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.attn_proj = nn.Linear(n_embd, n_embd, bias=False)
        self.ln_2 = nn.LayerNorm(n_embd, bias=False)
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=False)
        self.mlp_proj = nn.Linear(4 * n_embd, n_embd, bias=False)
        self.resid_dropout = nn.Dropout(dropout)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in self.c_attn(x).split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.attn_proj(y.transpose(1, 2).contiguous().view(B, T, C)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln_1(x))
        return x + self.resid_dropout(self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)))))


class ReferenceGPT(nn.Module):
    def __init__(self, vocab_size: int = 65, block_size: int = 256, n_layer: int = 6, n_head: int = 6,
                 n_embd: int = 384, dropout: float = 0.2):
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(ReferenceBlock(n_embd, n_head, dropout) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=False)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight  # weight tying
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def non_embedding_params(self) -> int:
        return sum(p.numel() for p in self.parameters()) - self.wpe.weight.numel()

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(idx.size(1), device=idx.device)))
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        if targets is None:  # sampling: only the last position's logits are needed
            return self.lm_head(x[:, -1:]), None
        logits = self.lm_head(x)
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    def optimizer(self, weight_decay: float = 0.1, lr: float = 1e-3) -> torch.optim.AdamW:
        params = list(self.parameters())
        return torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                                 lr=lr, betas=(0.9, 0.99))

    @torch.no_grad()
    def sample(self, idx: torch.Tensor, max_new_tokens: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """nanoGPT's generate: re-run the cropped window for every new token (no cache)."""
        self.eval()
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.block_size:])
            next_id = torch.multinomial(F.softmax(logits[:, -1], dim=-1), 1, generator=generator)
            idx = torch.cat((idx, next_id), dim=1)
        return idx
