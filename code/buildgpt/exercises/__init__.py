"""The exercises' checks: each takes the learner's function, tests it on random inputs against the
package's reference (itself tested against PyTorch, or by hand), and raises an AssertionError that
says what is wrong, or prints one line of success.

- `batched_heads` (exercise 1): every head's causal self-attention as one batched computation;
- `addition` (exercise 2): the reversed, masked encoding of one addition problem;
- `pretrain_finetune` (exercise 3): the learning-rate schedule, warmup then cosine decay;
- `researcher` (exercise 4): rotary position embeddings, RMSNorm against `torch.nn.RMSNorm`, SwiGLU.
"""
