"""The command line: `buildgpt train` a preset on the smoke profile, then `buildgpt sample` from it.

Also, as separate processes: two runs with the same settings give bit-identical weights, and a run
killed with SIGKILL at random moments and launched again with the same command (`--resume-if-exists`,
as torchrun's restarts and a requeued job do) ends exactly where an uninterrupted run does.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from buildgpt.cli import main
from buildgpt.data import registry
from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.settings import profiles
from buildgpt.settings.chapters import settings_for
from buildgpt.train import checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory, smoke_cli) -> dict:
    """One short smoke-profile run of shakespeare-char (20 steps), shared by the tests below."""
    out_dir = tmp_path_factory.mktemp("run")
    stdout, stderr = io.StringIO(), io.StringIO()
    with smoke_cli(tmp_path_factory.mktemp("cache")):
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            rc = main(["train", "shakespeare-char", "--out-dir", str(out_dir), "--max-iters", "20"])
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
    assert last.model_config["vocab_size"] == 65
    assert last.model_config.items() >= settings_for("gpt", "smoke").model.to_dict().items()
    assert last.meta["history"]["steps"] == [0, 20]
    assert "best val loss" in trained["stdout"] and str(out_dir) in trained["stdout"]
    assert "parameters" in trained["stderr"] and "smoke" in trained["stderr"]


def ckpt(trained) -> str:
    return str(trained["out_dir"] / "best.safetensors")


def test_a_new_run_never_writes_over_an_earlier_one(trained, smoke, capsys):
    out_dir = trained["out_dir"]
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    for preset in ("shakespeare-char", "calculator"):
        assert main(["train", preset, "--out-dir", str(out_dir), "--max-iters", "2"]) == 2
        assert "holds a run already (last.safetensors, best.safetensors): go on with --resume" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before


@pytest.mark.parametrize("how", [[], ["--resume-if-exists"]])
def test_a_best_checkpoint_alone_is_not_written_over_either(trained, smoke, tmp_path, capsys, how):
    """A folder that holds only a best.safetensors (its last deleted to save space, or a best copied there to keep)
    is an earlier run's too, and nothing to go on from."""
    kept = tmp_path / "kept"
    kept.mkdir()
    shutil.copy(ckpt(trained), kept / "best.safetensors")
    before = (kept / "best.safetensors").read_bytes()
    assert main(["train", "shakespeare-char", "--out-dir", str(kept), "--max-iters", "2", *how]) == 2
    err = capsys.readouterr().err
    assert "holds a run already (best.safetensors): start a new run in another --out-dir" in err
    assert (kept / "best.safetensors").read_bytes() == before and sorted(kept.iterdir()) == [kept / "best.safetensors"]


def test_a_folder_that_cannot_be_written_is_refused_before_training(tmp_path, smoke, capsys, monkeypatch):
    """As root every folder is writable, so the permission is stood in for; the check and its timing are tested."""
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked)
    assert main(["train", "shakespeare-char", "--out-dir", str(locked), "--max-iters", "2"]) == 2
    assert "cannot write checkpoints to" in capsys.readouterr().err and list(locked.iterdir()) == []


def test_a_checkpoint_that_cannot_be_read_says_so(trained, capsys, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != Path(ckpt(trained)))
    assert main(["sample", ckpt(trained)]) == 2
    assert "cannot be read: permission denied" in capsys.readouterr().err


def test_a_folder_the_output_cannot_be_written_to_is_an_error_not_a_traceback(trained, capsys, monkeypatch, tmp_path):
    from buildgpt import cli

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "out" / ".x.tmp"))
    monkeypatch.setattr(cli, "export_hf", denied)
    assert main(["export-hf", ckpt(trained), str(tmp_path / "out" / "hf")]) == 2
    assert capsys.readouterr().err == f"error: cannot write in {tmp_path / 'out'}: permission denied; choose a folder you can write to\n"


def test_resume_if_exists_starts_a_run_then_goes_on_with_it(tmp_path, smoke):
    argv = ["train", "shakespeare-char", "--out-dir", str(tmp_path), "--resume-if-exists", "--max-iters"]
    assert main([*argv, "10"]) == 0
    assert main([*argv, "20"]) == 0
    assert checkpoint.load(tmp_path / "last.safetensors").meta["history"]["steps"] == [0, 10, 20]


def test_resume_needs_a_run_to_go_on_from(tmp_path, smoke, capsys):
    assert main(["train", "shakespeare-char", "--out-dir", str(tmp_path / "typo"), "--resume"]) == 2
    assert "there is no" in capsys.readouterr().err and not (tmp_path / "typo").exists()


@pytest.mark.parametrize("argv", [["train", "shakespeare-char", "--out-dir", ""], ["sample", " "],
                                  ["export-hf", "c.safetensors", ""], ["quantize", "c.safetensors", "--format", "int8",
                                                                        "--out", ""]])
def test_an_empty_path_is_refused_not_taken_for_the_default(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and "an empty path: give a file or folder name" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written, not even the default folder


@pytest.mark.parametrize("raw, position", [(b"he\xffllo", 2), (b"\x80", 0)])
def test_a_byte_that_is_not_utf8_is_named_as_a_byte(raw, position, capsys):
    """A byte that is not UTF-8 in argv reaches Python as a lone surrogate (U+DC80..U+DCFF)."""
    prompt = raw.decode("utf-8", "surrogateescape")
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", "c.safetensors", "--prompt", prompt])
    assert exit_info.value.code == 2
    assert f"the byte 0x{raw[position]:02X} at position {position} is not UTF-8 text" in capsys.readouterr().err


@pytest.mark.parametrize("seed", ["-1", str(2**63), "99999999999999999999"])
def test_a_seed_out_of_range_is_refused_by_the_parser(trained, capsys, seed):
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", ckpt(trained), "--seed", seed])
    assert exit_info.value.code == 2 and "a seed is a whole number from 0 to 2**63 - 1" in capsys.readouterr().err


def test_a_reader_that_stops_early_ends_the_sample_quietly(trained, smoke):
    """`buildgpt sample ... | head -c 20`: no BrokenPipeError traceback, the exit code of a closed pipe."""
    reader = subprocess.Popen(["head", "-c", "20"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    writer = subprocess.run([sys.executable, "-m", "buildgpt.cli", "sample", ckpt(trained), "--max-new-tokens",
                             "20000", "--seed", "0"], stdout=reader.stdin, stderr=subprocess.PIPE, text=True,
                            timeout=120)
    reader.stdin.close()
    reader.wait(timeout=10)
    assert writer.returncode == 141 and "Traceback" not in writer.stderr, writer.stderr[-2000:]


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
    assert main(args + ["--weights", "fp32"]) == 0
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


@pytest.mark.parametrize("flag, value", [("--temperature", "nan"), ("--temperature", "-1"), ("--top-p", "0"),
                                         ("--max-new-tokens", "-3")])
def test_bad_sampling_arguments_are_refused_before_the_prompt_is_printed(trained, capsys, flag, value):
    assert main(["sample", ckpt(trained), "--prompt", "KING:", flag, value]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error:")


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


def test_an_interruption_between_the_two_checkpoint_writes_keeps_best_consistent(smoke, tmp_path, monkeypatch,
                                                                                    capsys):
    """A run that dies after writing one of best/last at an evaluation, but not the other, resumes into
    a best.safetensors that is the step its history calls best."""
    real_save, written = checkpoint.save, []

    def save_then_die(path, model, step, *args, **kwargs):
        written.append(step)
        if step == 20 and written.count(20) == 2:  # the second file of the final evaluation
            raise KeyboardInterrupt
        return real_save(path, model, step, *args, **kwargs)

    out_dir = tmp_path / "run"
    argv = ["train", "shakespeare-char", "--out-dir", str(out_dir), "--max-iters", "20"]
    with monkeypatch.context() as mp:
        mp.setattr(checkpoint, "save", save_then_die)
        assert main(argv) == 130
    assert main(argv + ["--resume"]) == 0
    last = checkpoint.load(out_dir / "last.safetensors")
    best = checkpoint.load(out_dir / "best.safetensors")
    assert last.step == 20 and last.meta["history"]["steps"] == [0, 20]
    assert best.step == last.meta["history"]["best_step"] == 20
    assert all(torch.equal(best.model_state[k], v) for k, v in last.model_state.items())
    capsys.readouterr()


def test_train_with_a_bad_profile_returns_2(smoke, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(profiles.ENV_VAR, "huge")
    assert main(["train", "shakespeare-char", "--out-dir", str(tmp_path), "--max-iters", "1"]) == 2
    assert "BUILDGPT_PROFILE" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_while_sampling_stops_with_130_and_no_traceback(trained, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        yield torch.tensor([[0]])
        raise KeyboardInterrupt

    monkeypatch.setattr("buildgpt.cli.generate_stream", interrupted)
    assert main(["sample", ckpt(trained), "--prompt", "ROMEO:", "--max-new-tokens", "50"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


def test_the_calculator_refuses_the_text_presets_options(smoke, capsys):
    for option in (["--fsdp"], ["--init-from", "checkpoints/novels-char/best.safetensors"]):
        assert main(["train", "calculator", *option]) == 2
        assert "leave out torchrun, --fsdp and --init-from" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    for argv in ([], ["train"], ["train", "no-such-preset"], ["sample"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    capsys.readouterr()


# ---------------------------------------------------------------- whole runs as separate processes

RUN_ITERS = 300  # ten checkpoints (the smoke profile evaluates every 30 steps), about a second of training
LOSS_FIELDS = ("steps", "train", "val", "lr", "tokens", "best_val", "best_step")  # not the wall-clock ones


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory, mirror_dir) -> dict[str, str]:
    """The environment of a `buildgpt train` process: smoke profile, the mirror, a private cache, one thread."""
    env = dict(os.environ)
    env.update({profiles.ENV_VAR: "smoke", registry.MIRROR_VAR: str(mirror_dir),
                registry.CACHE_VAR: str(tmp_path_factory.mktemp("cli-cache")), "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1"})
    return env


def start_training(out_dir: Path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    log = open(out_dir.parent / f"{out_dir.name}.log", "ab")  # tqdm's bar must not fill a pipe
    with log:
        return subprocess.Popen([sys.executable, "-m", "buildgpt.cli", "train", "shakespeare-char",
                                 "--out-dir", str(out_dir), "--max-iters", str(RUN_ITERS), *extra],
                                env=env, stdout=log, stderr=subprocess.STDOUT)


def run_training(out_dir: Path, env: dict[str, str], *extra: str) -> Path:
    proc = start_training(out_dir, env, *extra)
    rc = proc.wait(timeout=300)
    assert rc == 0, (out_dir.parent / f"{out_dir.name}.log").read_text()[-2000:]
    return out_dir / "last.safetensors"


def all_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor in a checkpoint file: the weights, the optimizer state and the random states."""
    from safetensors.torch import load_file

    return load_file(str(path))


def assert_same_tensors(a: Path, b: Path, with_optimizer: bool = True) -> None:
    ta, tb = all_tensors(a), all_tensors(b)
    assert sorted(ta) == sorted(tb)
    assert any(k.startswith("model.") for k in ta)
    assert any(k.startswith("optim.") for k in ta) == with_optimizer  # last.safetensors: the optimizer too
    different = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert different == [], f"{len(different)} tensors differ, e.g. {different[:5]}"


def loss_history(path: Path) -> dict:
    history = checkpoint.load(path).meta["history"]
    return {k: history[k] for k in LOSS_FIELDS}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, cli_env) -> Path:
    """One uninterrupted `buildgpt train shakespeare-char --max-iters RUN_ITERS` with the profile's seed."""
    return run_training(tmp_path_factory.mktemp("reference") / "out", cli_env)


def test_two_runs_give_bit_identical_weights(reference_run, tmp_path, cli_env):
    again = run_training(tmp_path / "again", cli_env)
    assert_same_tensors(reference_run, again)
    assert loss_history(again) == loss_history(reference_run)
    assert loss_history(again)["steps"] == list(range(0, RUN_ITERS + 1, 30))
    # best.safetensors too: the same weights
    assert_same_tensors(reference_run.parent / "best.safetensors", again.parent / "best.safetensors",
                        with_optimizer=False)


def test_the_seed_is_recorded_and_a_different_seed_gives_different_weights(reference_run, tmp_path, cli_env):
    default_seed = settings_for("gpt", "smoke").train.seed
    assert checkpoint.load(reference_run).meta["train_config"]["seed"] == default_seed
    other = run_training(tmp_path / "other", cli_env, "--seed", str(default_seed + 1))
    assert checkpoint.load(other).meta["train_config"]["seed"] == default_seed + 1
    a, b = checkpoint.load(reference_run).model_state, checkpoint.load(other).model_state
    assert sorted(a) == sorted(b)
    # every tensor differs: the initial weights follow the seed, not only the batches
    assert not any(torch.equal(a[k], b[k]) for k in a if a[k].numel() > 1)
    assert loss_history(other)["val"] != loss_history(reference_run)["val"]


def _identity(path: Path):
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def _wait_for_new_checkpoint(proc: subprocess.Popen, path: Path, before, timeout: float = 120.0) -> None:
    """Until `path` is a different file than `before` (checkpoints are replaced, never rewritten) or the run ends."""
    deadline = time.monotonic() + timeout
    while _identity(path) in (None, before) and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)


def test_kill_9_at_random_moments_then_resume_ends_exactly_like_an_uninterrupted_run(reference_run, tmp_path,
                                                                                        cli_env):
    rng = random.Random(20240607)
    out_dir = tmp_path / "killed"
    last = out_dir / "last.safetensors"
    killed_at = []  # the step of the checkpoint each killed process had last written
    for _ in range(3):
        before = _identity(last)
        proc = start_training(out_dir, cli_env, "--resume-if-exists")  # the first launch starts, the others go on
        try:
            _wait_for_new_checkpoint(proc, last, before)
            time.sleep(rng.uniform(0.0, 0.3))  # mid-step, mid-evaluation or mid-write: wherever it falls
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        finally:
            rc = proc.wait(timeout=60)
        if rc == -signal.SIGKILL:
            killed_at.append(checkpoint.load(last).step)
        else:
            assert rc == 0, (tmp_path / "killed.log").read_text()[-2000:]
    assert killed_at, "every run finished before its kill: nothing was resumed"
    # A kill may also land after the last checkpoint, while the run scores the whole val split: nothing is lost
    # then either, but the test is about resuming mid-run, so at least one kill must come before the end.
    assert any(step < RUN_ITERS for step in killed_at), killed_at
    run_training(out_dir, cli_env, "--resume-if-exists")
    assert checkpoint.load(last).step == RUN_ITERS
    assert_same_tensors(reference_run, last)
    assert loss_history(last) == loss_history(reference_run)
    # best.safetensors is never older than the history says, even when a kill fell between the two writes
    best = checkpoint.load(out_dir / "best.safetensors")
    assert best.step == loss_history(last)["best_step"]
    ref_best = checkpoint.load(reference_run.parent / "best.safetensors")
    assert all(torch.equal(best.model_state[k], ref_best.model_state[k]) for k in ref_best.model_state)


def test_sigterm_stops_training_with_a_message_and_an_intact_checkpoint(tmp_path, cli_env):
    """How torchrun stops the other ranks when one dies, or `kill` stops a run: as Ctrl-C does, saying what was kept."""
    out_dir = tmp_path / "terminated"
    proc = start_training(out_dir, cli_env, "--max-iters", "1000000")
    try:
        _wait_for_new_checkpoint(proc, out_dir / "last.safetensors", None)
        proc.send_signal(signal.SIGTERM)
    finally:
        rc = proc.wait(timeout=60)
    said = (tmp_path / "terminated.log").read_text()
    assert rc == 143, said[-2000:]
    assert f"stopped by SIGTERM; the last checkpoint, {out_dir / 'last.safetensors'}, is intact" in said
    assert "Traceback" not in said
    checkpoint.load(out_dir / "last.safetensors")
