"""The training loop: schedule, weight-decay groups, checkpoints, exact resume, divergence, gradient
accumulation, masked targets, token counts, gradient sync, batch sources and loss functions."""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from buildgpt.data.batches import TokenBatches
from buildgpt.infer.load import load_model
from buildgpt.nn.bigram import BigramLanguageModel
from buildgpt.nn.loss import IGNORE_INDEX
from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.train import checkpoint, loop
from buildgpt.train.evaluate import split_loss
from buildgpt.train.loop import (
    History,
    TrainConfig,
    TrainingDiverged,
    data_parallel_ranks,
    make_optimizer,
    rank_and_world_size,
    set_gradient_sync,
    train,
)
from buildgpt.train.objectives import next_token_loss, padding_share, unpadded_loss

TEXT = "the cat sat on the mat. the dog sat on the log. " * 30
CHARS = sorted(set(TEXT))
TOKENS = torch.tensor([CHARS.index(c) for c in TEXT], dtype=torch.long)
TRAIN, VAL = TOKENS[:1200], TOKENS[1200:]
BLOCK = 8
MODEL = GPTConfig(vocab_size=len(CHARS), block_size=BLOCK, n_layer=1, n_head=2, n_embd=16, dropout=0.1)
RUN = TrainConfig(max_iters=20, eval_interval=5, eval_iters=2, batch_size=8, learning_rate=3e-3,
                  warmup_iters=3, decay_lr=True, weight_decay=0.1, grad_clip=1.0, compile=False)


pytestmark = pytest.mark.usefixtures("one_thread")


def fresh_model(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(replace(MODEL, **overrides))


def run(config: TrainConfig, model: GPT | None = None, **kwargs) -> tuple[GPT, History]:
    model = model or fresh_model()
    return model, train(model, TokenBatches(TRAIN, VAL, BLOCK), config, progress=False, **kwargs)


class FixedBatches:
    """A batch source handing out given batches in turn (train) and one fixed batch (val)."""

    def __init__(self, train_batches: list[tuple[torch.Tensor, ...]], val_batch: tuple[torch.Tensor, ...]):
        self.train_batches, self.val_batch, self.calls = train_batches, val_batch, []

    def batch(self, split, batch_size, generator=None):
        self.calls.append((split, batch_size))
        if split == "val":
            return self.val_batch
        batch = self.train_batches[sum(s == "train" for s, _ in self.calls[:-1]) % len(self.train_batches)]
        assert len(batch[0]) == batch_size
        return batch


def random_batch(batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, len(CHARS), (batch_size, BLOCK), generator=g),
            torch.randint(0, len(CHARS), (batch_size, BLOCK), generator=g))


# ---------------------------------------------------------------- schedule and optimizer


def test_warmup_is_linear_and_reaches_the_learning_rate():
    c = TrainConfig(learning_rate=1e-3, warmup_iters=10, max_iters=100, decay_lr=True, min_lr=1e-4)
    warm = [c.lr_at(s) for s in range(10)]
    assert all(lr > 0 for lr in warm)
    steps = [b - a for a, b in zip(warm, warm[1:])]
    assert all(math.isclose(d, 1e-4, rel_tol=1e-9) for d in steps)  # a straight line ...
    assert math.isclose(c.lr_at(9), 1e-3)  # ... that reaches learning_rate as warmup ends
    assert math.isclose(c.lr_at(10), 1e-3)  # the cosine starts from the top


def test_cosine_decays_to_min_lr_at_max_iters():
    c = TrainConfig(learning_rate=1e-3, warmup_iters=10, max_iters=110, decay_lr=True, min_lr=1e-4)
    lrs = [c.lr_at(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))  # never goes up
    assert math.isclose(c.lr_at(60), (1e-3 + 1e-4) / 2)  # halfway: halfway
    assert math.isclose(c.lr_at(110), 1e-4)
    assert math.isclose(c.lr_at(500), 1e-4)  # and stays there past the end
    default_min = replace(c, min_lr=None)
    assert math.isclose(default_min.lr_at(110), 1e-4)  # learning_rate / 10


def test_constant_without_decay():
    c = TrainConfig(learning_rate=2e-3, warmup_iters=4, max_iters=50, decay_lr=False)
    assert [c.lr_at(s) for s in range(4)] == pytest.approx([5e-4, 1e-3, 1.5e-3, 2e-3])
    assert all(c.lr_at(s) == 2e-3 for s in range(4, 60))
    assert TrainConfig(learning_rate=0.1).lr_at(0) == 0.1  # no warmup unless asked


@pytest.mark.parametrize("overrides,match", [(dict(grad_accum_steps=0), "grad_accum_steps"),
                                             (dict(eval_interval=0), "eval_interval"),
                                             (dict(max_iters=-1), "max_iters"),
                                             (dict(batch_size=0), "batch_size"),
                                             (dict(eval_iters=0), "eval_iters"),
                                             (dict(warmup_iters=-5), "warmup_iters")])
def test_config_rejects_impossible_values(overrides, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**overrides)


def test_make_optimizer_decays_only_matrices():
    model = fresh_model()
    optimizer = make_optimizer(model, replace(RUN, weight_decay=0.25), "cpu")
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 0.25 and plain["weight_decay"] == 0.0
    assert decayed["params"] and plain["params"]
    assert all(p.dim() >= 2 for p in decayed["params"])
    assert all(p.dim() < 2 for p in plain["params"])
    ids = {id(p) for p in decayed["params"]} | {id(p) for p in plain["params"]}
    assert ids == {id(p) for p in model.parameters()}
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in decayed["params"]} >= {"token_embedding.weight", "position_embedding.weight",
                                                          "lm_head.weight"}
    assert all(n.endswith(("bias", "ln1.weight", "ln2.weight", "ln_f.weight")) for n in
               (names[id(p)] for p in plain["params"]))
    assert optimizer.defaults["betas"] == (RUN.beta1, RUN.beta2)


def test_make_optimizer_skips_frozen_parameters():
    model = fresh_model()
    model.token_embedding.requires_grad_(False)
    optimizer = make_optimizer(model, RUN, "cpu")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    assert all(p is not model.token_embedding.weight for p in params)


# ---------------------------------------------------------------- a run with checkpoints


def test_run_writes_checkpoints_and_a_consistent_history(tmp_path):
    seen = []
    model, history = run(replace(RUN, out_dir=str(tmp_path)), meta={"tokenizer": {"type": "char", "chars": CHARS}},
                         on_eval=lambda step, h: seen.append((step, len(h.steps))))
    assert history.steps == [0, 5, 10, 15, 20]
    assert seen == [(0, 1), (5, 2), (10, 3), (15, 4), (20, 5)]
    assert len(history.train) == len(history.val) == len(history.lr) == len(history.seconds) == 5
    assert len(history.tokens) == len(history.tokens_per_second) == 5
    assert history.lr == [RUN.lr_at(s) for s in history.steps]
    assert history.seconds == sorted(history.seconds)
    assert history.best_val == min(history.val)
    assert history.best_step == history.steps[history.val.index(min(history.val))]
    assert history.final_val == history.val[-1]
    assert history.val[-1] < history.val[0]  # it learned something
    assert model.training  # train leaves the model in training mode

    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.safetensors", "last.safetensors"]
    last = checkpoint.load(tmp_path / "last.safetensors", expected_config=MODEL.to_dict())
    best = checkpoint.load(tmp_path / "best.safetensors", expected_config=MODEL.to_dict())
    assert last.step == 20 and best.step == history.best_step
    assert last.optimizer_state is not None and last.rng_state is not None
    assert best.optimizer_state is None
    assert last.meta["tokenizer"]["chars"] == CHARS
    assert last.meta["train_config"]["max_iters"] == 20
    assert last.meta["history"]["val"] == history.val
    assert last.meta["history"]["tokens"] == history.tokens
    for name, value in model.state_dict().items():
        assert torch.equal(last.model_state[name], value), name


def test_no_out_dir_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(replace(RUN, max_iters=5))
    assert list(tmp_path.iterdir()) == []


def test_checkpoints_need_a_model_with_a_config(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="config"):
        train(BigramLanguageModel(len(CHARS)), TokenBatches(TRAIN, VAL, BLOCK), replace(RUN, out_dir=str(tmp_path)),
              progress=False)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no GPU: dropout's CUDA generator is restored only there"))])
def test_resume_continues_exactly(tmp_path, device):
    """A run stopped after a checkpoint and resumed ends with the very weights of an uninterrupted run.

    On a GPU to within the order of its sums (some backward kernels add atomically); another dropout
    stream after the resume would be far outside that."""
    def same(a, b) -> bool:
        return torch.equal(a, b) if device == "cpu" else torch.allclose(a, b, rtol=1e-4, atol=1e-6)

    config = replace(RUN, max_iters=20, eval_interval=5)
    model_a, history_a = run(replace(config, out_dir=str(tmp_path / "a")), device=device)

    def interrupt(step, history):
        if step == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(replace(config, out_dir=str(tmp_path / "b")), on_eval=interrupt, device=device)
    assert checkpoint.load(tmp_path / "b" / "last.safetensors").step == 10

    torch.manual_seed(123)  # whatever happened in between (other initialisation, other dropout draws)
    torch.rand(1000, device=device)
    model_c, history_c = run(replace(config, out_dir=str(tmp_path / "b"), resume=True), model=fresh_model(seed=99),
                             device=device)

    for (name, a), c in zip(model_a.state_dict().items(), model_c.state_dict().values()):
        assert same(a, c), f"{name} differs after resume"
    assert history_c.steps == history_a.steps == [0, 5, 10, 15, 20]
    assert same(torch.tensor(history_c.train), torch.tensor(history_a.train))
    assert same(torch.tensor(history_c.val), torch.tensor(history_a.val))
    assert history_c.lr == history_a.lr
    assert history_c.tokens == history_a.tokens
    assert history_c.best_step == history_a.best_step
    assert device != "cpu" or history_c.best_val == history_a.best_val
    assert checkpoint.load(tmp_path / "b" / "last.safetensors").step == 20


def test_a_resume_trains_with_its_own_settings_not_the_saved_runs(tmp_path, monkeypatch):
    """The file gives the optimizer its state; weight decay and betas stay what this run's config says."""
    run(replace(RUN, max_iters=5, out_dir=str(tmp_path), weight_decay=0.0, beta2=0.99))
    made = []
    monkeypatch.setattr(loop, "make_optimizer", lambda *args: made.append(make_optimizer(*args)) or made[-1])
    run(replace(RUN, max_iters=10, out_dir=str(tmp_path), resume=True, weight_decay=0.1, beta2=0.95))
    decayed, plain = made[-1].param_groups
    assert (decayed["weight_decay"], plain["weight_decay"]) == (0.1, 0.0)
    assert decayed["betas"] == plain["betas"] == (RUN.beta1, 0.95)
    assert made[-1].state  # and the moments did come from the file


def test_resume_restores_the_gpus_generator_too(tmp_path, monkeypatch):
    """Dropout on a GPU draws from the CUDA generator: it is saved with each checkpoint and set again on resume
    (here on the CPU, with torch.cuda's generator calls stood in for, so the plumbing is checked everywhere)."""
    gpu, saved_state = torch.device("cuda", 1), torch.arange(16, dtype=torch.uint8)  # the model's GPU, not GPU 0
    read, restored = [], []
    monkeypatch.setattr(checkpoint, "gpu_of", lambda model: gpu)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: read.append(device) or saved_state)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append((state, device)))
    run(replace(RUN, max_iters=5, out_dir=str(tmp_path)))
    assert checkpoint.load(tmp_path / "last.safetensors").meta["cuda_rng_state"] == list(range(16))
    run(replace(RUN, max_iters=10, out_dir=str(tmp_path), resume=True))
    assert set(read) == {gpu} and len(restored) == 1
    assert torch.equal(restored[0][0], saved_state) and restored[0][1] == gpu


def test_resume_without_a_checkpoint_starts_fresh(tmp_path):
    _, history = run(replace(RUN, max_iters=5, out_dir=str(tmp_path / "new"), resume=True))
    assert history.steps == [0, 5]


def test_resume_of_a_finished_run_does_nothing(tmp_path):
    config = replace(RUN, max_iters=10, out_dir=str(tmp_path))
    model, history = run(config)
    calls = []
    again, history_again = run(replace(config, resume=True), model=fresh_model(seed=5),
                               on_eval=lambda step, h: calls.append(step))
    assert calls == []
    assert history_again.steps == history.steps and history_again.val == history.val
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_refuses_another_model(tmp_path):
    run(replace(RUN, max_iters=5, out_dir=str(tmp_path)))
    other = fresh_model(n_embd=32)
    with pytest.raises(checkpoint.CheckpointError, match="n_embd"):
        run(replace(RUN, max_iters=10, out_dir=str(tmp_path), resume=True), model=other)


def test_resume_from_a_truncated_checkpoint_says_how_to_start_over_and_keeps_the_file(tmp_path):
    run(replace(RUN, max_iters=5, out_dir=str(tmp_path)))
    last = tmp_path / "last.safetensors"
    last.write_bytes(last.read_bytes()[:500])
    with pytest.raises(checkpoint.CheckpointError, match="cannot resume: .* move it aside"):
        run(replace(RUN, max_iters=10, out_dir=str(tmp_path), resume=True))
    assert last.stat().st_size == 500 and (tmp_path / "best.safetensors").is_file()


def test_resume_from_a_weights_only_checkpoint_says_what_it_lacks(tmp_path):
    run(replace(RUN, max_iters=5, out_dir=str(tmp_path)))
    last, best = tmp_path / "last.safetensors", tmp_path / "best.safetensors"
    last.write_bytes(best.read_bytes())  # e.g. best copied over last by hand
    with pytest.raises(checkpoint.CheckpointError, match="holds the weights only .* move it aside"):
        run(replace(RUN, max_iters=10, out_dir=str(tmp_path), resume=True))
    assert last.read_bytes() == best.read_bytes()


# ---------------------------------------------------------------- divergence


def nan_after(model: GPT, bad_call: int) -> None:
    """From the `bad_call`-th training forward pass on (0-based), the loss is NaN."""
    original = model.forward
    calls = {"n": 0}

    def forward(idx, targets=None):
        logits, loss = original(idx, targets)
        if model.training:
            calls["n"] += 1
            if calls["n"] > bad_call:
                loss = loss * float("nan")
        return logits, loss

    model.forward = forward


def test_nan_loss_raises_and_keeps_the_checkpoint(tmp_path):
    model = fresh_model()
    nan_after(model, 7)  # training steps 0..6 are fine, step 7 is not
    with pytest.raises(TrainingDiverged) as info:
        run(replace(RUN, out_dir=str(tmp_path)), model=model)
    message = str(info.value)
    assert "step 7" in message
    assert "nan" in message.lower()
    assert f"the last checkpoint, {tmp_path / 'last.safetensors'}, is intact" in message
    ckpt = checkpoint.load(tmp_path / "last.safetensors")
    assert ckpt.step == 5  # the last evaluation before the loss broke
    restored, _ = load_model(tmp_path / "last.safetensors")
    assert all(torch.isfinite(p).all() for p in restored.parameters())


def test_weights_that_are_not_finite_stop_before_the_first_save(tmp_path):
    run(replace(RUN, max_iters=5, out_dir=str(tmp_path)))
    good = (tmp_path / "last.safetensors").read_bytes()
    model = fresh_model()
    with torch.no_grad():
        model.lm_head.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="step 0; the last checkpoint, .*, is intact. The weights it started from"):
        run(replace(RUN, out_dir=str(tmp_path)), model=model)
    assert (tmp_path / "last.safetensors").read_bytes() == good  # not replaced by the broken weights


def test_a_val_loss_that_is_not_a_number_before_any_step_blames_the_data_not_the_weights(tmp_path):
    x, _ = random_batch(RUN.batch_size, 0)
    nothing_scored = torch.full_like(x, -100)  # the mean over no target at all: NaN
    batches = FixedBatches([random_batch(RUN.batch_size, 1)], (x, nothing_scored))
    with pytest.raises(TrainingDiverged, match="the val loss became nan at step 0; no checkpoint had been written yet. "
                                               "No step had run yet, so check the data"):
        train(fresh_model(), batches, replace(RUN, out_dir=str(tmp_path)), progress=False)
    assert not (tmp_path / "last.safetensors").exists()


@pytest.mark.parametrize("below", ["", "sub"])
def test_an_out_dir_that_cannot_be_a_folder_is_refused_before_training(tmp_path, below):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    model = fresh_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="cannot write checkpoints to .*a-file"):
        run(replace(RUN, out_dir=str(blocker / below)), model=model)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # no step was taken
    assert blocker.read_text() == "not a folder"


def test_nan_loss_without_out_dir():
    model = fresh_model()
    nan_after(model, 0)
    with pytest.raises(TrainingDiverged, match="step 0.*no checkpoint"):
        run(RUN, model=model)


def test_huge_learning_rate_diverges(tmp_path):
    config = replace(RUN, max_iters=200, eval_interval=1000, learning_rate=1e10, warmup_iters=0, decay_lr=False,
                     grad_clip=0.0, weight_decay=0.0, out_dir=str(tmp_path))
    with pytest.raises(TrainingDiverged, match=r"at step \d+; the last checkpoint, .*, is intact"):
        run(config)
    assert checkpoint.load(tmp_path / "last.safetensors").step == 0
    load_model(tmp_path / "last.safetensors")


# ---------------------------------------------------------------- after training: the whole validation split


def test_split_loss_after_training():
    model, history = run(replace(RUN, max_iters=5))
    loss = split_loss(model, VAL, BLOCK, RUN.batch_size)
    assert math.isfinite(loss) and abs(loss - history.final_val) < 0.5  # a sample of batches vs every token
    assert model.training  # split_loss restores the mode


# ---------------------------------------------------------------- gradient accumulation


def one_step(batches, batch_size: int, grad_accum_steps: int) -> tuple[GPT, list[torch.Tensor]]:
    """A dropout-free GPT after one optimizer step on `batches`, and the gradients that step used."""
    model = fresh_model(dropout=0.0)
    seen = []

    def record(optimizer, args, kwargs):
        seen.extend(p.grad.clone() for group in optimizer.param_groups for p in group["params"])

    handle = register_optimizer_step_pre_hook(record)
    try:
        config = replace(RUN, max_iters=1, eval_iters=1, batch_size=batch_size, grad_accum_steps=grad_accum_steps,
                         warmup_iters=0, decay_lr=False, learning_rate=1e-3)
        train(model, batches, config, progress=False)
    finally:
        handle.remove()
    return model, seen


def test_gradient_accumulation_equals_one_big_batch():
    """Two micro-batches of B summed into one step give the update of one batch of 2B (their concatenation)."""
    (xa, ya), (xb, yb) = random_batch(4, seed=1), random_batch(4, seed=2)
    val = random_batch(4, seed=3)
    accumulated, grads_a = one_step(FixedBatches([(xa, ya), (xb, yb)], val), 4, grad_accum_steps=2)
    big, grads_b = one_step(FixedBatches([(torch.cat([xa, xb]), torch.cat([ya, yb]))], val), 8, grad_accum_steps=1)
    # the gradients are the same mean (Adam's first step would hide a wrong scale) ...
    assert len(grads_a) == len(grads_b) == len(list(big.parameters()))
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    # ... and so are the weights after the step
    for (name, a), b in zip(accumulated.state_dict().items(), big.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)
    # and the step really moved them
    assert not torch.equal(big.lm_head.weight, fresh_model(dropout=0.0).lm_head.weight)


def test_gradient_accumulation_draws_grad_accum_batches_per_step():
    source = FixedBatches([random_batch(2, seed=s) for s in range(3)], random_batch(2, seed=9))
    train(fresh_model(), source, replace(RUN, max_iters=4, eval_interval=2, eval_iters=1, batch_size=2,
                                         grad_accum_steps=3), progress=False)
    assert [s for s, _ in source.calls].count("train") == 4 * 3 + 3 * 1  # steps x micro-steps + evaluations
    assert [s for s, _ in source.calls].count("val") == 3


# ---------------------------------------------------------------- tokens and speed


@pytest.mark.parametrize("grad_accum_steps", [1, 3])
def test_history_counts_tokens(grad_accum_steps):
    _, history = run(replace(RUN, max_iters=10, eval_interval=5, grad_accum_steps=grad_accum_steps))
    per_step = RUN.batch_size * BLOCK * grad_accum_steps
    assert history.tokens == [step * per_step for step in history.steps] == [0, 5 * per_step, 10 * per_step]


def test_tokens_per_second_after_the_first_interval():
    _, history = run(replace(RUN, max_iters=10, eval_interval=5))
    assert math.isnan(history.tokens_per_second[0])  # nothing trained before the first evaluation
    assert all(math.isfinite(t) and t > 0 for t in history.tokens_per_second[1:])


def test_rank_and_world_size_without_distributed():
    assert rank_and_world_size() == (0, 1)


def test_only_a_data_parallel_model_counts_every_ranks_tokens(monkeypatch):
    """Inside a group of 2, a plain model (one rank training alone, as the distributed page's
    throughput run does) has seen its own batches; a DDP model has seen both ranks'."""
    from buildgpt.train import loop

    class DDPModel(GPT):
        require_backward_grad_sync = True

    monkeypatch.setattr(loop, "rank_and_world_size", lambda: (0, 2))
    config, per_step = replace(RUN, max_iters=4, eval_interval=4), RUN.batch_size * BLOCK
    torch.manual_seed(0)
    for model, ranks in ((fresh_model(), 1), (DDPModel(MODEL), 2)):
        assert data_parallel_ranks(model) == ranks
        assert run(config, model=model)[1].tokens == [0, 4 * per_step * ranks]


# ---------------------------------------------------------------- gradient sync across processes


class DDPLike:
    require_backward_grad_sync = True


class FSDPLike:
    def __init__(self):
        self.calls = []

    def set_requires_gradient_sync(self, enabled):
        self.calls.append(enabled)


def test_set_gradient_sync_speaks_ddp_and_fsdp():
    ddp = DDPLike()
    set_gradient_sync(ddp, False)
    assert ddp.require_backward_grad_sync is False
    set_gradient_sync(ddp, True)
    assert ddp.require_backward_grad_sync is True
    fsdp = FSDPLike()
    set_gradient_sync(fsdp, False)
    set_gradient_sync(fsdp, True)
    assert fsdp.calls == [False, True]
    set_gradient_sync(fresh_model(), False)  # a plain model: nothing to tell, nothing fails


def test_gradients_sync_only_on_the_last_micro_step():
    seen = []

    class SyncSpy(GPT):
        require_backward_grad_sync = True

        def forward(self, idx, targets=None):
            if self.training:
                seen.append(self.require_backward_grad_sync)
            return super().forward(idx, targets)

    torch.manual_seed(0)
    run(replace(RUN, max_iters=2, eval_interval=10, grad_accum_steps=3), model=SyncSpy(MODEL))
    assert seen == [False, False, True] * 2


# ---------------------------------------------------------------- loss functions and masked targets


def test_a_custom_loss_function_is_used_by_training_and_evaluation():
    calls = {True: 0, False: 0}

    def weighted(model, batch):
        x, y, weight = batch  # the loop never looks inside a batch
        calls[model.training] += 1
        return weight * next_token_loss(model, (x, y))

    class Weighted:
        def __init__(self, weight):
            self.inner, self.weight = TokenBatches(TRAIN, VAL, BLOCK), weight

        def batch(self, split, batch_size, generator=None):
            return (*self.inner.batch(split, batch_size, generator), torch.tensor(self.weight))

    config = replace(RUN, max_iters=4, eval_interval=2, grad_clip=0.0, weight_decay=0.0, decay_lr=False,
                     warmup_iters=0)
    history = train(fresh_model(), Weighted(1.0), config, loss_fn=weighted, progress=False)
    assert calls == {True: 4, False: 3 * 2 * RUN.eval_iters}  # 4 steps; 3 evaluations of both splits
    # a loss function that doubles the loss doubles what evaluation reports (Adam's steps are scale-free)
    doubled = train(fresh_model(), Weighted(2.0), config, loss_fn=weighted, progress=False)
    assert doubled.val == pytest.approx([2 * v for v in history.val], rel=1e-5)
    assert doubled.train == pytest.approx([2 * v for v in history.train], rel=1e-5)


def test_masked_targets_do_not_count():
    """The loss of a batch is the loss over its unmasked positions only."""
    model = fresh_model().eval()
    x, y = random_batch(4, seed=5)
    keep = torch.rand(4, BLOCK, generator=torch.Generator().manual_seed(6)) < 0.3
    keep[0, -1] = True
    masked = y.masked_fill(~keep, IGNORE_INDEX)
    with torch.no_grad():
        logits, _ = model(x)
        expected = torch.nn.functional.cross_entropy(logits[keep], y[keep])
        torch.testing.assert_close(next_token_loss(model, (x, masked)), expected)
        other = y.clone()
        other[~keep] = (other[~keep] + 1) % len(CHARS)  # change only masked targets: same loss
        torch.testing.assert_close(next_token_loss(model, (x, other.masked_fill(~keep, IGNORE_INDEX))), expected)


@pytest.mark.parametrize("min_saving, min_batch_saving", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.99)])
def test_unpadded_loss_equals_the_padded_one(min_saving, min_batch_saving):  # each length alone; 5 with 8; one run
    """Rows cut after their last scored target and run in groups give the padded batch's loss and gradients;
    a row with nothing scored contributes nothing."""
    x, y = random_batch(6, seed=8)
    last = torch.tensor([BLOCK, 3, 5, 3, 1, 0])  # scored targets end here (0: none)
    first = torch.tensor([0, 1, 0, 2, 0, 0])  # and start here: a masked prompt
    columns = torch.arange(BLOCK)
    masked = y.masked_fill((columns < first[:, None]) | (columns >= last[:, None]), IGNORE_INDEX)
    grads = []
    for loss_fn in (next_token_loss, functools.partial(unpadded_loss, min_saving=min_saving,
                                                                min_batch_saving=min_batch_saving)):
        model = fresh_model().eval()  # no dropout: both see the same network
        loss = loss_fn(model, (x, masked))
        loss.backward()
        grads.append((loss.detach(), [p.grad for p in model.parameters()]))
    (padded, padded_grads), (unpadded, unpadded_grads) = grads
    torch.testing.assert_close(unpadded, padded)
    for a, b in zip(padded_grads, unpadded_grads):
        torch.testing.assert_close(b, a)


def test_padding_share_counts_what_follows_each_rows_last_scored_target():
    y = torch.tensor([[5, 6, IGNORE_INDEX, IGNORE_INDEX], [IGNORE_INDEX, 7, IGNORE_INDEX, 8],
                      [IGNORE_INDEX] * 4])
    assert padding_share(y) == pytest.approx(1 - (2 + 4 + 0) / 12)


def test_unpadded_loss_refuses_a_batch_with_nothing_scored():
    x, y = random_batch(3, seed=9)
    with pytest.raises(ValueError, match="no scored target.*Check the batch source's masks"):
        unpadded_loss(fresh_model(), (x, torch.full_like(y, IGNORE_INDEX)))


def test_a_model_trained_on_one_unmasked_position_still_learns():
    x, y = random_batch(4, seed=7)
    masked = torch.full_like(y, IGNORE_INDEX)
    masked[0, -1] = y[0, -1]  # all but one position masked
    source = FixedBatches([(x, masked)], (x, masked))
    config = replace(RUN, max_iters=30, eval_interval=10, eval_iters=1, batch_size=4, learning_rate=1e-2,
                     weight_decay=0.0, warmup_iters=0, decay_lr=False)
    history = train(fresh_model(), source, config, progress=False)
    assert all(math.isfinite(v) for v in history.train + history.val)
    assert history.val[-1] < history.val[0] - 1.0
