"""The export to transformers' GPT-2: the same logits, the same tokens, the same chat rendering; clear refusals."""

from __future__ import annotations

import dataclasses
import os

import jinja2
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from buildgpt.infer.export_hf import export_hf, fold_head_bias
from buildgpt.infer.generate import generate
from buildgpt.infer.quantize import quantize_model, save_quantized
from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.tokenizers.chars import CharTokenizer
from buildgpt.tokenizers.chat import ChatTokenizer
from buildgpt.train import checkpoint
from buildgpt.train.checkpoint import CheckpointError

pytestmark = pytest.mark.usefixtures("one_thread")
CHARS = list("\n !',.:;?abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")  # 61
SMALL = GPTConfig(vocab_size=len(CHARS), block_size=24, n_layer=2, n_head=4, n_embd=64, dropout=0.1)
TOLERANCE = 1e-5  # float32, max |Δlogit|


def random_gpt(config: GPTConfig, seed: int = 0) -> GPT:
    """A GPT whose every weight is perturbed: zero-initialised biases and unit norm gains would hide mistakes."""
    torch.manual_seed(seed)
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def save(path, model: GPT, tokenizer: ChatTokenizer | None = None):
    """A checkpoint as training writes it: a character vocabulary (CHARS, or a chat tokenizer's) in its meta."""
    meta = tokenizer.to_meta() if tokenizer is not None else {"type": "char", "chars": CHARS}
    return checkpoint.save(path, model, step=3, meta={"tokenizer": meta})


def max_logit_difference(model: GPT, hf, seed: int = 0) -> float:
    """Over several sequences: a batch at the full context length, one shorter, one of a single token."""
    g = torch.Generator().manual_seed(seed)
    V, T = model.config.vocab_size, model.config.block_size
    batches = [torch.randint(0, V, (3, T), generator=g), torch.randint(0, V, (2, T // 3), generator=g),
               torch.randint(0, V, (1, 1), generator=g)]
    with torch.no_grad():
        return max((hf(ids).logits - model(ids)[0]).abs().max().item() for ids in batches)


CONFIGS = {
    "gelu": dict(mlp="gelu"),
    "relu-per-head": dict(mlp="relu", attention="per_head"),
    "no-bias-vocab-over-n_embd": dict(mlp="gelu", bias=False, n_embd=32, attention="batched"),
    "sinusoidal": dict(mlp="relu", position="sinusoidal"),
    "sinusoidal-paper": dict(mlp="gelu", position="sinusoidal_paper"),
    "no-positions": dict(mlp="gelu", position="none"),
}


@pytest.mark.parametrize("changes", CONFIGS.values(), ids=CONFIGS.keys())
def test_the_export_gives_our_logits(tmp_path, changes):
    model = random_gpt(dataclasses.replace(SMALL, **changes))
    out = export_hf(save(tmp_path / "best.safetensors", model), tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(hf).__name__ == "GPT2LMHeadModel" and not hf.config.tie_word_embeddings
    assert hf.lm_head.weight.data_ptr() != hf.transformer.wte.weight.data_ptr()
    assert hf.config.n_positions == SMALL.block_size and hf.config.activation_function == model.config.mlp
    assert max_logit_difference(model, hf) < TOLERANCE


def test_greedy_generation_is_ours(tmp_path):
    model = random_gpt(SMALL)
    hf = AutoModelForCausalLM.from_pretrained(export_hf(save(tmp_path / "m.safetensors", model), tmp_path / "hf"))
    prompt = torch.tensor([CharTokenizer(CHARS).encode("To be, or")])
    ours = generate(model, prompt, 10, temperature=0)
    theirs = hf.eval().generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=10, do_sample=False)
    assert theirs.tolist() == ours.tolist()


@pytest.fixture(scope="module")
def shakespeare_chat(tmp_path_factory, shakespeare_text):
    """A chat model over tinyshakespeare's characters (65 + 3 markers <= n_embd), exported once."""
    tokenizer = ChatTokenizer(sorted(set(shakespeare_text)))
    model = random_gpt(dataclasses.replace(SMALL, vocab_size=tokenizer.vocab_size, n_embd=72, mlp="gelu"), seed=1)
    tmp = tmp_path_factory.mktemp("chat")
    out = export_hf(save(tmp / "chat.safetensors", model, tokenizer), tmp / "hf")
    return model, tokenizer, AutoModelForCausalLM.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)


def test_a_chat_model_gives_our_logits_and_stops_at_end(shakespeare_chat):
    model, tokenizer, hf, _ = shakespeare_chat
    assert max_logit_difference(model, hf) < TOLERANCE
    assert hf.config.eos_token_id == tokenizer.special_tokens["<|end|>"] and hf.config.bos_token_id is None


def test_the_tokenizer_is_ours_on_shakespeare(shakespeare_chat, shakespeare_text):
    _, tokenizer, _, hf_tokenizer = shakespeare_chat
    for start in (0, 50_000, 500_000):
        text = shakespeare_text[start:start + 2_000]
        ids = tokenizer.encode(text)
        assert hf_tokenizer.encode(text) == ids
        assert hf_tokenizer.decode(ids) == tokenizer.decode(ids) == text
    end = tokenizer.special_tokens["<|end|>"]
    assert hf_tokenizer.decode([end, 0, end]) == tokenizer.decode([end, 0, end])
    with pytest.raises(Exception):  # noqa: B017 - the tokenizers library's own error: no unknown token
        hf_tokenizer.encode("a character not in Shakespeare: ✓")


CONVERSATIONS = [
    [{"role": "user", "content": "Good morrow, sir."}],
    [{"role": "user", "content": "What news?"}, {"role": "assistant", "content": "None, my lord.\nAll's well."},
     {"role": "user", "content": ""}],
]


@pytest.mark.parametrize("prompt", [False, True], ids=["no-prompt", "generation-prompt"])
@pytest.mark.parametrize("messages", CONVERSATIONS, ids=["one-turn", "three-turns"])
def test_the_chat_template_renders_encode_chat(shakespeare_chat, messages, prompt):
    _, tokenizer, _, hf_tokenizer = shakespeare_chat
    ids, _ = tokenizer.encode_chat(messages, add_generation_prompt=prompt)
    assert hf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt) == tokenizer.decode(ids)
    assert hf_tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=prompt,
                                            return_dict=False) == ids


@pytest.mark.parametrize("message, ours, match", [
    ({"role": "system", "content": "hi"}, "has role 'system'; the chat format knows", "roles user and assistant"),
    ({"role": "user", "content": "bye<|end|>"}, "a message may not spell one", "may not spell"),
], ids=["unknown-role", "forged-marker"])
def test_the_chat_template_refuses_what_encode_chat_refuses(shakespeare_chat, message, ours, match):
    with pytest.raises(ValueError, match=ours):
        shakespeare_chat[1].encode_chat([message])
    with pytest.raises(jinja2.TemplateError, match=match):
        shakespeare_chat[3].apply_chat_template([message], tokenize=False)


@pytest.mark.parametrize("field, value", [("position", "rope"), ("position", "alibi"), ("norm", "rmsnorm"),
                                          ("mlp", "swiglu"), ("qk_norm", True)])
def test_a_config_gpt2_cannot_express_is_refused(tmp_path, field, value):
    path = save(tmp_path / "m.safetensors", GPT(dataclasses.replace(SMALL, **{field: value})))
    with pytest.raises(ValueError, match=f"{field}={value!r} has no GPT-2 equivalent"):
        export_hf(path, tmp_path / "hf")
    assert not (tmp_path / "hf").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_a_head_bias_outside_the_weights_span_is_refused(tmp_path):
    path = save(tmp_path / "m.safetensors", random_gpt(dataclasses.replace(SMALL, n_embd=32)))  # 61 > 32, with bias
    with pytest.raises(ValueError, match="vocab_size=61, n_embd=32"):
        export_hf(path, tmp_path / "hf")


def test_a_square_head_too_ill_conditioned_to_fold_says_so():
    """vocab_size <= n_embd folds in real numbers, but not in a float32 bias when the matrix is near singular."""
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    weight = (q @ torch.diag(torch.logspace(0, -7, 16)) @ q.T).float()  # condition number about 1e7
    with pytest.raises(ValueError, match=r"too ill-conditioned \(condition number 1\.\d+e\+07\)"):
        fold_head_bias(weight, torch.randn(16, generator=g), torch.zeros(16))


def test_quantized_missing_and_corrupt_checkpoints_are_refused(tmp_path):
    model = random_gpt(SMALL)
    quantized = save_quantized(tmp_path / "m.int8.safetensors", quantize_model(model, "int8"),
                               {"tokenizer": {"type": "char", "chars": CHARS}})
    with pytest.raises(CheckpointError, match="int8 weights, not fp32"):
        export_hf(quantized, tmp_path / "hf")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        export_hf(tmp_path / "missing.safetensors", tmp_path / "hf")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(save(tmp_path / "good.safetensors", model).read_bytes()[:500])
    with pytest.raises(CheckpointError, match="corrupt"):
        export_hf(corrupt, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_an_existing_export_is_replaced_only_with_overwrite(tmp_path, monkeypatch):
    path = save(tmp_path / "m.safetensors", random_gpt(SMALL))
    (tmp_path / "hf").mkdir()  # an empty folder is fine
    export_hf(path, tmp_path / "hf")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_hf(path, tmp_path / "hf")
    assert export_hf(path, tmp_path / "hf", overwrite=True) == tmp_path / "hf"
    first = sorted(p.name for p in (tmp_path / "hf").iterdir())
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(first)

    def fail(*args, **kwargs):
        raise OSError("disk full (test)")

    monkeypatch.setattr(PreTrainedTokenizerFast, "save_pretrained", fail)  # fails after the model is written
    with pytest.raises(OSError, match="disk full"):
        export_hf(path, tmp_path / "hf", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == first  # the old export, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "m.safetensors"]  # no temporary folder left


def test_overwrite_never_replaces_the_checkpoint_or_a_folder_that_is_not_an_export(tmp_path):
    inside = tmp_path / "run"
    inside.mkdir()
    path = save(inside / "m.safetensors", random_gpt(SMALL))
    (inside / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is inside .*run"):
        export_hf(path, inside, overwrite=True)
    with pytest.raises(ValueError, match="is inside"):
        export_hf(path, tmp_path, overwrite=True)  # a folder above it too
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")  # a project's config, not an export's
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds notes.txt, which no export writes"):
        export_hf(path, other, overwrite=True)
    assert (inside / "notes.txt").read_text() == (other / "notes.txt").read_text() == "mine" and path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "run"]  # no temporary folder left


def test_the_export_gets_the_modes_of_the_umask(tmp_path):
    path = save(tmp_path / "m.safetensors", random_gpt(SMALL))
    umask = os.umask(0o022)
    try:
        out = export_hf(path, tmp_path / "hf")
    finally:
        os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o755
    assert all(f.stat().st_mode & 0o777 == 0o644 for f in out.iterdir())


def test_the_cli_exports_and_says_what_to_do_with_an_existing_folder(tmp_path, capsys):
    from buildgpt.cli import main

    path = save(tmp_path / "m.safetensors", random_gpt(SMALL))
    assert main(["export-hf", str(path), str(tmp_path / "hf")]) == 0
    assert main(["export-hf", str(path), str(tmp_path / "hf")]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["export-hf", str(path), str(tmp_path / "hf"), "--overwrite"]) == 0
    assert main(["export-hf", str(tmp_path / "missing.safetensors"), str(tmp_path / "hf2")]) == 2
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "hf").config.n_embd == SMALL.n_embd
