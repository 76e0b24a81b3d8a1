"""The learner's takeaway, `gpt.py` and `gpt.ipynb`: the whole lecture GPT in one file that imports
only torch (and the standard library), from loading tinyshakespeare to a sample.

Every class and function comes from the package's own source (`inspect.getsource`), so the file
cannot drift from what the book shows and tests; what the lecture does not use (the position,
norm and attention variants, numpy token files, checkpoints, many processes) is cut out by name,
and an edit that no longer applies stops the assembly. The run sizes of each profile come from
`buildgpt.settings` (chapter 3's). Only the short script around them is written here.

The book build writes both into `_build/gpt/` and executes the notebook (the extension in
`__init__.py`); by hand: `python -m buildgpt_book.takeaway OUTDIR [--execute]`.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

from buildgpt.data import batches, registry
from buildgpt.infer import sampling
from buildgpt.nn import attention, loss, model, norms, positions
from buildgpt.settings.chapters import settings_for
from buildgpt.settings.profiles import PROFILES
from buildgpt.tokenizers import chars
from buildgpt.train import loop

# The lecture's model: each part fixed, so the config keeps only what the lecture varies.
MODEL_FIELDS = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias", "mlp")
TRAIN_FIELDS = ("max_iters", "eval_interval", "eval_iters", "batch_size", "learning_rate", "min_lr",
                "warmup_iters", "decay_lr", "weight_decay", "beta1", "beta2", "grad_clip", "seed")


def statement_name(node: ast.AST) -> str | None:
    """How `drop` names a statement: a def, field or assignment by its name, an `if` by its test, a `for` loop
    as written."""
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return node.name
    if isinstance(node, ast.AnnAssign):
        return ast.unparse(node.target)
    if isinstance(node, ast.Assign):
        return ast.unparse(node.targets[0])
    if isinstance(node, ast.If):
        return ast.unparse(node.test)
    if isinstance(node, ast.For):
        return f"for {ast.unparse(node.target)} in {ast.unparse(node.iter)}"
    return None


def piece(obj, drop: tuple[str, ...] = (), edits: tuple[tuple[str, str], ...] = ()) -> str:
    """`obj`'s source as the package has it, less the statements named in `drop` (members, fields,
    checks of arguments the script always gets right), with each (old, new) edit applied once."""
    lines = inspect.getsource(obj).splitlines(keepends=True)
    cut, found = set(), set()
    for node in ast.walk(ast.parse("".join(lines)).body[0]):
        name = statement_name(node) if isinstance(node, ast.stmt) and node.col_offset > 0 else None
        if name in drop:
            start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
            while start > 1 and lines[start - 2].lstrip().startswith("#"):  # its comment goes with it
                start -= 1
            cut.update(range(start - 1, node.end_lineno))
            found.add(name)
    if missing := [name for name in drop if name not in found]:
        raise RuntimeError(f"takeaway: {obj.__qualname__} has no {', '.join(missing)} any more; update the script")
    text = re.sub(r"\n{3,}", "\n\n", "".join(line for i, line in enumerate(lines) if i not in cut))
    for old, new in edits:
        if text.count(old) != 1:
            raise RuntimeError(f"takeaway: {obj.__qualname__} no longer contains {old!r}; update the script")
        text = text.replace(old, new)
    return text.rstrip() + "\n"


CHARS_CHECK = "len(set(chars)) != len(chars) or any((len(c) != 1 for c in chars))"
ENCODE_CHECK = """try:
            return [self.stoi[c] for c in text]
        except KeyError:
            position = next(i for i, c in enumerate(text) if c not in self.stoi)
            c = text[position]
            raise ValueError(
                f"character {c!r} (U+{ord(c):04X}) at position {position} is not in the "
                f"vocabulary of {self.vocab_size} characters; remove it, or build the "
                "tokenizer from text that contains it"
            ) from None"""


def unused(cls, keep: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name not in keep)


def arguments(config, names: tuple[str, ...]) -> str:
    """`config`'s values that differ from its class's defaults, as keyword arguments."""
    default = type(config)()
    return ", ".join(f"{n}={getattr(config, n)!r}" for n in names if getattr(config, n) != getattr(default, n))


def profile_sizes() -> str:
    """Chapter 3's run sizes under each profile, as the package's settings give them."""
    rows = []
    for name in PROFILES:
        s = settings_for("gpt", name)
        model_args = arguments(s.model, MODEL_FIELDS[1:])
        train_lines = textwrap.wrap(f"TrainConfig({arguments(s.train, TRAIN_FIELDS)})),", 104, subsequent_indent=" " * 12)
        rows.append(f'    "{name}": (GPTConfig({model_args}),\n' + "\n".join(" " * 8 + line for line in train_lines))
    return ("PROFILES = {  # chapter 3's sizes (buildgpt.settings): smoke for tests, cpu for a laptop, gpu\n"
            + "\n".join(rows) + "\n}\n")


HEADER = '''"""The lecture's GPT in one file: tinyshakespeare in, a Shakespeare-like sample out.

Assembled by buildgpt_book/takeaway.py from the `buildgpt` package that the book "Building GPT"
imports and tests; every class and function below is the package's own code, cut down to the
lecture's path: attention is chapter 2's loop over heads, in float32, so losses and times differ a
little from chapter 3's run, which uses the fused kernel (and bfloat16 on a GPU). Needs PyTorch 2.4+.

Run it: `python gpt.py`, or every cell of gpt.ipynb. The size follows the environment variable
BUILDGPT_PROFILE: smoke (seconds), cpu or gpu; without it, gpu where CUDA is, else cpu. In the
notebook, set it with `os.environ["BUILDGPT_PROFILE"] = "smoke"` before the last cell.
It reads tinyshakespeare from $BUILDGPT_DATA_MIRROR if set, else from ./input.txt, which it
downloads (and checks) the first time.
"""

from __future__ import annotations

import hashlib
import math
import os
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

# Chapter 3 writes its own dropout (the same function, a mask drawn faster on a CPU); this file uses PyTorch's.
Dropout = nn.Dropout
'''

GLUE = '''
def make_norm(config: GPTConfig) -> nn.Module:
    return LayerNorm(config.n_embd, config.bias)


def make_attention(config: GPTConfig) -> nn.Module:
    return MultiHeadAttention(config.n_embd, config.n_head, config.dropout, config.bias)


def make_feed_forward(config: GPTConfig) -> nn.Module:
    return FeedForward(config)


def make_positions(config: GPTConfig) -> nn.Module:
    return LearnedPositions(config.block_size, config.n_embd)
'''

MAIN = '''
URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"


SHA256 = "{sha256}"  # of the file the book's registry trusts


def load_text() -> str:
    """tinyshakespeare: from the data mirror ($BUILDGPT_DATA_MIRROR) if it has it, else ./input.txt,
    downloaded and checked the first time (a download cut short never becomes input.txt)."""
    mirror = Path(os.environ.get("BUILDGPT_DATA_MIRROR", ".")) / "tinyshakespeare" / "input.txt"
    if mirror.is_file():
        return mirror.read_text(encoding="utf-8")
    local, partial = Path("input.txt"), Path("input.txt.part")
    if not local.is_file():
        try:
            urllib.request.urlretrieve(URL, partial)
        except OSError as e:
            raise SystemExit(f"could not download {URL} ({e}): save it by hand as {local.resolve()}") from None
        if hashlib.sha256(partial.read_bytes()).hexdigest() != SHA256:
            raise SystemExit(f"{partial} is not the expected file (its sha256 differs): delete it and try again")
        partial.replace(local)
    return local.read_text(encoding="utf-8")


@torch.no_grad()
def estimate_loss(model: GPT, splits: dict, config: TrainConfig, device: str) -> dict[str, float]:
    """The mean loss of `eval_iters` random batches of each split, in eval mode (one batch is noisy)."""
    model.eval()
    losses = {name: sum(model(*get_batch(data, config.batch_size, model.config.block_size, device))[1].item()
                        for _ in range(config.eval_iters)) / config.eval_iters for name, data in splits.items()}
    model.train()
    return losses


def train(model: GPT, splits: dict, config: TrainConfig, device: str) -> None:
    """nanoGPT's loop: evaluate now and then, set this step's learning rate, step on a batch."""
    optimizer = make_optimizer(model, config, device)
    generator = torch.Generator().manual_seed(config.seed)
    for step in range(config.max_iters + 1):
        if step % config.eval_interval == 0 or step == config.max_iters:
            losses = estimate_loss(model, splits, config, device)
            print(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}", flush=True)
        if step == config.max_iters:
            return
        for group in optimizer.param_groups:
            group["lr"] = config.lr_at(step)
        _, loss = model(*get_batch(splits["train"], config.batch_size, model.config.block_size, device, generator))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()


@torch.no_grad()
def generate(model: GPT, idx: torch.Tensor, max_new_tokens: int, **sampling) -> torch.Tensor:
    """The lecture's sampling loop: crop to the window, predict the next token, sample it, append."""
    model.eval()
    for _ in range(max_new_tokens):
        logits, _ = model(idx[:, -model.config.block_size:])  # (B, T, V), T at most block_size
        idx = torch.cat((idx, sample_next(logits[:, -1, :], **sampling)), dim=1)  # (B, T + 1)
    return idx


def main() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    profile = os.environ.get("BUILDGPT_PROFILE", "").strip().lower() or ("gpu" if device == "cuda" else "cpu")
    if profile not in PROFILES:
        raise SystemExit(f"BUILDGPT_PROFILE is {profile!r}: use one of {', '.join(PROFILES)}")
    model_config, train_config = PROFILES[profile]
    text = load_text()
    tokenizer = CharTokenizer.from_text(text)
    train_data, val_data = train_val_split(torch.tensor(tokenizer.encode(text), dtype=torch.long))
    torch.manual_seed(train_config.seed)
    model = GPT(replace(model_config, vocab_size=tokenizer.vocab_size)).to(device)
    print(f"profile {profile} on {device}: {model.num_params():,} parameters")
    train(model, {"train": train_data, "val": val_data}, train_config, device)
    prompt = torch.tensor([tokenizer.encode("\\n")], device=device)  # (1, 1): a newline to start from
    out = generate(model, prompt, 500, temperature=0.8, top_k=40, generator=torch.Generator(device).manual_seed(7))
    print(tokenizer.decode(out[0].tolist()))


if __name__ == "__main__":
    main()
'''


def assemble() -> str:
    parts = [
        HEADER,
        "# ---- the data: characters to ids, a train/val split, random windows (chapter 1)",
        piece(chars.CharTokenizer, drop=("save", "load", "not chars", "not text", "for i in ids", "ids", CHARS_CHECK),
              edits=((ENCODE_CHECK, "return [self.stoi[c] for c in text]"),)),
        piece(batches.train_val_split, drop=("not 0 < train_fraction < 1",)),
        piece(batches.get_batch, edits=(("    check_fits_one_window(len(data), block_size)\n", ""),)),
        "# ---- the model: attention (chapter 2), then the GPT (chapter 3)",
        f"IGNORE_INDEX = {loss.IGNORE_INDEX}  # a target equal to this is not scored", piece(loss.cross_entropy),
        piece(attention.causal_mask), piece(attention.attention_weights),
        piece(attention.Head, drop=("self.last_weights",)), piece(attention.MultiHeadAttention, drop=("n_embd % n_head", "last_weights")),
        piece(norms.LayerNorm, edits=(("the same function as `layer_norm` (tested\n    equal) in",
                                        "the same function as chapter 3's written-out\n    `layer_norm` in"),)), piece(positions.LearnedPositions, drop=("start + T > self.num_embeddings",)),
        piece(model.GPTConfig, drop=(*unused(model.GPTConfig, MODEL_FIELDS), "__post_init__", "to_dict", "from_dict"),
              edits=(("@dataclass(frozen=True)  # shared presets: change a copy (dataclasses.replace), never in place",
                      "@dataclass(frozen=True)"), ("one of MLPS (exercise 4)", '"relu" or "gelu"'))),
        piece(model.FeedForward, drop=("config.mlp not in ('relu', 'gelu')",)), GLUE, piece(model.Block),
        piece(model.GPT, drop=("attention_maps", "isinstance(module, ScaledEmbedding)"), edits=(
            ('embedding = ScaledEmbedding if config.position == "sinusoidal_paper" else nn.Embedding\n'
             "        self.token_embedding = embedding(", "self.token_embedding = nn.Embedding("),)),
        "# ---- training and sampling (chapter 3)",
        piece(loop.TrainConfig, drop=(*unused(loop.TrainConfig, TRAIN_FIELDS), "__post_init__"), edits=(
            ("evaluate (and checkpoint) every", "evaluate every"), ("sequences per micro-batch, per process",
                                                                     "sequences per step"))),
        piece(loop.make_optimizer, edits=((" (benchmarks/bench_gpt_cpu.py times it)", ""),)),
        piece(sampling.sample_next, drop=("top_p is not None and top_p < 1",), edits=(
            ("top_k: int | None = None,\n                top_p: float | None = None, generator",
             "top_k: int | None = None,\n                generator"),
            ("top-k keeps the k likeliest tokens; top-p keeps the smallest set whose probability\n"
             "    reaches p. Both cut off", "top-k keeps the k likeliest tokens: it cuts off"))),
        profile_sizes(),
        MAIN.replace("{sha256}", registry.get("tinyshakespeare").sha256),
    ]
    return "\n\n".join(part.strip("\n") + "\n" for part in parts)


def notebook(source: str):
    """gpt.py as a notebook: its docstring as the title, a heading and a cell per section, and the
    run in the last cell, so the sample is at the bottom."""
    import nbformat.v4 as nbf

    docstring, _, rest = source.partition('"""\n\n')
    title, _, about = docstring.strip('"\n').partition("\n")
    cells = [nbf.new_markdown_cell(f"# {title}\n\n{about.strip()}")]
    body, _, run = rest.rpartition('if __name__ == "__main__":\n')
    for section in body.split("# ---- "):
        heading, _, code = section.partition("\n") if cells[1:] else ("", "", section)
        if heading:
            cells.append(nbf.new_markdown_cell(f"## {heading[0].upper()}{heading[1:]}"))
        cells.append(nbf.new_code_cell(code.strip()))
    cells += [nbf.new_markdown_cell("## Train, then sample"), nbf.new_code_cell(run.strip())]
    return nbf.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                  "language": "python"}})


def write(folder: Path, execute: bool = False, timeout: int = 900, env: dict[str, str] | None = None) -> None:
    """gpt.py and gpt.ipynb into `folder`; with `execute`, the notebook is run there (its sample at the
    bottom) under the active profile, in a fresh kernel with `env` (default: this process's environment).

    Without `execute`, an executed gpt.ipynb of this very code already in `folder` is kept: the one the
    book's runner (scripts/build_book.py) executed beside the chapters.
    """
    import nbformat

    folder.mkdir(parents=True, exist_ok=True)
    source = assemble()
    (folder / "gpt.py").write_text(source)
    book = notebook(source)
    target = folder / "gpt.ipynb"
    if not execute and target.is_file() and is_executed_copy(nbformat.read(target, as_version=4), book):
        return
    if execute:
        from nbclient import NotebookClient

        NotebookClient(book, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(folder)}}).execute(**({"env": env} if env else {}))
    nbformat.write(book, target)


def is_executed_copy(executed, fresh) -> bool:
    """Whether `executed` has `fresh`'s cells, the same sources in the same order, and outputs in its last code
    cell (the sample at the bottom, which runs last)."""
    def sources(nb):
        return [(cell.cell_type, cell.source) for cell in nb.cells]

    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    return sources(executed) == sources(fresh) and bool(code) and bool(code[-1].get("outputs"))


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print("usage: python -m buildgpt_book.takeaway OUTDIR [--execute]", file=sys.stderr)
        return 2
    write(Path(argv[0]), execute="--execute" in argv[1:])
    print(Path(argv[0]) / "gpt.ipynb")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
