"""The exercises work as exercises: in each chapter, the stub fails its check, the hidden solution
passes it, and a deliberately wrong solution fails it with a message that names the mistake.

The cells are found by their tags (`stub`, `solution`, `check`; the i-th of each form one
exercise) in the chapter read with jupytext, and executed with `exec` in a fresh namespace, as a
learner runs them in order. The checks themselves are tested against PyTorch and other
independent implementations, so the reference is not the only thing that passes.
"""

from __future__ import annotations

import math
from pathlib import Path

import jupytext
import pytest
import torch
import torch.nn.functional as F

from buildgpt.data.arithmetic import IGNORE_INDEX, decode
from buildgpt.exercises import addition, batched_heads, pretrain_finetune, researcher

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = ["ex1-batched-heads", "ex2-addition", "ex3-pretrain-finetune", "ex4-researcher"]

pytestmark = pytest.mark.usefixtures("one_thread")


def tagged_cells(chapter: str, tag: str) -> list[str]:
    notebook = jupytext.read(BOOK / f"{chapter}.md")
    return [c.source for c in notebook.cells if c.cell_type == "code" and tag in c.metadata.get("tags", [])]


def exercises(chapter: str) -> list[tuple[str, str, str]]:
    """(stub, solution, check) sources, one triple per exercise of the chapter."""
    stubs, solutions, checks = (tagged_cells(chapter, tag) for tag in ("stub", "solution", "check"))
    assert stubs and len(stubs) == len(solutions) == len(checks), (
        f"{chapter}: {len(stubs)} stub, {len(solutions)} solution and {len(checks)} check cells")
    return list(zip(stubs, solutions, checks))


def run(*sources: str) -> dict:
    namespace: dict = {}
    for source in sources:
        exec(compile(source, "<cell>", "exec"), namespace)
    return namespace


EXERCISES = [(chapter, i) for chapter in CHAPTERS for i in range(len(exercises(chapter)))]
IDS = [f"{chapter}-{i}" for chapter, i in EXERCISES]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solutions_are_hidden_between_stub_and_check(chapter):
    notebook = jupytext.read(BOOK / f"{chapter}.md")
    order = [tag for c in notebook.cells for tag in c.metadata.get("tags", []) if tag in ("stub", "solution", "check")]
    assert order == ["stub", "solution", "check"] * (len(order) // 3), order
    for cell in notebook.cells:
        if "solution" in cell.metadata.get("tags", []):
            assert "hide-input" in cell.metadata["tags"], "a solution must be hidden until the learner opens it"


@pytest.mark.parametrize("chapter,i", EXERCISES, ids=IDS)
def test_the_stub_fails_its_check(chapter, i):
    stub, _, check = exercises(chapter)[i]
    with pytest.raises(NotImplementedError, match="your code here"):
        run(stub, check)


@pytest.mark.parametrize("chapter,i", EXERCISES, ids=IDS)
def test_the_solution_passes_its_check(chapter, i, capsys):
    stub, solution, check = exercises(chapter)[i]
    run(stub, solution, check)
    assert "✓" in capsys.readouterr().out


# The chapter's own solution with one line changed: (chapter, exercise, text, replacement, the message must say)
WRONG_SOLUTIONS = [
    ("ex1-batched-heads", 0, "scores = scores.masked_fill(", "scores = scores  # .masked_fill(", "not causal"),
    ("ex1-batched-heads", 0, "/ math.sqrt(hs)", "/ math.sqrt(C)", "the whole width"),
    ("ex1-batched-heads", 0, "/ math.sqrt(hs)", "", "not scaled"),
    ("ex1-batched-heads", 0, "t.view(B, T, n_head, hs).transpose(1, 2)", "t.reshape(B, n_head, T, hs)", "split"),
    ("ex1-batched-heads", 0, "y.transpose(1, 2).reshape(B, T, C)", "y.reshape(B, T, C)", "without transposing"),
    ("ex1-batched-heads", 0, "dim=-1) @ v", "dim=-2) @ v", "queries"),
    ("ex1-batched-heads", 0, "return y.transpose(1, 2).reshape(B, T, C)", "return y", "shape"),
    ("ex2-addition", 0, ".zfill(width + 1)[::-1]", ".zfill(width + 1)", "not reversed"),
    ("ex2-addition", 0, "str(a + b).zfill(width + 1)[::-1]", "str(a + b)[::-1].zfill(width + 1)", "padded after reversing"),
    ("ex2-addition", 0, "str(a + b).zfill(width + 1)[::-1]", "str(a + b)[::-1]", "not zero-padded"),
    ("ex2-addition", 0, "y[:len(prompt) - 1] = [IGNORE_INDEX] * (len(prompt) - 1)", "pass", "prompt's targets are scored"),
    ("ex2-addition", 0, "y[:len(prompt) - 1] = [IGNORE_INDEX] * (len(prompt) - 1)", "y[:len(prompt)] = [IGNORE_INDEX] * len(prompt)",
     "target of '=' is masked"),
    ("ex2-addition", 0, 'answer + "\\n"', "answer", "no final newline"),
    ("ex2-addition", 0, "x, y = ids[:-1], ids[1:]", "x, y = ids[:-1], ids[:-1]", "expected x"),
    ("ex3-pretrain-finetune", 0, "(step + 1) / warmup_iters", "step / warmup_iters", "warmup starts at 0"),
    ("ex3-pretrain-finetune", 0, "return min_lr + 0.5", "min_lr = 0.0\n    return min_lr + 0.5", "ends at 0"),
    ("ex3-pretrain-finetune", 0, "min(1.0, (step - warmup_iters)", "((step - warmup_iters)", "stay at min_lr"),
    ("ex3-pretrain-finetune", 0, "0.5 * (1 + math.cos(math.pi * progress))", "(1 - progress)", "straight line"),
    ("ex4-researcher", 0, "a * sin + b * cos", "-a * sin + b * cos", "length of each pair"),
    ("ex4-researcher", 0, "(a * cos - b * sin, a * sin + b * cos)", "(a * cos + b * sin, -a * sin + b * cos)", "wrong way"),
    ("ex4-researcher", 0, "torch.arange(T)[:, None]", "(torch.arange(T)[:, None] + 1)", "position 0"),
    ("ex4-researcher", 0, "torch.arange(0, head_size, 2) / head_size", "torch.arange(head_size // 2) / head_size", "exponent"),
    ("ex4-researcher", 0, "base ** (", "10000.0 ** (", "base argument"),
    ("ex4-researcher", 1, "return x * torch.rsqrt", "x = x - x.mean(dim=-1, keepdim=True)\n    return x * torch.rsqrt",
     "subtracts the mean"),
    ("ex4-researcher", 1, "+ eps) * weight", "+ eps)", "gain"),
    ("ex4-researcher", 2, "F.silu(x @ gate_weight.T) * (x @ up_weight.T)", "(x @ gate_weight.T) * F.silu(x @ up_weight.T)",
     "belongs on the gate"),
    ("ex4-researcher", 2, "F.silu(x @ gate_weight.T)", "F.relu(x @ gate_weight.T)", "ReLU"),
    ("ex4-researcher", 2, "return hidden @ down_weight.T", "return hidden", "shape"),
]


@pytest.mark.parametrize("chapter,i,text,replacement,message", WRONG_SOLUTIONS,
                         ids=[f"{c}-{i}-{m.replace(' ', '_')}" for c, i, _, _, m in WRONG_SOLUTIONS])
def test_a_wrong_solution_fails_with_a_message_that_names_the_mistake(chapter, i, text, replacement, message):
    stub, solution, check = exercises(chapter)[i]
    assert text in solution, f"the chapter's solution no longer contains {text!r}: update this test"
    with pytest.raises(AssertionError, match=message):
        run(stub, solution.replace(text, replacement), check)


def test_pytorchs_attention_passes_the_batched_heads_check(capsys):
    """Independent of the package: the heads through torch's fused causal attention."""
    def torch_heads(x, qkv_weight, n_head):
        B, T, C = x.shape
        q, k, v = (t.unflatten(-1, (n_head, C // n_head)).transpose(1, 2) for t in (x @ qkv_weight.T).split(C, -1))
        return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).flatten(-2)
    batched_heads.check_all_heads_attention(torch_heads)
    assert "✓ torch_heads" in capsys.readouterr().out


def test_a_loop_over_heads_passes_too():
    """The check tests the function, not the style: one head at a time is the same function."""
    def looped(x, qkv_weight, n_head):
        B, T, C = x.shape
        hs = C // n_head
        q, k, v = (x @ qkv_weight.T).split(C, -1)
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        outs = []
        for h in range(n_head):
            part = slice(h * hs, (h + 1) * hs)
            scores = (q[..., part] @ k[..., part].transpose(-2, -1) / math.sqrt(hs)).masked_fill(~mask, -math.inf)
            outs.append(scores.softmax(-1) @ v[..., part])
        return torch.cat(outs, -1)
    batched_heads.check_all_heads_attention(looped)


def test_llamas_complex_rope_passes_the_rope_check():
    """Meta's LLaMA rotates neighbouring pairs as complex numbers times e^(i p θ): the same function."""
    def complex_rope(x, base=10000.0):
        T, hs = x.shape[-2:]
        angles = torch.outer(torch.arange(T).float(), base ** (-torch.arange(0, hs, 2).float() / hs))
        turned = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)).contiguous()) * torch.polar(torch.ones_like(angles), angles)
        return torch.view_as_real(turned).flatten(-2)
    researcher.check_apply_rope(complex_rope)


def test_torchs_rmsnorm_passes_the_rms_norm_check():
    def torch_rms_norm(x, weight, eps=1e-6):
        layer = torch.nn.RMSNorm(x.shape[-1], eps=eps)
        layer.weight.data.copy_(weight)
        return layer(x)
    researcher.check_rms_norm(torch_rms_norm)


def test_the_schedule_reference_by_hand():
    """Warmup of 10 to 1e-3: step 0 takes 1e-4, step 9 the peak; half-way through the decay, the mean of peak and floor."""
    assert math.isclose(pretrain_finetune.reference_lr(0, 110, 1e-3, 1e-4, 10), 1e-4)
    assert math.isclose(pretrain_finetune.reference_lr(9, 110, 1e-3, 1e-4, 10), 1e-3)
    assert math.isclose(pretrain_finetune.reference_lr(60, 110, 1e-3, 1e-4, 10), 5.5e-4)
    assert math.isclose(pretrain_finetune.reference_lr(500, 110, 1e-3, 1e-4, 10), 1e-4)


def test_the_addition_reference_by_hand():
    """Written out by hand: 57 + 968 = 1025, padded to 057+968= and 1025 reversed, prompt targets masked."""
    x, y = addition.reference_encoding(57, 968, 3)
    assert decode(x) == "057+968=5201"
    assert y[:7] == [IGNORE_INDEX] * 7 and decode(y[7:]) == "5201\n"


def test_a_written_out_silu_passes_the_swiglu_check():
    """SiLU written out as z * sigmoid(z), independent of the package and of F.silu."""
    def swiglu(x, gate_weight, up_weight, down_weight):
        g = x @ gate_weight.T
        return (g * torch.sigmoid(g) * (x @ up_weight.T)) @ down_weight.T
    researcher.check_swiglu(swiglu)


def test_answers_that_work_in_place_pass_too():
    """A right answer that writes into its input must not change what the reference is computed from."""
    def rope_in_place(x, base=10000.0):
        T, hs = x.shape[-2:]
        angles = torch.outer(torch.arange(T).float(), base ** (-torch.arange(0, hs, 2).float() / hs))
        a, b = x[..., 0::2].clone(), x[..., 1::2].clone()
        x[..., 0::2], x[..., 1::2] = a * angles.cos() - b * angles.sin(), a * angles.sin() + b * angles.cos()
        return x

    researcher.check_apply_rope(rope_in_place)


def test_a_function_that_returns_no_tensor_is_told_so():
    with pytest.raises(AssertionError, match="returned a NoneType, not a tensor"):
        researcher.check_apply_rope(lambda x, base=10000.0: None)


def test_the_checks_leave_the_learners_random_state_alone():
    state = torch.random.get_rng_state()
    batched_heads.check_all_heads_attention(batched_heads._variant)  # with nothing changed, a right answer
    assert torch.equal(torch.random.get_rng_state(), state)
