"""Data parallelism on 2 gloo CPU ranks: DDP is one process's training, FSDP2 is DDP's, DCP loads anywhere.

One torchrun launch (`distributed_runs equivalence`) trains a few steps of the loop with DDP and
then with FSDP2 and leaves its weights, bytes per rank, a DCP checkpoint and logits; the tests
compare them with one process here. Plus the process-group helpers' bad input.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.train import distributed, distributed_runs, sharded
from buildgpt.train.loop import TrainConfig

MODEL = GPTConfig(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.0, mlp="gelu")
# Warmup, cosine decay, weight decay and clipping all on: the whole step is compared, not just the gradient.
RUN = TrainConfig(max_iters=3, eval_iters=1, batch_size=8, learning_rate=3e-3, warmup_iters=1, decay_lr=True,
                  weight_decay=0.1, grad_clip=1.0, compile=False)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = distributed_runs.write_spec(tmp_path_factory.mktemp("equivalence"), MODEL, RUN)
    result = distributed.launch(["-m", "buildgpt.train.distributed_runs", "equivalence", str(out)], 2, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, torch.load(out / "equivalence.pt", weights_only=True), result.stdout


def test_ddp_on_two_ranks_is_one_process_on_the_whole_batch(runs):
    _, results, _ = runs
    _, single = distributed_runs.run_steps(MODEL, RUN, distributed.Dist())
    assert results["ddp"].shape == single.shape == (RUN.max_iters + 1, GPT(MODEL).num_params())
    moved = (single[-1] - single[0]).abs().max().item()
    assert moved > 1e-3  # the steps did change the weights
    assert torch.allclose(results["ddp"], single, rtol=0, atol=5e-5), (results["ddp"] - single).abs().max()


def test_fsdp2_equals_ddp_step_for_step(runs):
    _, results, _ = runs
    assert torch.allclose(results["fsdp"], results["ddp"], rtol=0, atol=1e-6)


def test_both_ranks_log_and_hold_the_same_weights_under_ddp(runs):
    *_, stdout = runs
    for step in range(RUN.max_iters + 1):
        sums = {line.rsplit(" ", 1)[1] for line in stdout.splitlines() if f": step {step}," in line}
        assert len(sums) == 1, (step, sums)  # the same weights on both ranks (their losses differ)
    assert "rank 1: step 0" in stdout and "rank 0: step 0" in stdout


def test_fsdp2_splits_parameters_gradients_and_optimizer_state(runs):
    _, results, _ = runs
    ddp, fsdp = results["ddp_bytes"], results["fsdp_bytes"]
    params = GPT(MODEL).num_params() * 4
    for kind, per_param in (("parameters", 1), ("gradients", 1), ("optimizer state", 2)):
        assert all(rank[kind] == per_param * params for rank in ddp), kind  # every rank: everything
        assert sum(rank[kind] for rank in fsdp) == per_param * params, kind  # the ranks together: everything once
        assert max(rank[kind] for rank in fsdp) < 0.6 * per_param * params, kind  # each about half


def test_a_sharded_dcp_checkpoint_loads_into_one_process(runs):
    out, results, _ = runs
    model = GPT(MODEL)
    sharded.load_sharded(out / "dcp", model)
    with torch.no_grad():
        logits = model.eval()(results["input"])[0]
    assert torch.equal(logits, results["logits"])


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for key, value in {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match="4 processes on this machine but 1 GPU.*--nproc-per-node 1"):
        distributed.start("cuda")


def test_one_process_without_torchrun_needs_no_group(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    d = distributed.start("cpu")
    assert (d.rank, d.world_size, d.backend) == (0, 1, None) and d.is_main
    model = GPT(MODEL)
    assert distributed.wrap(model, d) is model
    with pytest.raises(ValueError, match="FSDP needs a process group"):
        distributed.wrap(model, d, fsdp=True)
    with pytest.raises(ValueError, match="not 'mps'"):
        distributed.start("mps")


def test_a_batch_that_does_not_split_evenly_is_refused():
    d = distributed.Dist(rank=0, world_size=3, backend="gloo")
    with pytest.raises(ValueError, match="batch of 8 does not split evenly across 3 ranks"):
        distributed_runs.run_steps(MODEL, RUN, d)


def test_free_port_is_a_loopback_port_nobody_holds():
    port = distributed.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
    command = distributed.torchrun_command(["-m", "buildgpt.cli"], 2)
    assert "--standalone" in command and "--nproc-per-node=2" in command  # this machine only, on a free port


HANGING_RANK = """
import os, sys, time
with open(os.path.join(sys.argv[1], os.environ["RANK"]), "w") as f:
    f.write(str(os.getpid()))
print("rank", os.environ["RANK"], "waiting", flush=True)
time.sleep(600)
"""


def test_ranks_past_the_timeout_are_stopped_with_their_output(tmp_path):
    script = tmp_path / "hang.py"
    script.write_text(HANGING_RANK)
    with pytest.raises(TimeoutError, match=r"(?s)had not finished after 12 s and were stopped.*rank \d waiting"):
        distributed.launch([str(script), str(tmp_path)], 2, timeout=12)
    pids = [int((tmp_path / rank).read_text()) for rank in ("0", "1")]
    for pid in pids:  # gone, or a zombie waiting to be reaped: not running
        status = Path(f"/proc/{pid}/status")
        assert not status.exists() or "State:\tZ" in status.read_text(), status.read_text()


RANK_ZERO_VALUE = """
import sys
from buildgpt.train import distributed
d = distributed.start("cpu")
got = distributed.rank_zero_value({"rank": d.rank, "resume": d.rank == 0})
sys.stdout.write(f"rank {d.rank} got {got}\\n")  # one write: the ranks share the pipe, and print writes in pieces
sys.stdout.flush()
distributed.shutdown()
"""


def test_every_rank_gets_rank_zeros_value_and_torchrun_leaves_no_logs_behind(tmp_path):
    script, temp = tmp_path / "value.py", tmp_path / "temp"
    script.write_text(RANK_ZERO_VALUE)
    temp.mkdir()
    result = distributed.launch([str(script)], 2, env={"TMPDIR": str(temp)}, timeout=120)
    assert list(temp.iterdir()) == []  # torchrun's own folder (torchelastic_*) went to launch's, now removed
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        assert f"rank {rank} got {{'rank': 0, 'resume': True}}" in result.stdout
    assert distributed.rank_zero_value("alone") == "alone"  # no process group: the value itself


def test_the_ring_allreduce_model():
    from buildgpt.train import scaling

    nbytes, bandwidth = 4e8, 50e9
    assert scaling.ring_allreduce_seconds(nbytes, 1, bandwidth, 1e-5) == 0.0  # alone: nothing to exchange
    assert scaling.ring_allreduce_seconds(nbytes, 2, bandwidth) == pytest.approx(nbytes / bandwidth)
    # many ranks: each sends almost twice the bytes, plus a latency per hop
    assert scaling.ring_allreduce_seconds(nbytes, 1024, bandwidth) == pytest.approx(2 * nbytes / bandwidth, rel=1e-3)
    efficiencies = [scaling.efficiency(1.0, nbytes, n, bandwidth, 5e-6) for n in (1, 8, 64, 1024)]
    assert efficiencies[0] == 1.0 and efficiencies == sorted(efficiencies, reverse=True)
    with pytest.raises(ValueError, match="at least one rank"):
        scaling.ring_allreduce_seconds(nbytes, 0, bandwidth)
