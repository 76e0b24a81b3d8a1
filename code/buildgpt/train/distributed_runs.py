"""The book's runs on many processes: each is started by torchrun and leaves what it measured in a folder.

    python -m torch.distributed.run --nproc-per-node 2 -m buildgpt.train.distributed_runs equivalence OUT

`equivalence` trains a few steps with the one training loop under DDP and then under FSDP2, the
whole batch split across the ranks (`RankSlices`), and keeps the weights after every step, the
bytes each rank holds, a sharded (DCP) checkpoint and the logits it should give. `throughput`
times rank 0 training alone, then all ranks together with DDP, and one all-reduce of the
gradients. OUT/spec.json says the model and schedule (`write_spec`); rank 0 writes OUT/*.pt.
Runs on the CPU over gloo unless the spec names "cuda".
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.distributed as dist

from ..data.batches import TokenBatches
from ..nn.model import GPT, GPTConfig
from ..utils.timing import seconds_per_call
from . import distributed, sharded
from .loop import TrainConfig, make_optimizer, rank_and_world_size, train
from .objectives import next_token_loss


class RankSlices:
    """Whole batches from a stream every rank shares; rank r of W keeps rows r, r+W, r+2W, ...

    Together the ranks see exactly the batches one process would, so their training can be
    compared with it. Example: `train(model, RankSlices(tokens, 32, seed=0), config)`.
    """

    def __init__(self, data: torch.Tensor, block_size: int, seed: int):
        self.source = TokenBatches(data, data, block_size)
        self.stream = torch.Generator().manual_seed(seed)  # the same on every rank

    def batch(self, split: str, batch_size: int, generator: torch.Generator | None = None):
        rank, world_size = rank_and_world_size()
        x, y = self.source.batch(split, batch_size * world_size, self.stream if split == "train" else generator)
        return x[rank::world_size], y[rank::world_size]


def write_spec(out: str | Path, model: GPTConfig, config: TrainConfig, device: str = "cpu") -> Path:
    """Put the run's model and schedule (`config.batch_size`: the whole batch, all ranks) in OUT/spec.json.

    Example: `out = write_spec(tmp, model_config, config)`, then `launch(["-m", __name__, "equivalence", str(out)], 2)`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps({"model": asdict(model), "train": asdict(config), "device": device}))
    return out


def read_spec(out: Path) -> tuple[GPTConfig, TrainConfig, str]:
    """The model, schedule and device `write_spec` put in OUT/spec.json.

    Example: `model_config, config, device = read_spec(out)`.
    """
    spec = json.loads((out / "spec.json").read_text())
    return GPTConfig(**spec["model"]), TrainConfig(**spec["train"]), spec["device"]


def tokens_for(model: GPTConfig, seed: int = 0) -> torch.Tensor:
    """Random tokens to train on: the runs measure the training, not what it learns.

    Example: `tokens_for(GPTConfig(vocab_size=65, block_size=16))` is 1,024 ids below 65.
    """
    return torch.randint(model.vocab_size, (64 * model.block_size,), generator=torch.Generator().manual_seed(seed))


def run_steps(model_config: GPTConfig, config: TrainConfig, d: distributed.Dist, fsdp: bool = False,
              log: bool = False) -> tuple[torch.nn.Module, torch.Tensor]:
    """Train with the loop for `config.max_iters` steps; the whole weights after each step, one row per step.

    `config.batch_size` is the whole batch: each of the `d.world_size` ranks takes its share.
    Example: `run_steps(model, config, distributed.Dist())[1][-1]` are the final weights of one process.
    """
    if config.batch_size % d.world_size:
        raise ValueError(f"a batch of {config.batch_size} does not split evenly across {d.world_size} ranks")
    torch.manual_seed(config.seed)
    model = distributed.wrap(GPT(model_config), d, fsdp)
    rows = []

    def record(step, history):
        weights = sharded.full_weights(model)
        if d.is_main:
            rows.append(torch.cat([w.flatten() for w in weights.values()]))
        if log:
            mine = sum(float(sharded.local(p.detach()).double().sum()) for p in model.parameters())
            print(f"rank {d.rank}: step {step}, loss on its own rows {history.train[-1]:.4f}, "
                  f"sum of the weights it holds {mine:+.6f}", flush=True)

    per_rank = replace(config, batch_size=config.batch_size // d.world_size, eval_interval=1, out_dir=None,
                       compile=False)
    train(model, RankSlices(tokens_for(model_config), model_config.block_size, config.seed), per_rank, d.device,
          progress=False, on_eval=record)
    return model, torch.stack(rows) if rows else torch.empty(0)


def _gather(obj) -> list:
    objects = [None] * dist.get_world_size()
    dist.all_gather_object(objects, obj)
    return objects


def _memory(model: torch.nn.Module, config: TrainConfig, batch: tuple, device: str) -> dict[str, int]:
    """Bytes per rank after one more step of the loop's optimizer, gradients still held."""
    optimizer = make_optimizer(model, config, device)
    next_token_loss(model, tuple(t.to(device) for t in batch)).backward()
    optimizer.step()
    return sharded.bytes_per_rank(model, optimizer)


def equivalence(out: Path, model_config: GPTConfig, config: TrainConfig, d: distributed.Dist) -> dict:
    """Train the same steps with DDP, then FSDP2, on every rank: the weights after each step, the bytes
    per rank and logits (the FSDP2 model also writes a DCP checkpoint into OUT/dcp).

    Example: `launch(["-m", __name__, "equivalence", str(out)], 2)`, then `torch.load(out / "equivalence.pt")`.
    """
    if d.is_main:
        print(f"{d.world_size} ranks over {d.backend}; each takes {config.batch_size // d.world_size} of the "
              f"{config.batch_size} sequences of every batch", flush=True)
    results = {}
    for name, fsdp in (("ddp", False), ("fsdp", True)):
        model, results[name] = run_steps(model_config, config, d, fsdp, log=not fsdp)
        batch = RankSlices(tokens_for(model_config, 1), model_config.block_size, 1).batch("train", 2)
        results[f"{name}_bytes"] = _gather(_memory(model, config, batch, d.device))
    sharded.save_sharded(out / "dcp", model)  # the FSDP2 model: each rank writes its shards
    x = tokens_for(model_config, 2)[: 2 * model_config.block_size].view(2, -1).to(d.device)
    with torch.no_grad():
        results["logits"], results["input"] = model.eval()(x)[0].cpu(), x.cpu()
    return results


def throughput(model_config: GPTConfig, config: TrainConfig, d: distributed.Dist) -> dict:
    """Tokens/s of rank 0 alone, then of every rank with DDP (each its own batch of `batch_size`), and the
    two parts of a DDP step timed apart: compute with the gradient sync off, and one all-reduce.

    Example: `launch(["-m", __name__, "throughput", str(out)], 2)`, then `torch.load(out / "throughput.pt")`.
    """
    data = TokenBatches(tokens_for(model_config), tokens_for(model_config, 1), model_config.block_size)
    timed = replace(config, eval_interval=config.max_iters, eval_iters=1, out_dir=None)
    speeds = {}
    if d.is_main:  # one process alone; the others wait
        torch.manual_seed(config.seed)
        speeds[1] = train(GPT(model_config), data, timed, d.device, progress=False).tokens_per_second[-1]
    dist.barrier()
    torch.manual_seed(config.seed)
    model = distributed.wrap(GPT(model_config), d)
    speeds[d.world_size] = train(model, data, timed, d.device, progress=False).tokens_per_second[-1]
    optimizer = make_optimizer(model, config, d.device)
    batch = tuple(t.to(d.device) for t in data.batch("train", config.batch_size))

    def compute_only():  # forward, backward and optimizer step, no gradient exchange
        with model.no_sync():
            next_token_loss(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    compute = seconds_per_call(compute_only, repeats=5, warmup=1, device=d.device)
    grads = torch.zeros(sum(p.numel() for p in model.parameters()), device=d.device)  # fp32, as DDP sends them
    allreduce = seconds_per_call(lambda: dist.all_reduce(grads), repeats=10, warmup=2, device=d.device)
    return {"tokens_per_second": speeds, "compute_seconds": compute, "allreduce_seconds": allreduce,
            "gradient_bytes": grads.numel() * 4, "tokens_per_step": config.batch_size * model_config.block_size,
            "world_size": d.world_size}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", choices=["equivalence", "throughput"])
    parser.add_argument("out", type=Path, help="a folder holding spec.json (see write_spec)")
    args = parser.parse_args(argv)
    model_config, config, device = read_spec(args.out)
    d = distributed.start(device, force=True)
    # The run's DDP and FSDP2 models are freed when it returns, while the group still lives: see `shutdown`.
    if args.run == "equivalence":
        results = equivalence(args.out, model_config, config, d)
    else:
        results = throughput(model_config, config, d)
    if d.is_main:
        torch.save(results, args.out / f"{args.run}.pt")
    distributed.shutdown()


if __name__ == "__main__":
    main()
