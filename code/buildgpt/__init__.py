"""buildgpt: the tested package behind the book *Building GPT*.

One module per idea, in the order the book meets them: `data` (the dataset registry),
`chars` (the character tokenizer), `batches` (splits, batches, the loss), `bigram` (the
baseline model), `training` (the loop), `figures` (interactive plots), `profiles` (how big
each run is on this machine), `show` (the package's own source, shown in the book).
"""

__version__ = "0.1.0"
