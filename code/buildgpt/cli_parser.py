"""The `buildgpt` command's arguments: its subcommands and their flags, parsed here and run by cli.py."""

from __future__ import annotations

import argparse

from .infer.quantize import FORMATS

PRESETS = ("shakespeare-char", "novels-char")
WEIGHTS = {"int4": "q4_0"}  # the names people use for ggml's formats


def seed(text: str) -> int:
    """A `--seed`: a whole number from 0 to 2**63 - 1, so that the per-rank offsets added to it stay within what
    torch's generators take (below 2**64). Example: `seed("1337")` is 1337."""
    value = int(text)  # argparse turns a ValueError into "invalid seed value"
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0 to 2**63 - 1, got {text}")
    return value


def nonempty_path(text: str) -> str:
    """A file or folder name that is not empty (an empty one would silently mean the default, or the current
    folder). Example: `nonempty_path("checkpoints/run")` is "checkpoints/run"."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path: give a file or folder name")
    return text


def utf8_text(value: str) -> str:
    """Text from the command line, which must be UTF-8: a byte that is not reaches Python as a lone surrogate
    (U+DC80..U+DCFF), named here as the byte it was. Example: `utf8_text("ROMEO:")` is "ROMEO:"."""
    bad = next((i for i, c in enumerate(value) if 0xDC80 <= ord(c) <= 0xDCFF), None)
    if bad is not None:
        raise argparse.ArgumentTypeError(f"the byte 0x{ord(value[bad]) - 0xDC00:02X} at position {bad} is not UTF-8 "
                                         "text; give the text in UTF-8")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand of `buildgpt` and its flags. Example: `build_parser().parse_args(["calc", "c.safetensors", "1+2"])`."""
    parser = argparse.ArgumentParser(prog="buildgpt", description="Train a GPT and sample from it.")
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("train", help="train a preset; sizes follow BUILDGPT_PROFILE")
    t.add_argument("preset", choices=sorted([*PRESETS, "calculator"]))
    t.add_argument("--init-from", metavar="CHECKPOINT", type=nonempty_path,
                   help="shakespeare-char only: finetune this pretrained character model (e.g. novels-char's)")
    t.add_argument("--out-dir", type=nonempty_path, help="where checkpoints go (default: checkpoints/PRESET)")
    resume = t.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last.safetensors, which must exist "
                        "(without --resume, OUT_DIR must hold no run: a new run never writes over an earlier one)")
    resume.add_argument("--resume-if-exists", dest="resume", action="store_const", const=None, default=False,
                        help="continue from OUT_DIR/last.safetensors if there is one, else start: the same command "
                             "for a first launch and its restarts (torchrun --max-restarts, a requeued job)")
    t.add_argument("--max-iters", type=int, help="override the profile's number of steps")
    t.add_argument("--seed", type=seed, help="the run's seed: initial weights, batches, dropout (default: the profile's)")
    t.add_argument("--fsdp", action="store_true", help="shard the model with FSDP2 (under torchrun; default: DDP)")
    s = commands.add_parser("sample", help="generate text from a checkpoint, printing as it goes")
    s.add_argument("checkpoint", type=nonempty_path)
    s.add_argument("--prompt", type=utf8_text, default="", help="text to continue (default: a newline)")
    s.add_argument("--max-new-tokens", type=int, default=500)
    s.add_argument("--temperature", type=float, default=0.8, help="0 means greedy")
    s.add_argument("--top-k", type=int, default=None)
    s.add_argument("--top-p", type=float, default=None)
    s.add_argument("--seed", type=seed, default=None)
    s.add_argument("--no-cache", action="store_true", help="recompute the whole context every step")
    s.add_argument("--weights", choices=["fp32", "fp16", *FORMATS, *WEIGHTS],
                   help="weights to decode with (default: a float16 copy for the cached one-token steps, or the "
                        "checkpoint's own quantized format); int4 is q4_0")
    s.add_argument("--compile", action="store_true", help="one compiled decode step from a float32 checkpoint, "
                   "int8 weights by default (CPU; compiling takes seconds once, then each token is faster: for long "
                   "samples)")
    q = commands.add_parser("quantize", help="write a checkpoint's weights as int8, q8_0 or q4_0 (int4)")
    q.add_argument("checkpoint", type=nonempty_path)
    q.add_argument("--format", required=True, choices=[*FORMATS, *WEIGHTS])
    q.add_argument("--out", type=nonempty_path,
                   help="where to write it (default: beside it, e.g. best.int8.safetensors)")
    c = commands.add_parser("calc", help="a trained calculator: its working as it writes it, the answer, "
                                         "checked against Python")
    c.add_argument("checkpoint", type=nonempty_path)
    c.add_argument("expression", nargs="?", type=utf8_text,
                   help='a op b, e.g. "47*36" (operands of up to the digits it was trained on: 2 under cpu); '
                        "without it, one expression per line from stdin")
    h = commands.add_parser("chat", help="talk to a chat-tuned checkpoint, its answers streamed")
    h.add_argument("checkpoint", type=nonempty_path)
    h.add_argument("--temperature", type=float, default=0.8, help="0 means greedy")
    h.add_argument("--top-k", type=int, default=None)
    h.add_argument("--max-new-tokens", type=int, default=256, help="the longest answer, in tokens")
    h.add_argument("--device", help="cpu, cuda, ... (default: cuda if available)")
    e = commands.add_parser("export-hf", help="write a checkpoint as a Hugging Face transformers GPT-2 model and tokenizer")
    e.add_argument("checkpoint", type=nonempty_path)
    e.add_argument("out_dir", type=nonempty_path)
    e.add_argument("--overwrite", action="store_true",
                   help="replace an earlier export in OUT_DIR (a folder holding other files is refused)")
    return parser


def expression_not_option(argv: list[str]) -> list[str]:
    """`buildgpt calc CKPT -5+3`: an expression that starts with a minus is not an option (argparse would say so).

    Example: `expression_not_option(["calc", "c", "-5+3"])` is `["calc", "c", "--", "-5+3"]`."""
    if len(argv) >= 3 and argv[0] == "calc" and argv[2][:1] == "-" and argv[2][1:2].isdigit():
        return [*argv[:2], "--", *argv[2:]]
    return argv
