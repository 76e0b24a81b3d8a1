"""The one training loop of the book: from the bigram table to pretraining, finetuning and alignment.

It knows nothing about what a batch holds. A *batch source* hands out batches of a split, and
a *loss function* turns the model and a batch into one number, so plain next-token windows,
masked answers, chat turns and preference pairs all train here. Around the step: AdamW
(weight decay on matrices only), linear warmup then cosine decay, gradient accumulation,
gradient clipping, periodic evaluation into a loss history with tokens per second, best/last
checkpoints written atomically, exact resume, bf16 autocast where it pays (`precision`),
`torch.compile` on a GPU, and a stop with a clear message if the loss stops being a number.

On several processes (`torchrun`, a DDP or FSDP2 model) every rank takes its own batches and
evaluates; only rank 0 shows progress and writes checkpoints (every rank helps gather a sharded
model's state for them); gradients are synchronised only on the last micro-step of an accumulation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from ..utils.progress import tqdm
from . import checkpoint, precision, sharded
from .evaluate import estimate_loss
from .objectives import BatchSource, LossFn, next_token_loss


@dataclass
class TrainConfig:
    max_iters: int = 3000  # optimizer steps
    eval_interval: int = 200  # evaluate (and checkpoint) every this many steps, and at the end
    eval_iters: int = 100  # random batches per split per evaluation
    batch_size: int = 32  # sequences per micro-batch, per process
    # micro-batches per optimizer step; the step's loss is the mean of theirs, which equals one big batch's
    # only when each scores as many targets (not so with masked prompts of different lengths, as in nanoGPT)
    grad_accum_steps: int = 1
    learning_rate: float = 1e-2  # the peak learning rate
    min_lr: float | None = None  # where the cosine decay ends; None: learning_rate / 10
    warmup_iters: int = 0  # steps of linear warmup from 0 to learning_rate
    decay_lr: bool = False  # cosine decay to min_lr at max_iters
    weight_decay: float = 0.0  # AdamW's decay, on matrices only
    beta1: float = 0.9  # AdamW's momentum of the gradient
    beta2: float = 0.99  # AdamW's momentum of the squared gradient
    grad_clip: float = 0.0  # clip the gradient norm to this; 0: no clipping
    seed: int = 1337  # batches, dropout and evaluation batches all follow it
    out_dir: str | None = None  # where best.safetensors and last.safetensors go; None: no checkpoints
    resume: bool = False  # continue from out_dir/last.safetensors if it exists
    compile: bool | None = None  # torch.compile the model; None: only on CUDA
    bf16: bool | None = None  # bfloat16 autocast; None: where it pays (CUDA, wide models on CPUs with native bf16)

    def __post_init__(self):
        if self.grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be >= 1, got {self.grad_accum_steps}")
        if self.eval_interval < 1 or self.max_iters < 0:
            raise ValueError(f"need eval_interval >= 1 and max_iters >= 0, got {self.eval_interval}, {self.max_iters}")
        if self.batch_size < 1 or self.eval_iters < 1 or self.warmup_iters < 0:
            raise ValueError(f"need batch_size >= 1, eval_iters >= 1 and warmup_iters >= 0, got {self.batch_size}, "
                             f"{self.eval_iters}, {self.warmup_iters}")

    def lr_at(self, step: int) -> float:
        """Linear warmup to `learning_rate`, then (if `decay_lr`) cosine decay to `min_lr` at `max_iters`."""
        if step < self.warmup_iters:
            return self.learning_rate * (step + 1) / self.warmup_iters
        if not self.decay_lr:
            return self.learning_rate
        min_lr = self.learning_rate / 10 if self.min_lr is None else self.min_lr
        progress = min(1.0, (step - self.warmup_iters) / max(1, self.max_iters - self.warmup_iters))
        return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (self.learning_rate - min_lr)


@dataclass
class History:
    """What each evaluation measured: at `steps[i]`, after `tokens[i]` training tokens (all ranks)
    and `seconds[i]` of wall time, the losses `train[i]` and `val[i]`, and the training speed since
    the previous evaluation in `tokens_per_second[i]`."""

    steps: list[int] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    tokens_per_second: list[float] = field(default_factory=list)
    best_val: float = math.inf
    best_step: int = -1

    @property
    def final_val(self) -> float:
        return self.val[-1]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def rank_and_world_size() -> tuple[int, int]:
    """This process's rank and the number of processes (0 and 1 without torch.distributed).

    Example: `rank, world_size = rank_and_world_size()`; only rank 0 prints.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def data_parallel_ranks(model: torch.nn.Module) -> int:
    """How many ranks train `model` together, each on batches of its own: the world size for a DDP or
    FSDP2 model, 1 for a plain model, even one training inside a process group.

    Example: `data_parallel_ranks(GPT(GPTConfig()))` is 1.
    """
    wrapped = hasattr(model, "require_backward_grad_sync") or hasattr(model, "set_requires_gradient_sync")
    return rank_and_world_size()[1] if wrapped else 1


def make_optimizer(model: torch.nn.Module, config: TrainConfig, device: str) -> torch.optim.AdamW:
    """AdamW that decays matrices (weights, embeddings) but not biases and norm gains.

    Example: `make_optimizer(model, TrainConfig(weight_decay=0.1), "cpu").param_groups[1]["weight_decay"]` is 0.0.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    # One kernel for all parameters instead of a loop over them (benchmarks/bench_gpt_cpu.py times it).
    fused = device.split(":")[0] in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(config.beta1, config.beta2), fused=fused)


def set_gradient_sync(model: torch.nn.Module, enabled: bool) -> None:
    """Tell a DDP or FSDP2 model whether this backward pass should synchronise gradients across ranks.

    Accumulating micro-batches needs the sum only once, after the last: syncing every micro-step
    would send the same gradient bytes `grad_accum_steps` times.
    Example: `set_gradient_sync(model, micro_step == grad_accum_steps - 1)` before each backward.
    """
    if hasattr(model, "require_backward_grad_sync"):  # DistributedDataParallel
        model.require_backward_grad_sync = enabled
    elif hasattr(model, "set_requires_gradient_sync"):  # FSDP2 (fully_shard)
        model.set_requires_gradient_sync(enabled)


def train(model: torch.nn.Module, batches: BatchSource, config: TrainConfig, device: str = "cpu", *,
          loss_fn: LossFn = next_token_loss, progress: bool = True, meta: dict | None = None,
          on_eval: Callable[[int, History], None] | None = None) -> History:
    """Train `model` in place on `batches`, minimising `loss_fn`, and return its loss history.

    Evaluates every `eval_interval` steps and at the end. With `out_dir`, each evaluation
    writes `last.safetensors` (and `best.safetensors` when the val loss improves), with
    `meta` stored alongside (e.g. the tokenizer), so a run can be resumed or sampled from.
    Example: `history = train(GPT(config), TokenBatches(train_ids, val_ids, 64), TrainConfig(max_iters=100))`.
    """
    rank = rank_and_world_size()[0]
    ranks_training = data_parallel_ranks(model)  # for tokens seen: every rank's batches, not only this one's
    out_dir = Path(config.out_dir) if config.out_dir else None
    if out_dir and rank == 0:
        try:  # before any training: a folder that cannot be written should not cost a run
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"cannot write checkpoints to {out_dir}: {e.strerror} ({e.filename}); "
                             "give an out_dir that is, or can become, a folder") from None
    model.to(device).train()
    optimizer = make_optimizer(model, config, device)
    batch_rng = torch.Generator().manual_seed(config.seed + 1_000_003 * rank)  # each rank its own batches
    eval_rng = torch.Generator().manual_seed(config.seed + 1)  # the same eval batches whatever training does
    torch.manual_seed(config.seed)  # dropout
    history, start = History(), 0
    if config.resume and out_dir and (out_dir / "last.safetensors").is_file():
        start, history = _resume(out_dir / "last.safetensors", model, optimizer, batch_rng, eval_rng, config.seed)

    runner = torch.compile(model) if precision.use_compile(device, config.compile) else model
    autocast = precision.autocast(model, device, config.bf16)
    meta = {"train_config": asdict(config), **(meta or {})}
    tokens = history.tokens[-1] if history.tokens else 0
    t0 = time.perf_counter() - (history.seconds[-1] if history.seconds else 0.0)
    train_seconds, interval_tokens = 0.0, 0  # since the last evaluation, for tokens per second

    bar = tqdm(total=config.max_iters, initial=start, desc="training", disable=not progress or rank != 0,
               mininterval=1.0)
    for step in range(start, config.max_iters + 1):
        is_eval = step % config.eval_interval == 0 or step == config.max_iters
        already_evaluated = bool(history.steps) and history.steps[-1] == step  # resumed right after an eval
        if is_eval and not already_evaluated:
            with autocast:
                losses = estimate_loss(runner, batches, config.eval_iters, config.batch_size, device, eval_rng,
                                       loss_fn)
            broken = [split for split, value in losses.items() if not math.isfinite(value)]
            if broken:  # checked before saving: the last good file stays
                raise _diverged(f"the {broken[0]} loss", losses[broken[0]], step, start, out_dir, model)
            speed = interval_tokens / train_seconds if train_seconds else math.nan
            _record(history, step, losses, config.lr_at(step), time.perf_counter() - t0, tokens, speed)
            train_seconds, interval_tokens = 0.0, 0
            bar.set_postfix(train=f"{losses['train']:.3f}", val=f"{losses['val']:.3f}")
            if out_dir:  # every rank: a sharded model is gathered before rank 0 writes
                _save(out_dir, model, optimizer, step, history, meta, batch_rng, eval_rng)
            if on_eval:
                on_eval(step, history)
        if step == config.max_iters:
            break
        step_start = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = config.lr_at(step)
        for micro_step in range(config.grad_accum_steps):
            batch = tuple(t.to(device, non_blocking=True) for t in batches.batch("train", config.batch_size, batch_rng))
            set_gradient_sync(model, micro_step == config.grad_accum_steps - 1)
            with autocast:
                loss = loss_fn(runner, batch) / config.grad_accum_steps  # the step's loss is the mean
            if not torch.isfinite(loss):
                raise _diverged("the loss", loss.item(), step, start, out_dir, model)
            loss.backward()
            tokens += batch[0].numel() * ranks_training
            interval_tokens += batch[0].numel() * ranks_training
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        train_seconds += time.perf_counter() - step_start
        bar.update(1)
    bar.close()
    return history


def _diverged(what: str, value: float, step: int, start: int, out_dir: Path | None, model) -> TrainingDiverged:
    if step > start:
        cause = "lower the learning rate or enable gradient clipping"
    elif not all(p.isfinite().all() for p in model.parameters()):
        cause = "the weights it started from are not finite numbers: start from another checkpoint"
    else:  # finite weights, and no step has run: what they were given is to blame
        cause = "no step had run yet, so check the data and the loss function"
    return TrainingDiverged(f"{what} became {value} at step {step}; {checkpoint.what_was_kept(out_dir)}. {cause.capitalize()}.")


def _record(history: History, step: int, losses: dict[str, float], lr: float, seconds: float, tokens: int,
            tokens_per_second: float) -> None:
    history.steps.append(step)
    history.train.append(losses["train"])
    history.val.append(losses["val"])
    history.lr.append(lr)
    history.seconds.append(seconds)
    history.tokens.append(tokens)
    history.tokens_per_second.append(tokens_per_second)
    if losses["val"] < history.best_val:
        history.best_val, history.best_step = losses["val"], step


def _save(out_dir: Path, model, optimizer, step: int, history: History, meta: dict,
          batch_rng: torch.Generator, eval_rng: torch.Generator) -> None:
    weights, optim = sharded.full_state(model, optimizer)
    batch_states = [batch_rng.get_state()]
    if dist.is_initialized():  # every rank's batch stream: rank 0's, then the others' after the shared rows
        batch_states = [None] * dist.get_world_size()
        dist.all_gather_object(batch_states, batch_rng.get_state())
    if rank_and_world_size()[0] != 0:
        return
    rng = torch.stack([batch_states[0], eval_rng.get_state(), torch.get_rng_state(), *batch_states[1:]])
    meta = {**meta, "history": asdict(history)}
    if (gpu := checkpoint.gpu_of(model)) is not None:  # dropout there draws from that GPU's own generator
        meta["cuda_rng_state"] = torch.cuda.get_rng_state(gpu).tolist()
    # best before last: a run stopped between the two resumes from the older last.safetensors and
    # rewrites the same best; the other order would leave a best.safetensors older than its history says
    if history.best_step == step:
        checkpoint.save(out_dir / "best.safetensors", model, step, meta, model_state=weights)
    checkpoint.save(out_dir / "last.safetensors", model, step, meta, None, rng, model_state=weights,
                    optimizer_state=optim)


def _resume(path: Path, model, optimizer, batch_rng: torch.Generator, eval_rng: torch.Generator, seed: int):
    """Restore weights, optimizer and random streams, so the run continues exactly where it stopped.

    Into one process or many, DDP or FSDP2, whatever wrote the file. A rank the file holds no
    batch stream for (more ranks than the run that wrote it) starts a fresh one of its own.
    """
    try:
        ckpt = checkpoint.load(path, expected_config=checkpoint.model_config_of(model))
    except checkpoint.CheckpointError as e:
        raise checkpoint.CheckpointError(f"cannot resume: {e}. The file is left as it is; to start over, move it "
                                         "aside and train without resume") from None
    if ckpt.optimizer_state is None or ckpt.rng_state is None or "history" not in ckpt.meta:
        raise checkpoint.CheckpointError(f"cannot resume from {path}: it holds the weights only (as best.safetensors "
                                         "does), not the optimizer state, random streams and history a resume needs. "
                                         "The file is left as it is; to start over, move it aside")
    sharded.load_full_state(model, optimizer, ckpt.model_state, ckpt.optimizer_state)
    rank = rank_and_world_size()[0]
    states = [s.clone() for s in ckpt.rng_state]  # set_state rejects views
    eval_rng.set_state(states[1])
    torch.set_rng_state(states[2])
    if "cuda_rng_state" in ckpt.meta and (gpu := checkpoint.gpu_of(model)) is not None:
        torch.cuda.set_rng_state(torch.tensor(ckpt.meta["cuda_rng_state"], dtype=torch.uint8), gpu)
    batch_rows = [states[0], *states[3:]]
    if rank < len(batch_rows):
        batch_rng.set_state(batch_rows[rank])
    else:
        batch_rng.manual_seed(seed + 1_000_003 * rank + ckpt.step)
    return ckpt.step, History(**ckpt.meta["history"])
