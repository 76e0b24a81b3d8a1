"""The trainer: learning-rate schedule, weight-decay groups, checkpoints, exact resume, divergence, full val."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from buildgpt import checkpoint
from buildgpt.batches import split_loss
from buildgpt.bigram import BigramLanguageModel
from buildgpt.model import GPT, GPTConfig
from buildgpt.training import History, TrainConfig, TrainingDiverged, make_optimizer, train

TEXT = "the cat sat on the mat. the dog sat on the log. " * 30
CHARS = sorted(set(TEXT))
TOKENS = torch.tensor([CHARS.index(c) for c in TEXT], dtype=torch.long)
TRAIN, VAL = TOKENS[:1200], TOKENS[1200:]
MODEL = GPTConfig(vocab_size=len(CHARS), block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1)
RUN = TrainConfig(max_iters=20, eval_interval=5, eval_iters=2, batch_size=8, block_size=8, learning_rate=3e-3,
                  warmup_iters=3, decay_lr=True, weight_decay=0.1, grad_clip=1.0, compile=False)


pytestmark = pytest.mark.usefixtures("one_thread")


def fresh_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(MODEL)


def run(config: TrainConfig, model: GPT | None = None, **kwargs) -> tuple[GPT, History]:
    model = model or fresh_model()
    return model, train(model, TRAIN, VAL, config, progress=False, **kwargs)


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
    assert TrainConfig(learning_rate=0.1).lr_at(0) == 0.1  # no warmup by default


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


# ---------------------------------------------------------------- a run with checkpoints


def test_run_writes_checkpoints_and_a_consistent_history(tmp_path):
    seen = []
    model, history = run(replace(RUN, out_dir=str(tmp_path)), meta={"tokenizer": {"type": "char", "chars": CHARS}},
                         on_eval=lambda step, h: seen.append((step, len(h.steps))))
    assert history.steps == [0, 5, 10, 15, 20]
    assert seen == [(0, 1), (5, 2), (10, 3), (15, 4), (20, 5)]
    assert len(history.train) == len(history.val) == len(history.lr) == len(history.seconds) == 5
    assert history.lr == [RUN.lr_at(s) for s in history.steps]
    assert history.seconds == sorted(history.seconds)
    assert history.best_val == min(history.val)
    assert history.best_step == history.steps[history.val.index(min(history.val))]
    assert history.final_val == history.val[-1]
    assert history.val[-1] < history.val[0]  # it learned something
    assert history.full_val is None

    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.safetensors", "last.safetensors"]
    last = checkpoint.load(tmp_path / "last.safetensors", expected_config=MODEL)
    best = checkpoint.load(tmp_path / "best.safetensors", expected_config=MODEL)
    assert last.step == 20 and best.step == history.best_step
    assert last.optimizer_state is not None and last.rng_state is not None
    assert best.optimizer_state is None
    assert last.meta["tokenizer"]["chars"] == CHARS
    assert last.meta["train_config"]["max_iters"] == 20
    assert last.meta["history"]["val"] == history.val
    for name, value in model.state_dict().items():
        assert torch.equal(last.model_state[name], value), name


def test_no_out_dir_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(replace(RUN, max_iters=5))
    assert list(tmp_path.iterdir()) == []


def test_checkpoints_need_a_gpt(tmp_path):
    with pytest.raises(ValueError, match="config"):
        train(BigramLanguageModel(len(CHARS)), TRAIN, VAL, replace(RUN, out_dir=str(tmp_path)), progress=False)


def test_resume_continues_exactly(tmp_path):
    """A run stopped after a checkpoint and resumed ends with the very weights of an uninterrupted run."""
    config = replace(RUN, max_iters=20, eval_interval=5)
    model_a, history_a = run(replace(config, out_dir=str(tmp_path / "a")))

    def interrupt(step, history):
        if step == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(replace(config, out_dir=str(tmp_path / "b")), on_eval=interrupt)
    assert checkpoint.load(tmp_path / "b" / "last.safetensors").step == 10

    torch.manual_seed(123)  # whatever happened in between (other initialisation, other dropout draws)
    torch.rand(1000)
    model_c, history_c = run(replace(config, out_dir=str(tmp_path / "b"), resume=True), model=fresh_model(seed=99))

    for (name, a), c in zip(model_a.state_dict().items(), model_c.state_dict().values()):
        assert torch.equal(a, c), f"{name} differs after resume"
    assert history_c.steps == history_a.steps == [0, 5, 10, 15, 20]
    assert history_c.train == history_a.train
    assert history_c.val == history_a.val
    assert history_c.lr == history_a.lr
    assert (history_c.best_val, history_c.best_step) == (history_a.best_val, history_a.best_step)
    assert checkpoint.load(tmp_path / "b" / "last.safetensors").step == 20


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
    torch.manual_seed(0)
    other = GPT(replace(MODEL, n_embd=32))
    with pytest.raises(checkpoint.CheckpointError, match="n_embd"):
        run(replace(RUN, max_iters=10, out_dir=str(tmp_path), resume=True), model=other)


# ---------------------------------------------------------------- divergence


def nan_after(model: GPT, bad_call: int) -> None:
    """From the `bad_call`-th training forward pass on (0-based), the loss is NaN."""
    original = model.forward
    calls = {"n": 0}

    def forward(idx, targets=None, caches=None):
        logits, loss = original(idx, targets, caches)
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
    assert "kept" in message and str(tmp_path / "last.safetensors") in message
    ckpt = checkpoint.load(tmp_path / "last.safetensors")
    assert ckpt.step == 5  # the last evaluation before the loss broke
    restored, _ = checkpoint.load_model(tmp_path / "last.safetensors")
    assert all(torch.isfinite(p).all() for p in restored.parameters())


def test_nan_loss_without_out_dir():
    model = fresh_model()
    nan_after(model, 0)
    with pytest.raises(TrainingDiverged, match="step 0.*no checkpoint"):
        run(RUN, model=model)


def test_huge_learning_rate_diverges(tmp_path):
    config = replace(RUN, max_iters=200, eval_interval=1000, learning_rate=1e10, warmup_iters=0, decay_lr=False,
                     grad_clip=0.0, weight_decay=0.0, out_dir=str(tmp_path))
    with pytest.raises(TrainingDiverged, match=r"at step \d+; the last checkpoint .* was kept"):
        run(config)
    assert checkpoint.load(tmp_path / "last.safetensors").step == 0
    checkpoint.load_model(tmp_path / "last.safetensors")


# ---------------------------------------------------------------- the whole validation split


def test_full_val_is_the_split_loss():
    model, history = run(replace(RUN, max_iters=5, full_val=True))
    assert history.full_val is not None and math.isfinite(history.full_val)
    assert history.full_val == pytest.approx(split_loss(model, VAL, RUN.block_size, RUN.batch_size), rel=1e-6)
    assert model.training  # split_loss restores the mode


@pytest.mark.parametrize("length,block_size,batch_size", [(10, 4, 64), (9, 4, 1), (8, 4, 2), (2, 1, 3), (37, 5, 2),
                                                          (5, 8, 4)])
def test_split_loss_scores_every_next_token_once(length, block_size, batch_size):
    """A bigram model's prediction ignores context, so the exact answer is one cross-entropy over all pairs."""
    torch.manual_seed(0)
    model = BigramLanguageModel(7)
    data = torch.randint(0, 7, (length,), generator=torch.Generator().manual_seed(length))
    with torch.no_grad():
        expected = F.cross_entropy(model.token_logits(data[:-1]), data[1:]).item()
    assert split_loss(model, data, block_size, batch_size) == pytest.approx(expected, rel=1e-6)


def test_split_loss_by_hand_with_a_gpt():
    """With context, the windows matter: consecutive windows of block_size, the last one shorter."""
    model = fresh_model().eval()
    data = TOKENS[:23]
    with torch.no_grad():
        total = 0.0
        for start in range(0, 22, 8):  # windows 0..7, 8..15, 16..21 (predicting 1..22)
            x = data[start:min(start + 8, 22)][None]
            y = data[start + 1:min(start + 9, 23)][None]
            total += F.cross_entropy(model(x)[0][0], y[0], reduction="sum").item()
    assert split_loss(model, data, 8, 2) == pytest.approx(total / 22, rel=1e-6)


def test_split_loss_needs_two_tokens():
    with pytest.raises(ValueError, match="at least 2"):
        split_loss(BigramLanguageModel(3), torch.tensor([1]), 4)
