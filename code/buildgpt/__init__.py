"""buildgpt: the tested package behind the book *Building GPT*.

One module per idea, in the order the book meets them:
- `data`: the dataset registry (offline first, sha256-checked);
- `chars`: the character tokenizer; `batches`: splits, batches, the loss;
- `bigram`: the baseline model;
- `attention`: scaled dot-product attention, heads, batched heads, the KV cache; `dropout`: a cheap CPU mask;
- `model`: the GPT (config, feed-forward, block); `sampling`: temperature, top-k, top-p;
- `decoding`: float16 weights for the one-token steps of cached generation;
- `training`: the training loop; `checkpoint`: saving and loading runs; `cli`: `buildgpt train|sample`;
- `positions`, `norms`: position schemes (sinusoidal, RoPE, ALiBi) and normalisation layers;
- `experiments`: controlled multi-seed comparisons of model variants;
- `bpe`: the byte-pair-encoding tokenizers (`token_figures`: their figures);
- shared helpers: `figures` (interactive plots), `profiles` (run sizes), `timing`, `show` (source in the book).

Importing the package needs only torch, numpy and the small core dependencies: the book's
tools (Jupyter Book, plotly) are needed only by `figures` and `show`.
"""

__version__ = "0.1.0"
