"""`buildgpt train calculator` and `buildgpt calc`: a tiny smoke-profile calculator, then every kind of bad input.

The tiny model is mostly wrong, so the tests check what is printed and returned, not accuracy;
the check against Python is tested on completions forced to be right or wrong.
"""

from __future__ import annotations

import contextlib
import io
import re

import pytest
import torch

from buildgpt.cli import main
from buildgpt.data.arithmetic import OPS, VOCAB, ArithmeticFormat, Problem, encode
from buildgpt.infer.arithmetic import greedy_decode
from buildgpt.infer.calculator import Calculator, CalculatorInputError, check, parse_expression
from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.settings import profiles
from buildgpt.settings.chapters import settings_for
from buildgpt.train import checkpoint

TRACED = ArithmeticFormat(reverse=True, trace=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """One 30-step smoke-profile calculator, shared by the tests below."""
    out_dir = tmp_path_factory.mktemp("calc")
    stdout, stderr = io.StringIO(), io.StringIO()
    before = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(profiles.ENV_VAR, "smoke")
        torch.set_num_threads(1)
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                rc = main(["train", "calculator", "--out-dir", str(out_dir), "--max-iters", "30"])
        finally:
            torch.set_num_threads(before)
    return {"rc": rc, "ckpt": str(out_dir / "best.safetensors"), "out_dir": out_dir,
            "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


def run(argv: list[str], capsys, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_train_writes_a_calculator_checkpoint_and_scores_each_operation(trained):
    assert trained["rc"] == 0, trained["stderr"][-2000:]
    ckpt = checkpoint.load(trained["ckpt"])
    settings = settings_for("calculator", "smoke")
    assert ckpt.meta["task"] == "calculator"
    assert ckpt.meta["format"] == {"reverse": True, "width": settings.digits, "trace": settings.trace, "reverse_operands": False}
    assert ckpt.meta["digits"] == settings.digits and ckpt.meta["ops"] == list(OPS)
    assert ckpt.meta["train_config"]["max_iters"] == 30
    assert ckpt.model_config["vocab_size"] == len(VOCAB)
    scores = trained["stdout"].splitlines()[-1]
    assert scores.startswith("held-out exact match") and all(f"{op} " in scores for op in OPS), scores
    assert "%" in scores


def test_one_shot_prints_the_trace_the_answer_and_a_verdict(trained, capsys):
    rc, out, err = run(["calc", trained["ckpt"], " +57 * 68 "], capsys)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("57*68=")  # the prompt, then the model's working as it wrote it
    assert lines[-2].startswith("answer: ")
    assert lines[-1] == "correct" or lines[-1].startswith("wrong: ") and "Python says 3876" in lines[-1]
    assert "warning" not in err


def test_the_stream_is_the_batched_greedy_decode(trained):
    calc = Calculator.from_checkpoint(trained["ckpt"])
    problem = Problem(98, "/", 7)
    prompt = encode(calc.fmt.prompt(problem))
    budget = calc.model.config.block_size - len(prompt) + 1
    expected = greedy_decode(calc.model, torch.tensor([prompt]), budget, stop_at_marker=True)[0]
    assert "".join(calc.stream(problem)) == "".join(VOCAB[i] for i in expected)


def test_check_against_python():
    p = Problem(1234, "*", 56)
    assert check(p, TRACED.completion(p), TRACED).message == "correct"
    wrong = check(p, "7404,7404\n>00000\n", TRACED)
    assert not wrong.correct and wrong.value == 0
    assert wrong.message == "wrong: the model says 0; Python says 69104"
    assert "no answer line" in check(p, "7404,7404\n", TRACED).message  # ran out before the ">" line
    d = Problem(1234, "/", 56)
    assert check(d, TRACED.completion(d), TRACED).value == (22, 2)
    assert check(d, ">22,3\n", TRACED).message == "wrong: the model says 22 remainder 3; Python says 22 remainder 2"


def test_a_forced_right_completion_prints_correct(trained, monkeypatch):
    calc = Calculator.from_checkpoint(trained["ckpt"])
    monkeypatch.setattr(Calculator, "stream", lambda self, p: iter(self.fmt.completion(p)))
    out = io.StringIO()
    assert calc.solve("1 + 2", out).correct
    assert out.getvalue() == "01+02=00\n>300\nanswer: 3\ncorrect\n"


@pytest.mark.parametrize("text, problem", [("1234*56", Problem(1234, "*", 56)), (" 12 + 3 ", Problem(12, "+", 3)),
                                           ("+7-9", Problem(7, "-", 9)), ("+ 8 / 3", Problem(8, "/", 3)),
                                           ("007*1", Problem(7, "*", 1))])
def test_parse_expression(text, problem):
    assert parse_expression(text) == problem


@pytest.mark.parametrize("text, message", [
    ("", "empty expression"), ("   ", "empty expression"),
    ("12x4", "unknown symbol 'x' at position 3"), ("  2^8", "unknown symbol '^' at position 2 of '2^8'"),
    ("3.5+1", "unknown symbol '.' at position 2"), ("1+2+3", "one operation at a time"),
    ("-5+3", "negative numbers"), ("5*-3", "negative numbers"), ("1234", "no operation"),
    ("12+", "missing after '+'"), ("*4", "missing before '*'"), ("1 2+3", "space inside a number"),
    ("7/0", "division by zero"),
])
def test_bad_expressions_say_what_is_wrong(text, message):
    with pytest.raises(CalculatorInputError, match=re.escape(message)):
        parse_expression(text)


@pytest.mark.parametrize("text, message", [("12x4", "unknown symbol 'x' at position 3"), ("", "empty expression"),
                                           ("7/0", "division by zero"),
                                           ("-5+3", "negative numbers")])  # not mistaken for an option
def test_bad_input_in_one_shot_mode_exits_2(trained, capsys, text, message):
    rc, out, err = run(["calc", trained["ckpt"], text], capsys)
    assert rc == 2 and out == ""
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_division_by_zero_never_calls_the_model(trained, monkeypatch):
    calc = Calculator.from_checkpoint(trained["ckpt"])
    monkeypatch.setattr(Calculator, "stream", lambda self, p: pytest.fail("the model was called"))
    with pytest.raises(CalculatorInputError, match="division by zero"):
        calc.solve("5 / 0", io.StringIO())


@pytest.mark.parametrize("problem", [Problem(9999, "+", 9999), Problem(12, "*", 3456), Problem(12345, "/", 7),
                                     Problem(100, "-", 2345)])
def test_a_right_answer_to_longer_operands_than_trained_is_read_as_right(problem):
    """The working and answer a 2-digit calculator should write for longer operands are as wide as they are."""
    fmt = ArithmeticFormat(reverse=True, width=2, trace=True)
    assert check(problem, fmt.completion(problem), fmt).message == "correct"


def test_longer_operands_than_trained_are_answered_and_flagged(trained, capsys):
    rc, out, err = run(["calc", trained["ckpt"], "123+4"], capsys)
    assert rc == 0
    assert "trained up to 2 digits" in err and "has 3" in err
    answer = next(line for line in out.splitlines() if line.startswith("answer: "))
    assert "outside training" in answer
    assert out.splitlines()[-1] == "correct" or "Python says 127" in out.splitlines()[-1]


def test_a_problem_whose_working_cannot_fit_the_window_is_refused_not_blamed_on_the_model(trained, capsys):
    rc, out, err = run(["calc", trained["ckpt"], "12345678901234567890+1"], capsys)
    assert rc == 2 and out == ""
    assert "is too long: its working and answer take" in err and "use shorter numbers" in err


def test_interactive_mode_goes_on_after_blank_and_bad_lines(trained, capsys, monkeypatch):
    stdin = "12+34\n\n   \n5%3\n9 - 4\n8/0\n-1+2\nquit\n1+1\n"
    rc, out, err = run(["calc", trained["ckpt"]], capsys, stdin, monkeypatch)
    assert rc == 2  # piped in, not typed: the exit code tells a script that some lines were refused
    prompts = [line.split("=")[0] for line in out.splitlines() if "=" in line]
    assert prompts == ["12+34", "09-04"]  # "quit" ended it before 1+1
    assert out.count("answer: ") == 2
    errors = err.splitlines()
    assert len(errors) == 3 and all(e.startswith("error: ") for e in errors)
    assert "'%' at position 2" in errors[0] and "division by zero" in errors[1] and "negative" in errors[2]


def test_interactive_mode_ends_at_eof(trained, capsys, monkeypatch):
    rc, out, err = run(["calc", trained["ckpt"]], capsys, "1+1", monkeypatch)  # no final newline
    assert rc == 0 and out.startswith("01+01=") and out.count("answer: ") == 1 and err == ""


def test_a_checkpoint_that_is_not_a_calculator(tmp_path, capsys):
    model = GPT(GPTConfig(vocab_size=65, block_size=8, n_layer=1, n_head=1, n_embd=8))
    path = checkpoint.save(tmp_path / "chars.safetensors", model, step=0,
                           meta={"preset": "shakespeare-char", "tokenizer": {"type": "char", "chars": "x" * 65}})
    rc, out, err = run(["calc", str(path), "1+1"], capsys)
    assert rc == 2 and out == ""
    assert "not a calculator checkpoint" in err and "shakespeare-char" in err and "buildgpt train calculator" in err
    plain = checkpoint.save(tmp_path / "plain.safetensors", model, step=0, meta={})
    rc, _, err = run(["calc", str(plain)], capsys)
    assert rc == 2 and "not a calculator checkpoint" in err and "no task" in err


def test_a_missing_checkpoint(tmp_path, capsys):
    rc, out, err = run(["calc", str(tmp_path / "nothing.safetensors"), "1+1"], capsys)
    assert rc == 2 and "no checkpoint at" in err and "buildgpt train calculator" in err and "Traceback" not in err
