"""GPT speed on the CPU, side by side with the references, reported as ratios.

    .venv/bin/python benchmarks/bench_gpt_cpu.py                 # all four parts (well over an hour on 2 cores: same-loss alone is about 50 min)
    .venv/bin/python benchmarks/bench_gpt_cpu.py --part time-to-2.0
    .venv/bin/python benchmarks/bench_gpt_cpu.py --part sampling --part train-step

time-to-2.0  Wall clock from process start until a model's loss on the *whole* validation
             split (111,540 characters) is known to be below 2.0. Ours: the `fast` recipe,
             evaluated once at the end. Reference: nanoGPT's documented CPU recipe (4 layers,
             4 heads, 128 wide, context 64, batch 12, lr 1e-3, 2000 iterations) through our
             trainer in the same run, scored on the whole split every 100 steps; its clock
             excludes that scoring (in its favour).
sampling     500 new tokens from the 10.8M-parameter model: nanoGPT's sampler (no cache), ours
             without and with the KV cache, with the cache plus float16 weights for the
             one-token steps (`buildgpt.infer.half_weights`), and the compiled decoder (one
             compiled step over a static cache, int8 weights, `buildgpt.infer.compiled_decode`),
             whose compile time is printed apart. Then the bytes a compiled step reads, as GB/s,
             against this machine's read bandwidth (a sum over 512 MB).
train-step   Seconds per training step of the 10.8M model at batch 16 x 256, for the
             per-head, batched and fused attention paths in float32, and the fused path in
             the precision the trainer picks (bfloat16 autocast on a CPU with native bfloat16,
             train/precision.py), with dropout 0.2 (the lecture's) and 0.0 (nanoGPT's
             default), next to nanoGPT's model timed in the same run (float32, as nanoGPT's
             train.py runs on a CPU) and to its documented figure on this kind of machine
             (1.96 s/step, dropout unstated).
same-loss    The same model trained --steps steps (500 by default; about 25 minutes per seed)
             by our trainer in float32 and in the precision it picks, two seeds (batches and
             dropout): the val loss on the whole split, whose difference must stay within
             what the seeds alone move it.

The nanoGPT reference is `nanogpt_reference.py`: nanoGPT's operations re-created (it cannot be
fetched offline), with its 10.65M parameters.

Each recipe of time-to-2.0 runs in its own Python process, so "from process start" includes
importing torch and loading the data. Numbers are medians or single runs as printed; the
machine should be otherwise idle.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

PROCESS_START = time.perf_counter()

sys.path.insert(0, str(Path(__file__).parent))  # nanogpt_reference, when run from the repository root
import torch  # noqa: E402  (imported after the clock starts, on purpose)

TRAINERS_PATH = "ours, fused, trainer's precision"  # bfloat16 autocast where train/precision.py picks it
NANOGPT_STEP_SECONDS = 1.96  # nanoGPT, 10.65M params, batch 16 x 256: the project's reference figure for a 2-core CPU
RECIPES = {
    # Ours: one wide layer, a large learning rate with warmup and cosine decay, 500 steps.
    "fast": dict(model=dict(n_layer=1, n_head=4, n_embd=128, block_size=64, dropout=0.0, mlp="gelu"),
                 train=dict(max_iters=500, eval_interval=500, eval_iters=1, batch_size=32,
                            learning_rate=6e-3, min_lr=6e-4, warmup_iters=50, decay_lr=True, grad_clip=1.0)),
    # nanoGPT's README CPU recipe (config/train_shakespeare_char.py with the command-line overrides).
    "nanogpt-cpu": dict(model=dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0, mlp="gelu",
                                   bias=False),
                        train=dict(max_iters=2000, eval_interval=100, eval_iters=1, batch_size=12,
                                   learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, decay_lr=True,
                                   weight_decay=0.1, grad_clip=1.0)),
}


def shakespeare():
    from buildgpt.data import batches, registry
    from buildgpt.tokenizers import chars

    text = registry.load_text("tinyshakespeare")
    tokenizer = chars.CharTokenizer.from_text(text)
    train_data, val_data = batches.train_val_split(torch.tensor(tokenizer.encode(text), dtype=torch.long))
    return tokenizer, train_data, val_data


def run_recipe(name: str) -> dict:
    """Train one recipe in this process; report when the whole-split val loss first fell below 2.0."""
    from buildgpt.data.batches import TokenBatches
    from buildgpt.nn.model import GPT, GPTConfig
    from buildgpt.train import evaluate, loop

    recipe = RECIPES[name]
    tokenizer, train_data, val_data = shakespeare()
    torch.manual_seed(1337)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, **recipe["model"]))
    config = loop.TrainConfig(**recipe["train"])
    scoring = {"seconds": 0.0, "first_below": None, "val": []}

    def score(step: int, history: loop.History) -> None:
        if step == 0:
            return  # the untrained model: nothing to learn from scoring it
        start = time.perf_counter()
        val = evaluate.split_loss(model, val_data, model.config.block_size, batch_size=256)
        now = time.perf_counter()
        scoring["val"].append((step, val))
        if val < 2.0 and scoring["first_below"] is None:
            # the clock includes this scoring, but not earlier ones that found nothing
            scoring["first_below"] = {"step": step, "val": val,
                                      "seconds": now - PROCESS_START - scoring["seconds"]}
        scoring["seconds"] += now - start

    loop.train(model, TokenBatches(train_data, val_data, model.config.block_size), config, progress=False,
               on_eval=score)
    return {"recipe": name, "params": model.num_params(), "final_val": scoring["val"][-1][1],
            "first_below_2": scoring["first_below"], "total_seconds": time.perf_counter() - PROCESS_START}


def time_to_2() -> None:
    results = {}
    for name in RECIPES:
        out = subprocess.run([sys.executable, __file__, "--run-recipe", name], capture_output=True, text=True,
                             check=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print("\n## time to val < 2.0 on the whole validation split (2 CPU cores, from process start)")
    print("| recipe | params | final val | first < 2.0 at step | seconds |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        first = r["first_below_2"]
        when = f"{first['step']} | {first['seconds']:.1f}" if first else "never | -"
        print(f"| {name} | {r['params']:,} | {r['final_val']:.4f} | {when} |")
    ours, ref = results["fast"]["first_below_2"], results["nanogpt-cpu"]["first_below_2"]
    if ours and ref:
        print(f"ratio (nanoGPT recipe / ours): {ref['seconds'] / ours['seconds']:.2f}x faster")


def lecture_model(attention: str, dropout: float = 0.2):
    from buildgpt.nn.model import GPT
    from buildgpt.settings.presets import LECTURE_MODEL

    torch.manual_seed(0)
    return GPT(replace(LECTURE_MODEL, dropout=dropout, attention=attention))


def reference_model(dropout: float = 0.2):
    from nanogpt_reference import ReferenceGPT

    torch.manual_seed(0)
    return ReferenceGPT(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=dropout)


def tokens_per_second(generate, new_tokens: int, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = generate()
        rates.append(new_tokens / (time.perf_counter() - start))
        assert out.shape == (1, 1 + new_tokens)
    return statistics.median(rates)


def read_bandwidth(megabytes: int = 512, repeats: int = 5) -> float:
    """Bytes per second this machine reads: the best of `repeats` sums over a buffer far larger than its caches."""
    buffer = torch.ones(megabytes * 2**20 // 4)
    buffer.sum()
    best = min(timed(buffer.sum) for _ in range(repeats))
    return buffer.numel() * 4 / best


def timed(f) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def sampling(new_tokens: int = 500) -> None:
    from buildgpt.infer.compiled_decode import CompiledDecoder
    from buildgpt.infer.generate import generate
    from buildgpt.infer.half_weights import with_half_weights
    from buildgpt.infer.quantize import weight_bytes

    model = lecture_model("fused").eval()
    fast = with_half_weights(model)
    reference = reference_model().eval()
    prompt = torch.zeros((1, 1), dtype=torch.long)  # nanoGPT's sample.py starts from "\n" too

    def ours(m, use_cache):
        return lambda: generate(m, prompt, new_tokens, temperature=1.0, use_cache=use_cache,
                                  generator=torch.Generator().manual_seed(0))

    start = time.perf_counter()
    decoder = CompiledDecoder(model, "int8")
    decoder.generate(prompt, 2)
    compile_seconds = time.perf_counter() - start
    rates = {  # the uncached runs take ~20 s each: one run; the cached ones: median of three
        "nanoGPT (reference), no cache": tokens_per_second(
            lambda: reference.sample(prompt, new_tokens, torch.Generator().manual_seed(0)), new_tokens, 1),
        "ours, no cache": tokens_per_second(ours(model, False), new_tokens, 1),
        "ours, KV cache": tokens_per_second(ours(model, True), new_tokens, 3),
        "ours, KV cache + float16 weights for one-token steps": tokens_per_second(ours(fast, True), new_tokens, 3),
        "ours, compiled step, static cache, int8 weights": tokens_per_second(
            lambda: decoder.generate(prompt, new_tokens, generator=torch.Generator().manual_seed(0)), new_tokens, 5),
    }
    print(f"\n## sampling {new_tokens} tokens, 10.8M model, CPU")
    print("| sampler | tokens/s | vs ours, no cache | vs nanoGPT |\n|---|---:|---:|---:|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.1f} | {rate / rates['ours, no cache']:.1f}x "
              f"| {rate / rates['nanoGPT (reference), no cache']:.1f}x |")
    config = model.config  # a step reads every weight and every slot of the static cache (keys and values, float32)
    weights, cache = weight_bytes(decoder.model), 2 * config.n_layer * config.block_size * config.n_embd * 4
    compiled = rates["ours, compiled step, static cache, int8 weights"]
    print(f"compiled decoder: {compile_seconds:.1f} s to compile, once per process; each step reads "
          f"{weights / 1e6:.1f} MB of weights and {cache / 1e6:.1f} MB of cache: "
          f"{(weights + cache) * compiled / 1e9:.1f} GB/s, against {read_bandwidth() / 1e9:.1f} GB/s "
          "read by a plain sum on this machine")


def train_step(repeats: int = 6) -> None:
    from buildgpt.train import precision
    from buildgpt.train.loop import TrainConfig, make_optimizer

    x = torch.randint(65, (16, 256), generator=torch.Generator().manual_seed(0))
    y = torch.randint(65, (16, 256), generator=torch.Generator().manual_seed(1))
    print(f"\n## training step, 10.8M model, batch 16 x 256, CPU (median of {repeats} steps, models interleaved)")
    print(f"The nanoGPT stand-in has {reference_model(0.0).non_embedding_params() / 1e6:.2f}M non-embedding "
          "parameters, the count nanoGPT prints.\n")
    print(f"| model | dropout | s/step | speed vs nanoGPT (same run) | vs nanoGPT's documented "
          f"{NANOGPT_STEP_SECONDS} s |\n|---|---:|---:|---:|---:|")
    for dropout in (0.2, 0.0):  # the lecture trains with 0.2; nanoGPT's default is 0.0
        runs = {}
        for name in ("nanoGPT (reference)", "ours, per_head", "ours, batched", "ours, fused", TRAINERS_PATH):
            if name.startswith("nanoGPT"):
                model = reference_model(dropout).train()
                optimizer = model.optimizer(weight_decay=0.1)
            else:
                model = lecture_model(name.split(", ")[1], dropout).train()
                optimizer = make_optimizer(model, TrainConfig(weight_decay=0.1), "cpu")
            # float32 but for the trainer's own choice (train/precision.py), as loop.train would step it here
            context = precision.autocast(model, "cpu", None if name == TRAINERS_PATH else False)
            runs[name] = (model, optimizer, context, [])

        def step(model, optimizer, context) -> float:
            start = time.perf_counter()
            with context:
                _, loss = model(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return time.perf_counter() - start

        for repeat in range(repeats + 1):  # round-robin, so drifts in machine speed hit every model alike
            for model, optimizer, context, times in runs.values():
                seconds = step(model, optimizer, context)
                if repeat:  # the first round warms up
                    times.append(seconds)
        reference = statistics.median(runs["nanoGPT (reference)"][-1])
        for name, (*_, times) in runs.items():
            seconds = statistics.median(times)
            print(f"| {name} | {dropout} | {seconds:.2f} | {reference / seconds:.2f}x "
                  f"| {NANOGPT_STEP_SECONDS / seconds:.2f}x |")


def same_loss(steps: int, seeds: tuple[int, ...] = (0, 1)) -> None:
    """The 10.8M model (dropout 0.2) trained `steps` steps at batch 16 x 256 by loop.train, in float32 and with
    the trainer's own precision, each seed's val loss on the whole split: reduced precision must stay within
    the spread that seeds alone cause."""
    from buildgpt.data.batches import TokenBatches
    from buildgpt.train import evaluate, loop, precision

    _, train_data, val_data = shakespeare()
    config = loop.TrainConfig(max_iters=steps, eval_interval=steps, eval_iters=5, batch_size=16, learning_rate=1e-3,
                              warmup_iters=min(100, steps // 10), decay_lr=True, min_lr=1e-4, beta2=0.99,
                              weight_decay=0.1, grad_clip=1.0)
    chosen = "bfloat16 autocast" if precision.use_bf16(lecture_model("fused"), "cpu") else "float32"
    print(f"\n## same loss: {steps} steps, 10.8M model, batch 16 x 256, val loss on the whole split")
    print(f"| seed | float32 | trainer's choice ({chosen}) | difference | s/step float32 | s/step choice |")
    print("|---:|---:|---:|---:|---:|---:|")
    losses = {}
    for seed in seeds:
        row = []
        for bf16 in (False, None):
            model = lecture_model("fused")
            batches = TokenBatches(train_data, val_data, model.config.block_size)
            start = time.perf_counter()
            loop.train(model, batches, replace(config, seed=seed, bf16=bf16), progress=False)
            seconds = (time.perf_counter() - start) / steps
            row.append((evaluate.split_loss(model, val_data, model.config.block_size, batch_size=64), seconds))
        losses[seed] = row
        (fp32, fp32_s), (ours, ours_s) = row
        print(f"| {seed} | {fp32:.4f} | {ours:.4f} | {ours - fp32:+.4f} | {fp32_s:.2f} | {ours_s:.2f} |")
    fp32_losses = [row[0][0] for row in losses.values()]
    print(f"spread of float32 across seeds: {max(fp32_losses) - min(fp32_losses):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", action="append", choices=["time-to-2.0", "sampling", "train-step", "same-loss"])
    parser.add_argument("--steps", type=int, default=500, help="same-loss: training steps per run")
    parser.add_argument("--run-recipe", choices=sorted(RECIPES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_recipe:
        print(json.dumps(run_recipe(args.run_recipe)))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    parts = args.part or ["time-to-2.0", "sampling", "train-step", "same-loss"]
    for part in parts:
        {"time-to-2.0": time_to_2, "sampling": sampling, "train-step": train_step,
         "same-loss": lambda: same_loss(args.steps)}[part]()


if __name__ == "__main__":
    main()
