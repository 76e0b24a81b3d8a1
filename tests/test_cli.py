"""The command line: `buildgpt train` a preset on the smoke profile, then `buildgpt sample` from it."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path

import pytest
import torch

from buildgpt import checkpoint, data, profiles
from buildgpt.cli import main

MIRROR = Path(os.environ.get(data.MIRROR_VAR) or data.PROJECT_ROOT.parent / "shared" / "data")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """One short smoke-profile run of shakespeare-char (20 steps), shared by the tests below."""
    if not (MIRROR / "tinyshakespeare" / "input.txt").is_file():
        pytest.skip(f"no data mirror at {MIRROR}")
    out_dir = tmp_path_factory.mktemp("run")
    stdout, stderr = io.StringIO(), io.StringIO()
    before = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(profiles.ENV_VAR, "smoke")
        mp.setenv(data.CACHE_VAR, str(tmp_path_factory.mktemp("cache")))
        mp.setenv(data.MIRROR_VAR, str(MIRROR))
        torch.set_num_threads(1)
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                rc = main(["train", "shakespeare-char", "--out-dir", str(out_dir), "--max-iters", "20"])
        finally:
            torch.set_num_threads(before)
    return {"rc": rc, "out_dir": out_dir, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


@pytest.fixture
def smoke(mirror, monkeypatch):
    monkeypatch.setenv(profiles.ENV_VAR, "smoke")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield mirror
    torch.set_num_threads(before)


def test_train_returns_0_and_writes_checkpoints(trained):
    assert trained["rc"] == 0, trained["stderr"][-2000:]
    out_dir = trained["out_dir"]
    assert sorted(p.name for p in out_dir.iterdir()) == ["best.safetensors", "last.safetensors"]
    last = checkpoint.load(out_dir / "last.safetensors")
    assert last.step == 20
    assert last.meta["preset"] == "shakespeare-char"
    assert last.meta["tokenizer"]["type"] == "char" and len(last.meta["tokenizer"]["chars"]) == 65
    assert last.meta["train_config"]["max_iters"] == 20
    assert last.model_config.vocab_size == 65
    assert last.model_config.to_dict().items() >= profiles.SETTINGS["gpt"]["smoke"]["model"].items()
    assert last.meta["history"]["steps"] == [0, 20]
    assert "best val loss" in trained["stdout"] and str(out_dir) in trained["stdout"]
    assert "parameters" in trained["stderr"] and "smoke" in trained["stderr"]


def ckpt(trained) -> str:
    return str(trained["out_dir"] / "best.safetensors")


def test_sample_prints_the_prompt_and_its_continuation(trained, capsys):
    assert main(["sample", ckpt(trained), "--prompt", "ROMEO:", "--max-new-tokens", "30", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ROMEO:")
    assert out.endswith("\n")
    assert len(out) == len("ROMEO:") + 30 + 1
    chars = set(checkpoint.load(ckpt(trained)).meta["tokenizer"]["chars"])
    assert set(out) <= chars
    # the same seed gives the same text
    assert main(["sample", ckpt(trained), "--prompt", "ROMEO:", "--max-new-tokens", "30", "--seed", "1"]) == 0
    assert capsys.readouterr().out == out


def test_sample_greedy_with_and_without_cache(trained, capsys):
    """Exactly the same text with float32 weights; the default float16 copy runs the same loop."""
    args = ["sample", ckpt(trained), "--prompt", "KING:", "--max-new-tokens", "20", "--temperature", "0"]
    assert main(args + ["--full-precision"]) == 0
    cached = capsys.readouterr().out
    assert main(args + ["--no-cache"]) == 0
    assert capsys.readouterr().out == cached
    assert len(cached) == len("KING:") + 20 + 1
    assert main(args) == 0
    half = capsys.readouterr().out
    assert half.startswith("KING:") and len(half) == len(cached)


def test_sample_with_top_k_top_p_and_no_prompt(trained, capsys):
    assert main(["sample", ckpt(trained), "--max-new-tokens", "10", "--top-k", "5", "--top-p", "0.9",
                 "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert len(out) == 10 + 1  # the default prompt (a newline) is not printed


def test_long_prompt_is_cropped_with_a_note(trained, capsys):
    prompt = "To be, or not to be, that is the question: " * 2  # longer than the 32-token window
    assert main(["sample", ckpt(trained), "--prompt", prompt, "--max-new-tokens", "5", "--seed", "0"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(prompt) and len(captured.out) == len(prompt) + 5 + 1
    assert "context window" in captured.err


def test_unknown_character_in_prompt_returns_2(trained, capsys):
    assert main(["sample", ckpt(trained), "--prompt", "ROMEO~", "--max-new-tokens", "5"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error:")
    assert "'~'" in captured.err


@pytest.mark.parametrize("content", [b"garbage, not a checkpoint", None])
def test_corrupt_or_missing_checkpoint_returns_2(trained, tmp_path, capsys, content):
    path = tmp_path / "broken.safetensors"
    if content is None:  # the first half of a real checkpoint
        data_bytes = (trained["out_dir"] / "best.safetensors").read_bytes()
        content = data_bytes[: len(data_bytes) // 2]
    path.write_bytes(content)
    assert main(["sample", str(path), "--prompt", "A"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error:") and "broken.safetensors" in captured.err
    assert captured.out == ""
    assert main(["sample", str(tmp_path / "absent.safetensors")]) == 2
    assert "absent.safetensors" in capsys.readouterr().err


def test_checkpoint_without_a_tokenizer_returns_2(tmp_path, capsys):
    from buildgpt.model import GPT, GPTConfig

    path = checkpoint.save(tmp_path / "bare.safetensors", GPT(GPTConfig(vocab_size=5, n_layer=1, n_embd=8,
                                                                        n_head=2, block_size=4)), 0, meta={})
    assert main(["sample", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "bare.safetensors" in err and "tokenizer" in err


def test_resume_continues_from_the_checkpoint(trained, smoke, tmp_path, capsys):
    out_dir = tmp_path / "resumed"
    shutil.copytree(trained["out_dir"], out_dir)
    before = checkpoint.load(out_dir / "last.safetensors")
    assert main(["train", "shakespeare-char", "--out-dir", str(out_dir), "--max-iters", "40", "--resume"]) == 0
    after = checkpoint.load(out_dir / "last.safetensors")
    assert after.step == 40
    # the history goes on from where it stopped: step 20 is not measured again
    assert after.meta["history"]["steps"] == [0, 20, 30, 40]
    assert after.meta["history"]["val"][:2] == before.meta["history"]["val"]
    assert "best val loss" in capsys.readouterr().out


def test_train_with_a_bad_profile_returns_2(smoke, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(profiles.ENV_VAR, "huge")
    assert main(["train", "shakespeare-char", "--out-dir", str(tmp_path), "--max-iters", "1"]) == 2
    assert "BUILDGPT_PROFILE" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_usage_errors_exit_2(capsys):
    for argv in ([], ["train"], ["train", "no-such-preset"], ["sample"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    capsys.readouterr()
