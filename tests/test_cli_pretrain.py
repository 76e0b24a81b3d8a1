"""Exercise 3 from the command line: `buildgpt train novels-char`, then `shakespeare-char --init-from` it."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch

from buildgpt.cli import main
from buildgpt.data import registry
from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.settings import profiles
from buildgpt.settings.chapters import settings_for
from buildgpt.tokenizers.chat import SPECIAL_TOKENS, ChatTokenizer
from buildgpt.train import checkpoint


def run(argv: list[str]) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = main(argv)
    return rc, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, smoke_cli):
    """A 10-step smoke pretraining on the novels, prepared into a private cache, then a finetune from it."""
    out = tmp_path_factory.mktemp("runs")
    start = str(out / "novels" / "last.safetensors")
    with smoke_cli(tmp_path_factory.mktemp("cache")):
        pre = run(["train", "novels-char", "--out-dir", str(out / "novels"), "--max-iters", "10"])
        fine = run(["train", "shakespeare-char", "--init-from", start, "--out-dir", str(out / "finetuned"),
                    "--max-iters", "6"])
        unmoved = run(["train", "shakespeare-char", "--init-from", start, "--out-dir", str(out / "zero-steps"),
                       "--max-iters", "0"])
    return {"out": out, "pre": pre, "fine": fine, "unmoved": unmoved}


def test_novels_char_pretrains_with_the_shared_vocabulary(pretrained):
    rc, stdout, stderr = pretrained["pre"]
    assert rc == 0, stderr[-2000:]
    last = checkpoint.load(pretrained["out"] / "novels" / "last.safetensors")
    assert last.meta["preset"] == "novels-char" and last.step == 10
    chars = last.meta["tokenizer"]["chars"]
    assert len(chars) == last.model_config["vocab_size"] == 185
    assert set(registry.load_text("tinyshakespeare")) <= set(chars)
    assert "best val loss" in stdout


def test_finetuning_starts_from_the_pretrained_weights_with_the_finetuning_schedule(pretrained):
    rc, stdout, stderr = pretrained["fine"]
    assert rc == 0, stderr[-2000:]
    start = checkpoint.load(pretrained["out"] / "novels" / "last.safetensors")
    fine = checkpoint.load(pretrained["out"] / "finetuned" / "last.safetensors")
    assert fine.meta["init_from"].endswith("last.safetensors")
    assert fine.model_config == start.model_config
    assert fine.meta["train_config"]["learning_rate"] == settings_for("pretrain", "smoke").finetune.learning_rate
    assert "final loss on the whole val split" in stdout
    assert any(not torch.equal(fine.model_state[k], v) for k, v in start.model_state.items())
    # zero finetuning steps leave exactly the pretrained weights
    assert pretrained["unmoved"][0] == 0, pretrained["unmoved"][2][-2000:]
    unmoved = checkpoint.load(pretrained["out"] / "zero-steps" / "last.safetensors")
    assert unmoved.model_state.keys() == start.model_state.keys()
    assert all(torch.equal(unmoved.model_state[k], v) for k, v in start.model_state.items())


def write_char_checkpoint(path, chars, vocab_size=None, tokenizer=True, chat=False, tokenizer_meta=None):
    tokenizer_meta = tokenizer_meta or (ChatTokenizer(chars).to_meta() if chat else {"type": "char", "chars": chars})
    vocab_size = vocab_size or len(chars) + (len(SPECIAL_TOKENS) if chat else 0)
    model = GPT(GPTConfig(vocab_size=vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=8))
    meta = {"tokenizer": tokenizer_meta} if tokenizer else {}
    checkpoint.save(path, model, step=0, meta=meta)
    return str(path)


@pytest.mark.parametrize("case, message", [
    ("few-chars", "characters that the vocabulary"),
    ("no-tokenizer", "not a character-level model"),
    ("tokenizer-a-string", "not a character-level model"),  # a damaged header: was an AttributeError
    ("vocab-size", "vocab_size is 70 but its tokenizer has 65"),
    ("chat-tuned", "is chat-tuned; --init-from finetunes a plain character model"),
])
def test_init_from_a_checkpoint_that_does_not_fit_is_refused(case, message, mirror, tmp_path, monkeypatch):
    monkeypatch.setenv(profiles.ENV_VAR, "smoke")
    shakespeare = sorted(set(registry.load_text("tinyshakespeare")))
    path = {"few-chars": lambda: write_char_checkpoint(tmp_path / "c.safetensors", list("abcdefgh \n")),
            "no-tokenizer": lambda: write_char_checkpoint(tmp_path / "c.safetensors", shakespeare, tokenizer=False),
            "tokenizer-a-string": lambda: write_char_checkpoint(tmp_path / "c.safetensors", shakespeare,
                                                                tokenizer_meta="char"),
            "vocab-size": lambda: write_char_checkpoint(tmp_path / "c.safetensors", shakespeare, vocab_size=70),
            "chat-tuned": lambda: write_char_checkpoint(tmp_path / "c.safetensors", shakespeare, chat=True)}[case]()
    rc, _, stderr = run(["train", "shakespeare-char", "--init-from", path, "--out-dir", str(tmp_path / "out")])
    assert rc == 2 and message in stderr
    assert not (tmp_path / "out").exists()  # refused before anything was trained or written


def test_init_from_belongs_to_the_finetuning_preset(tmp_path):
    rc, _, stderr = run(["train", "novels-char", "--init-from", str(tmp_path / "x.safetensors")])
    assert rc == 2 and "shakespeare-char" in stderr
