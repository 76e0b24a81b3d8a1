"""The command line: train a preset, then sample from its checkpoint as it generates.

    buildgpt train shakespeare-char                  # sizes follow BUILDGPT_PROFILE
    buildgpt sample checkpoints/shakespeare-char/best.safetensors --prompt "ROMEO:"
    buildgpt quantize checkpoints/shakespeare-char/best.safetensors --format int8   # then sample from it
    buildgpt train calculator                        # exercise 2: + - * / with the working shown
    buildgpt calc checkpoints/calculator/best.safetensors "47*36"   # no expression: one per line from stdin
    buildgpt chat checkpoints/assistant/last.safetensors   # talk to the assistant page's model; /reset, /quit
    buildgpt train novels-char                       # exercise 3: pretrain on the novels
    buildgpt train shakespeare-char --init-from checkpoints/novels-char/best.safetensors --out-dir checkpoints/tuned
    torchrun --nproc-per-node 2 -m buildgpt.cli train shakespeare-char --out-dir checkpoints/ddp [--fsdp]   # N processes
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import torch

from .cli_parser import WEIGHTS, build_parser, expression_not_option
from .data import registry
from .data.arithmetic import OPS, VOCAB, ArithmeticBatches, ArithmeticFormat, held_out_problems
from .data.batches import TokenBatches, train_val_split
from .data.prepared import PreparedCorpusError, prepare_corpus
from .infer.calculator import Calculator, CalculatorInputError, accuracy_by_operation, calculator_meta
from .infer.chat_session import ChatSession, run_repl
from .infer.compiled_decode import WEIGHTS as COMPILED_WEIGHTS
from .infer.compiled_decode import CompiledDecoder
from .infer.export_hf import export_hf
from .infer.generate import generate_stream
from .infer.load import char_tokenizer, load_char_model, load_for_sampling, load_model
from .infer.quantize import quantize_model, save_quantized, weight_bytes
from .infer.sampling import check_sampling_args
from .nn.model import GPT
from .settings import profiles
from .tokenizers.chars import CharTokenizer
from .train import checkpoint, distributed, objectives
from .train.evaluate import split_loss
from .train.loop import TrainConfig
from .train.stops import check_run_folder, train_or_exit_code


def run_config(schedule: TrainConfig, out_dir: str, resume: bool, max_iters: int | None, seed: int | None) -> TrainConfig:
    """The schedule with the command line's choices. Example: `run_config(s, "out", False, 9, None).max_iters` is 9."""
    config = replace(schedule, out_dir=out_dir, resume=resume)
    return replace(config, **{k: v for k, v in (("max_iters", max_iters), ("seed", seed)) if v is not None})


def preset_run(name: str, profile: profiles.Profile, seed: int | None, init_from: str | None):
    """What preset `name` trains: (model, tokenizer, batches, val tokens to score at the end or None, schedule).

    `novels-char` pretrains on the prepared novels; `shakespeare-char` trains from scratch, or
    with `init_from` finetunes a pretrained checkpoint with the finetuning schedule.
    Example: `model, tokenizer, batches, val, schedule = preset_run("novels-char", profiles.current(), None, None)`.
    """
    if name == "novels-char":
        settings = profile.settings("pretrain")
        corpus = prepare_corpus()
        tokenizer, schedule = CharTokenizer(corpus.chars), settings.pretrain
        torch.manual_seed(schedule.seed if seed is None else seed)  # the initial weights follow the run's seed
        model = GPT(replace(settings.model, vocab_size=tokenizer.vocab_size))
        return model, tokenizer, corpus.batches(model.config.block_size), None, schedule
    text = registry.load_text("tinyshakespeare")
    if init_from:
        model, tokenizer, _ = load_char_model(init_from, text=text)
        if not isinstance(tokenizer, CharTokenizer):  # a chat model's special tokens have no place in plain text
            raise ValueError(f"{init_from} is chat-tuned; --init-from finetunes a plain character model, "
                             "such as checkpoints/novels-char/best.safetensors")
        schedule = profile.settings("pretrain").finetune
        torch.manual_seed(schedule.seed if seed is None else seed)  # dropout
    else:
        settings = profile.settings("gpt")
        tokenizer, schedule = CharTokenizer.from_text(text), settings.train
        torch.manual_seed(schedule.seed if seed is None else seed)
        model = GPT(replace(settings.model, vocab_size=tokenizer.vocab_size))
    train_data, val_data = train_val_split(torch.tensor(tokenizer.encode(text), dtype=torch.long))
    return model.train(), tokenizer, TokenBatches(train_data, val_data, model.config.block_size), val_data, schedule


def train_preset(name: str, out_dir: str | None, resume: bool | None, max_iters: int | None, seed: int | None,
                 fsdp: bool = False, init_from: str | None = None) -> int:
    """`buildgpt train PRESET`. Example: `train_preset("novels-char", None, False, 100, None)` trains 100 steps."""
    out_dir = out_dir or f"checkpoints/{name}"
    resume = check_run_folder(out_dir, resume)
    profile = profiles.current()
    d = distributed.start(profile.device, force=fsdp)  # one process, or one of torchrun's
    if d.world_size > 1:  # rank 0's decision for every rank (--resume-if-exists); a rank that cannot follow says so
        resume = check_run_folder(out_dir, distributed.rank_zero_value(resume))
    model, tokenizer, batches, val_data, schedule = preset_run(name, profile, seed, init_from)
    config = run_config(schedule, out_dir, resume, max_iters, seed)
    if d.is_main:  # only rank 0 speaks
        print(f"{name}: {model.num_params() / 1e6:.2f}M parameters, seed {config.seed}, {profile.describe()}, "
              f"{d.describe()}{', FSDP2' if fsdp else ''}", file=sys.stderr)
    runner = distributed.wrap(model, d, fsdp)  # DDP, FSDP2, or the model itself
    meta = {"tokenizer": {"type": "char", "chars": tokenizer.chars}, "preset": name, "init_from": init_from}
    history = train_or_exit_code(runner, batches, config, d.device, meta)
    if isinstance(history, int):
        return history
    scored = ""
    if val_data is not None:  # the novels' val split is too long to score whole on a CPU; its estimate is logged
        full_val = split_loss(runner, val_data, model.config.block_size, device=d.device)  # every rank: FSDP2 gathers
        scored = f"; final loss on the whole val split {full_val:.4f}"
    if d.is_main:
        print(f"best val loss {history.best_val:.4f} at step {history.best_step}{scored}; checkpoints in {config.out_dir}")
    return 0


def train_calculator(out_dir: str | None, resume: bool | None, max_iters: int | None, seed: int | None, fsdp: bool = False,
                     init_from: str | None = None) -> int:
    """`buildgpt train calculator`. Example: `train_calculator(None, False, 200, seed=1)` trains 200 steps."""
    if distributed.under_torchrun() or fsdp or init_from:  # under torchrun each process would write the same files
        raise ValueError("the calculator trains from scratch in one process: leave out torchrun, --fsdp and --init-from")
    out_dir = out_dir or "checkpoints/calculator"
    resume = check_run_folder(out_dir, resume)
    profile = profiles.current()
    settings = profile.settings("calculator")
    fmt = ArithmeticFormat(reverse=True, width=settings.digits, trace=settings.trace)
    held_out = held_out_problems(settings.n_test, settings.digits, OPS, seed=0)
    batches = ArithmeticBatches(fmt, settings.digits, held_out, settings.train_ops, mask=True)
    if batches.length > settings.run.model.block_size:
        raise ValueError(f"the longest problem has {batches.length} tokens; the model's block_size is "
                         f"{settings.run.model.block_size}")
    config = run_config(settings.run.train, out_dir, resume, max_iters, seed)
    torch.manual_seed(config.seed)  # the initial weights follow the run's seed
    model = GPT(replace(settings.run.model, vocab_size=len(VOCAB)))
    print(f"calculator: {model.num_params() / 1e6:.2f}M parameters, operands of up to {settings.digits} digits, "
          f"{' '.join(OPS)}, seed {config.seed}, {profile.describe()}", file=sys.stderr)
    history = train_or_exit_code(model, batches, config, profile.device, calculator_meta(fmt, settings.digits, OPS),
                                 loss_fn=objectives.unpadded_loss)  # the same loss, without running the padding
    if isinstance(history, int):
        return history
    best = f"{config.out_dir}/best.safetensors"
    calc = Calculator.from_checkpoint(best, profile.device)
    scores = accuracy_by_operation(calc.model, held_out, calc.fmt)
    print(f"best val loss {history.best_val:.4f} at step {history.best_step}; checkpoints in {config.out_dir}")
    print(f"held-out exact match of {best}: " + ", ".join(f"{op} {acc:.1%} ({n})" for op, (acc, n) in scores.items()))
    return 0


def calc(path: str, expression: str | None) -> int:
    """`buildgpt calc`: one expression, or one per line of stdin. Example: `calc("calc.safetensors", "12*34")`."""
    calculator = Calculator.from_checkpoint(path, "cuda" if torch.cuda.is_available() else "cpu")
    if expression is not None:
        calculator.solve(expression, sys.stdout, sys.stderr)
        return 0
    tty = sys.stdin.isatty()
    if tty:
        print(f"a calculator trained on {' '.join(calculator.ops)} with operands of up to {calculator.digits} digits; "
              "one expression per line, 'quit' or Ctrl-D to end", file=sys.stderr)
    _, refused = calculator.interactive(sys.stdin, sys.stdout, sys.stderr, prompt="calc> " if tty else "")
    return 2 if refused and not tty else 0  # a script reading the answers learns that some lines were bad


def quantize(path: str, format: str, out: str | None) -> int:
    """`buildgpt quantize`. Example: `quantize("run/best.safetensors", "int8", None)` writes best.int8.safetensors."""
    format = WEIGHTS.get(format, format)
    target = out or str(Path(path).with_suffix(f".{format}.safetensors"))
    if Path(target).exists():  # it could be the float32 checkpoint itself, or another run's
        raise ValueError(f"{target} exists, and quantize replaces no file: give another --out, or move it aside")
    model, ckpt = load_model(path, "cpu", weights="fp32")
    quantized = quantize_model(model, format)
    save_quantized(target, quantized, ckpt.meta, ckpt.step)
    print(f"{format} weights of {path}: {weight_bytes(quantized) / 1e6:.2f} MB "
          f"(float32: {weight_bytes(model) / 1e6:.2f} MB), written to {target}")
    return 0


def sample(path: str, prompt: str, max_new_tokens: int, temperature: float, top_k: int | None,
           top_p: float | None, seed: int | None, use_cache: bool, weights: str | None = None,
           compiled: bool = False) -> int:
    """`buildgpt sample`. Example: `sample("run/best.safetensors", "ROMEO:", 100, 0.8, 40, None, 1, True)`."""
    check_sampling_args(max_new_tokens, temperature, top_k, top_p)  # before the prompt is printed
    device = "cpu" if compiled or not torch.cuda.is_available() else "cuda"
    if compiled and (top_k or top_p or not use_cache or (weights or "int8") not in COMPILED_WEIGHTS):
        raise ValueError("--compile samples with temperature only, from the cache, with --weights int8 (the default) "
                         "or fp32: drop --top-k, --top-p, --no-cache and other --weights, or drop --compile")
    weights = WEIGHTS.get(weights, weights)
    model, ckpt = load_model(path, device, "fp32") if compiled else load_for_sampling(path, device, weights, use_cache)
    tokenizer = char_tokenizer(ckpt, path)
    ids = tokenizer.encode(prompt or "\n")
    if len(ids) > model.config.block_size:
        print(f"(the prompt has {len(ids)} tokens; only its last {model.config.block_size} fit the "
              "context window and are used)", file=sys.stderr)
    generator = torch.Generator(device).manual_seed(seed) if seed is not None else None
    print(prompt, end="", flush=True)
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    stream = (CompiledDecoder(model, weights or "int8").generate_stream(idx, max_new_tokens, temperature, generator)
              if compiled else generate_stream(model, idx, max_new_tokens, temperature=temperature, top_k=top_k,
                                               top_p=top_p, use_cache=use_cache, generator=generator))
    for next_id in stream:
        print(tokenizer.decode(next_id[0].tolist()), end="", flush=True)
    print()
    return 0


def chat(path: str, temperature: float, top_k: int | None, max_new_tokens: int, device: str | None) -> int:
    """`buildgpt chat`. Example: `chat("checkpoints/assistant/last.safetensors", 0.0, None, 256, "cpu")`."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    run_repl(ChatSession.from_checkpoint(path, device, temperature=temperature, top_k=top_k,
                                         max_new_tokens=max_new_tokens))
    return 0  # Ctrl-C at the prompt ends the session as Ctrl-D does


def main(argv: list[str] | None = None) -> int:
    """The `buildgpt` command, its exit code returned. Example: `main(["sample", "run/best.safetensors"])` is 0."""
    args = build_parser().parse_args(expression_not_option(sys.argv[1:] if argv is None else argv))
    try:
        if args.command == "train" and args.preset == "calculator":
            return train_calculator(args.out_dir, args.resume, args.max_iters, args.seed, args.fsdp, args.init_from)
        if args.command == "train":
            if args.init_from and args.preset != "shakespeare-char":
                raise ValueError("--init-from finetunes on tinyshakespeare: use it with the shakespeare-char preset")
            return train_preset(args.preset, args.out_dir, args.resume, args.max_iters, args.seed, args.fsdp,
                                args.init_from)
        if args.command == "calc":
            return calc(args.checkpoint, args.expression)
        if args.command == "chat":
            return chat(args.checkpoint, args.temperature, args.top_k, args.max_new_tokens, args.device)
        if args.command == "export-hf":
            try:
                print(f"wrote {export_hf(args.checkpoint, args.out_dir, overwrite=args.overwrite)}")
            except ModuleNotFoundError as missing:
                raise ValueError(f"export-hf needs {missing.name}: pip install transformers tokenizers") from None
            except FileExistsError as e:
                raise ValueError(str(e).replace("pass overwrite=True", "pass --overwrite")) from None
            return 0
        if args.command == "quantize":
            return quantize(args.checkpoint, args.format, args.out)
        return sample(args.checkpoint, args.prompt, args.max_new_tokens, args.temperature, args.top_k,
                      args.top_p, args.seed, not args.no_cache, args.weights, args.compile)
    except (ValueError, CalculatorInputError, checkpoint.CheckpointError, registry.DatasetError,
            PreparedCorpusError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except PermissionError as e:  # a folder we may not write in (training checks its own before it starts)
        where = Path(e.filename).parent if e.filename else "a folder it needs"
        print(f"error: cannot write in {where}: permission denied; choose a folder you can write to", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while sampling or calculating (training says what it kept itself)
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output stopped (`| head`): stop quietly, as Unix tools do
        if argv is not None:  # called from Python, not as the command: the caller's stdout is theirs
            raise
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit fails no more
        os.close(devnull)
        return 141
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    sys.exit(main())
