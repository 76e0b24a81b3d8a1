"""Tokenizers: characters (chapter 1) and byte-pair encoding (BPE), the tokenizer of GPT-2 and GPT-4.

One module per idea, as in minbpe:

- `chars`: one token per character (`CharTokenizer`).
- `textbook`: BPE as the textbook states it: `pair_counts`, `merge`, `most_frequent`,
  `train_reference`, `encode_reference`. Short, slow, the reference.
- `fast`: the same merges and ids, fast: `train_fast`, `merge_and_count`, `merge_by_rank`.
- `base`: the `Tokenizer` base class: train, encode (with tiktoken's rules for special tokens),
  decode, save and load; `render_token`.
- `basic`: `BasicTokenizer`, BPE on the raw bytes of the whole text.
- `regex`: `RegexTokenizer`, BPE within the chunks of a split pattern (GPT-2's or GPT-4's).
- `gpt4`: tiktoken interop: `tiktoken_encoding`, `recover_merges`, and `GPT4Tokenizer`, whose
  ids are tiktoken's `cl100k_base`.
- `gpt2_bytes`: GPT-2's `bytes_to_unicode` (why GPT-4's first tokens are the bytes in another order).
- `merge_tree`: the tree of merges that builds one token.
- `sentencepiece_bpe`: sentencepiece trained with Llama 2's options, and its pieces decoded by hand.
- `chat`: the chat format's special tokens on top of the characters (the assistant).
"""
