"""`torchrun ... -m buildgpt.cli train` on 2 gloo CPU ranks: a rank killed mid-run, its last checkpoint
resumed in one process, and that one's resumed on 2 ranks with --fsdp."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from buildgpt import cli
from buildgpt.train import checkpoint, distributed

pytestmark = pytest.mark.usefixtures("one_thread")


def train_args(out_dir: Path, *extra: str) -> list[str]:
    return ["-m", "buildgpt.cli", "train", "shakespeare-char", "--out-dir", str(out_dir), *extra]


def rank_pids(launcher_pid: int) -> dict[int, int]:
    """torchrun's worker processes, by the RANK in their environment."""
    children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text().split()
    ranks = {}
    for pid in map(int, children):
        env = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
        if "RANK" in env:
            ranks[int(env["RANK"])] = pid
    return ranks


@pytest.fixture
def smoke_env(mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("BUILDGPT_PROFILE", "smoke")
    # TMPDIR: torchrun's log folder goes to the test's own, not one more left in /tmp
    return {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "TMPDIR": str(tmp_path)}


def test_a_killed_rank_stops_the_run_and_resume_continues_from_its_checkpoint(tmp_path, smoke_env):
    out = tmp_path / "run"
    command = distributed.torchrun_command(train_args(out, "--max-iters", "1000000"), 2)
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=smoke_env)
    try:
        deadline = time.monotonic() + 60
        while not (out / "last.safetensors").is_file():  # the step-0 evaluation wrote the first checkpoint
            assert launcher.poll() is None and time.monotonic() < deadline, launcher.communicate()[0][-3000:]
            time.sleep(0.2)
        victim = rank_pids(launcher.pid)[1]
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        output, _ = launcher.communicate(timeout=60)
    finally:
        launcher.kill()
    assert launcher.returncode != 0
    assert time.monotonic() - killed < 60
    assert "rank      : 1" in output and f"pid: {victim}" in output and "SIGKILL" in output, output[-3000:]
    assert f"the last checkpoint, {out / 'last.safetensors'}, is intact: go on with --resume" in output, output[-3000:]

    kept = checkpoint.load(out / "last.safetensors")  # intact, whatever step it was written at
    assert len(kept.rng_state) == 4  # rank 0's batches, evaluation, dropout, then rank 1's batches

    # The distributed run's checkpoint, resumed in one process: one more step.
    assert cli.main(["train", "shakespeare-char", "--out-dir", str(out), "--resume",
                     "--max-iters", str(kept.step + 1)]) == 0
    single = checkpoint.load(out / "last.safetensors")
    assert single.step == kept.step + 1

    # One process's checkpoint, written without FSDP2, resumed on 2 ranks with it.
    resumed = distributed.launch(train_args(out, "--resume", "--fsdp", "--max-iters", str(single.step + 2)), 2,
                                 env=smoke_env, timeout=120)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert resumed.stderr.count("parameters, seed") == 1  # only rank 0 speaks
    after = checkpoint.load(out / "last.safetensors")
    assert after.step == single.step + 2
    assert after.meta["history"]["steps"][:len(single.meta["history"]["steps"])] == single.meta["history"]["steps"]


def test_torchrun_restarts_after_a_killed_rank_and_the_same_command_goes_on_from_the_checkpoint(tmp_path, smoke_env):
    """With --max-restarts, torchrun starts every rank again when one dies, with the same arguments: under
    --resume-if-exists the first launch starts the run and the restart goes on with it."""
    out, iters = tmp_path / "run", 4000
    command = distributed.torchrun_command(["--max-restarts=1", *train_args(out, "--resume-if-exists", "--max-iters",
                                                                             str(iters))], 2)
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=smoke_env)
    last = out / "last.safetensors"
    try:
        deadline = time.monotonic() + 60
        while not (last.is_file() and checkpoint.load(last).step > 0):  # something to go on from
            assert launcher.poll() is None and time.monotonic() < deadline, launcher.communicate()[0][-3000:]
            time.sleep(0.05)
        kept = checkpoint.load(last).meta["history"]
        os.kill(rank_pids(launcher.pid)[1], signal.SIGKILL)
        output, _ = launcher.communicate(timeout=240)
    finally:
        launcher.kill()
    assert launcher.returncode == 0, output[-3000:]
    # the first attempt's rank 0 learns of it from gloo, or from torchrun's SIGTERM if that comes first
    assert "error on rank 0: a collective failed" in output or "stopped by SIGTERM" in output, output[-3000:]
    assert "is intact: torchrun starts the ranks again (--max-restarts)" in output, output[-3000:]
    assert output.count("parameters, seed") == 2, output[-3000:]  # rank 0 of each attempt speaks once
    final = checkpoint.load(last).meta["history"]
    assert final["steps"][-1] == iters
    # went on from a checkpoint: what was measured before the kill, wall-clock times included, is still there
    assert {k: final[k][:len(kept[k])] for k in ("steps", "seconds", "val")} == \
        {k: kept[k] for k in ("steps", "seconds", "val")}


def test_the_calculator_refuses_torchrun(monkeypatch, capsys):
    for key, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(key, value)
    assert cli.main(["train", "calculator"]) == 2
    assert "the calculator trains from scratch in one process: leave out torchrun" in capsys.readouterr().err
