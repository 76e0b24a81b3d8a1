"""Exact-match evaluation: the batched, cached greedy decoder equals the plain one, and a tiny model learns to add."""

from __future__ import annotations

import pytest
import torch

from buildgpt.data.arithmetic import (
    NEWLINE,
    OPS,
    STOI,
    VOCAB,
    ArithmeticBatches,
    ArithmeticFormat,
    Problem,
    decode,
    encode,
    held_out_problems,
    sample_problems,
)
from buildgpt.infer.arithmetic import (
    ArithmeticEval,
    digit_accuracy_by_carries,
    evaluate_problems,
    greedy_decode,
    greedy_reference,
)
from buildgpt.infer.batched import decode_until
from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.train.loop import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


def random_model(block_size: int = 48, seed: int = 0, **options) -> GPT:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=len(VOCAB), block_size=block_size, n_layer=2, n_head=4, n_embd=32, dropout=0.0,
                          **options)).double()  # float64: no near-tie decides an argmax differently in a batch
    with torch.no_grad():  # make newlines and ">" likely enough that rows stop at different steps
        model.lm_head.bias[STOI[NEWLINE]] += 2.5
        model.lm_head.bias[STOI[">"]] += 1.0
        model.lm_head.weight.mul_(20)
    return model


@pytest.mark.parametrize("position", ["learned", "none", "rope", "alibi"])
@pytest.mark.parametrize("stop_at_marker", [False, True])
def test_batched_decode_equals_one_at_a_time(position, stop_at_marker):
    model = random_model(position=position)
    problems = sample_problems(40, 3, OPS, torch.Generator().manual_seed(0), min_digits=3)
    prompts = torch.tensor([encode(ArithmeticFormat().prompt(p)) for p in problems])  # 3-digit operands: one length
    batched = greedy_decode(model, prompts, 12, stop_at_marker)
    slow = [greedy_reference(model, row.tolist(), 12, stop_at_marker) for row in prompts]
    assert batched == slow
    lengths = {len(row) for row in batched}
    assert len(lengths) > 1  # some rows stopped early and others did not: the stopping is exercised


def test_decode_stops_at_the_first_newline_or_the_budget():
    model = random_model()
    prompts = torch.tensor([encode("12+34=")] * 3)
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.bias.zero_()
        model.lm_head.bias[STOI[NEWLINE]] = 1.0
    assert greedy_decode(model, prompts, 5) == [[STOI[NEWLINE]]] * 3
    assert greedy_decode(model, prompts, 5, stop_at_marker=True) == [[STOI[NEWLINE]] * 5] * 3  # no ">" yet


def test_decode_checks_the_window():
    model = random_model(block_size=10)
    with pytest.raises(ValueError, match="block_size"):
        greedy_decode(model, torch.tensor([encode("123+456=")]), 4)
    with pytest.raises(ValueError, match="window"):
        greedy_reference(model, encode("123+456="), 4)


def test_decode_until_checks_its_settings_and_may_generate_nothing():
    model, prompts = random_model(), torch.tensor([encode("12+34=")] * 2)
    assert decode_until(model, prompts, 0, lambda t: t == STOI[NEWLINE]) == [[], []]
    for settings, match in (((-1, 0.0), "max_new_tokens"), ((3, float("nan")), "temperature")):
        with pytest.raises(ValueError, match=match):
            decode_until(model, prompts, *settings[:1], lambda t: t == STOI[NEWLINE], temperature=settings[1])


def test_evaluate_groups_prompt_lengths_and_matches_the_reference():
    model = random_model()
    fmt = ArithmeticFormat(trace=True)
    problems = sample_problems(60, 2, OPS, torch.Generator().manual_seed(2))  # prompts of 4 to 6 characters
    result = evaluate_problems(model, problems, fmt, batch_size=7)
    for p, completion in zip(problems, result.completions):
        budget = max(len(fmt.completion(q)) for q in problems if len(fmt.prompt(q)) == len(fmt.prompt(p))) + 1
        assert completion == decode(greedy_reference(model, encode(fmt.prompt(p)), budget, stop_at_marker=True))
    assert result.correct == [fmt.parse(c, p.op) == p.answer for c, p in zip(result.completions, problems)]


def test_evaluate_scores_exact_answers(monkeypatch):
    fmt, problems = ArithmeticFormat(width=2), held_out_problems(30, 2)
    answers = {fmt.prompt(p): fmt.completion(p) for p in problems}
    answers[fmt.prompt(problems[0])] = "0000\n"  # one wrong
    answers[fmt.prompt(problems[1])] = fmt.completion(problems[1])[:-1] + "1\n"  # one run on

    def fake_decode(model, prompts, max_new_tokens, stop_at_marker=False):
        return [encode(answers[decode(row)]) for row in prompts]

    monkeypatch.setattr("buildgpt.infer.arithmetic.greedy_decode", fake_decode)
    result = evaluate_problems(random_model(), problems, fmt)
    assert result.correct == [False, False] + [True] * 28 and result.accuracy == pytest.approx(28 / 30)
    assert result.predicted[1] is None and len(result.mistakes()) == 2


def test_a_tiny_gpt_learns_one_digit_addition():
    """Reversed, masked, 1-digit addition: a few hundred steps take it far above chance, held-out included."""
    fmt, held_out = ArithmeticFormat(width=1), held_out_problems(20, 1)
    batches = ArithmeticBatches(fmt, 1, held_out)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(VOCAB), block_size=batches.length, n_layer=2, n_head=4, n_embd=64,
                          dropout=0.0))
    config = TrainConfig(max_iters=400, eval_interval=400, eval_iters=2, batch_size=64, learning_rate=3e-3,
                         compile=False)
    history = train(model, batches, config, progress=False)
    assert history.val[-1] < 0.5 * history.val[0]
    trained = [Problem(a, "+", b) for a in range(10) for b in range(10) if Problem(a, "+", b) not in held_out]
    assert evaluate_problems(model, trained, fmt).accuracy > 0.6
    assert evaluate_problems(model, held_out, fmt).accuracy > 0.15  # chance is about 1 in 19 per digit


def test_digit_accuracy_by_carries_counts_each_digit_among_problems_with_that_many_carries():
    problems = [Problem(1, "+", 2), Problem(5, "+", 5), Problem(9, "+", 9)]  # carries: 0, 1, 1
    result = ArithmeticEval(problems, ["", "", ""], [3, 11, 18], [True, False, True])  # 5+5 read as 11
    table = digit_accuracy_by_carries(result, 1)
    assert table[0] == [1.0, 1.0]
    assert table[1] == [0.5, 1.0]  # units wrong once in two; tens right both times
    mixed = ArithmeticEval([*problems, Problem(7, "*", 8)], [""] * 4, [3, 11, 18, 56], [True, False, True, True])
    with pytest.raises(ValueError, match=r"additions; these problems also hold \['\*'\]"):
        digit_accuracy_by_carries(mixed, 1)
