"""buildgpt: the tested package behind the book *Building GPT*, laid out like the book.

One subpackage per part of the book, one module per idea. Imports point one way only, down
this list (tests/test_layering.py enforces it), so an early chapter's code never depends on a
later one's:

- `utils`: atomic files, progress bars, timing, peak memory, lists as prose (`text`), `show_source` (the book's
  listings);
- `data`: the dataset registry (`registry`, offline first), splits and batches (`batches`),
  arithmetic problems as text (`arithmetic`, `arithmetic_steps`, exercise 2), a large corpus as
  memory-mapped token files (`prepared`, exercise 3), Shakespeare on request (`instructions`, the assistant);
- `tokenizers`: characters (`chars`, chapter 1) and byte-pair encoding (chapter 5: `textbook`,
  `fast`, `base`, `basic`, `regex`, `gpt4`, `gpt2_bytes`, `merge_tree`, `sentencepiece_bpe`), the chat
  format (`chat`);
- `nn`: the model and its parts: `loss`, `bigram` (chapter 1); `attention`, `cross_attention` (chapter 2,
  plain); `dropout`, `norms`, `model`, `ladder` (chapter 3); `nanogpt` (nanoGPT's fused layout and names);
  `batched_attention` (exercise 1); `positions`
  (chapter 4); `causal_attention` (the fast and general attention the GPT runs); `abacus` (exercise 2);
  `surgery` (room for new tokens);
- `train`: `objectives` (batch sources, loss functions), `loop` (the one training loop),
  `evaluate` (losses, the unigram and bigram floors; bits per byte, chapter 6), `checkpoint`, `experiments`
  (controlled comparisons), `ladder` (chapter 3's rungs, trained alike), `flops` (model FLOPs utilisation),
  `precision` (bfloat16 autocast and compile where they pay),
  `distributed`, `sharded`, `distributed_runs`, `scaling` (training on many processes: DDP, FSDP2, DCP), `stops`
  (how a command-line run ends early, and what it kept),
  `alignment` (SFT and DPO);
- `infer`: `sampling`, `kv_cache`, `generate`, `half_weights`, `load` (a model from a checkpoint),
  `arithmetic`, `calculator` (exercise 2), `quantize` and `weight_formats` (int8, Q8_0, Q4_0 weights),
  `compiled_decode` (one compiled decoding step: a static cache, int8 weights),
  `batched` (many prompts decoded at once), `assistant`, `chat_session` and `export_hf` (the assistant:
  answers checked, a chat, Hugging Face);
- `exercises`: the checks a learner's solution meets, one module per exercise;
- `settings`: `profiles` (smoke / cpu / gpu), `types`, `presets` (the models and schedules defined once),
  `gpt_chapter`, `arithmetic` and `chapters` (each chapter's run sizes, from presets), `gpu_plan` (the gpu book's
  minutes);
- `viz`: the interactive figures (`figures`, `tokens`, `schedule`), the GPU run's box (`gpu_results`);
- `cli_parser` and `cli`: `buildgpt train | sample | quantize | calc | chat | export-hf`, parsed, then run.

Chapter by chapter, the modules it shows and the tests that prove them are listed in the
README. Importing the package needs only torch, numpy and the small core dependencies: the
book's tools (Jupyter Book, plotly) are needed only by `viz` and `utils.show`.
"""

__version__ = "0.2.0"
