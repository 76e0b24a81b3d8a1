"""Training on several processes: join them, wrap the model in DDP or shard it with FSDP2, launch.

`torchrun` (`python -m torch.distributed.run`) starts one process per device and tells each its
RANK, WORLD_SIZE and LOCAL_RANK and where to meet (MASTER_ADDR, MASTER_PORT). `start` joins them
into a process group, over NCCL on GPUs and gloo on the CPU; `wrap` hands the model to
DistributedDataParallel or shards it with FSDP2 (`fully_shard`); `shutdown` leaves. The training
loop itself is unchanged: it asks `loop.rank_and_world_size()` who it is.

`launch` runs torchrun on this machine for the book and the tests: loopback only, a free port,
one thread per process.
"""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel

BACKENDS = {"cuda": "nccl", "cpu": "gloo"}
TIMEOUT_VAR = "BUILDGPT_DIST_TIMEOUT"  # seconds a collective may wait for a peer before failing
DEFAULT_TIMEOUT_S = 300
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Dist:
    """Who this process is: its rank among `world_size`, its GPU (`local_rank`), device and backend."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    backend: str | None = None  # None: a single process, no process group

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs and writes files."""
        return self.rank == 0

    def describe(self) -> str:
        if self.backend is None:
            return "1 process"
        return f"rank {self.rank} of {self.world_size} processes over {self.backend}, on {self.device}"


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now. Example: `free_port()` -> 41237."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def under_torchrun() -> bool:
    """True in a process started by torchrun (it sets RANK, WORLD_SIZE, LOCAL_RANK).

    Example: `under_torchrun()` is False in a notebook, True in each of torchrun's processes.
    """
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def start(device: str = "cpu", force: bool = False, timeout_s: float | None = None) -> Dist:
    """Join the process group torchrun describes; without torchrun, a single process (a group of one if `force`).

    The backend follows the device: NCCL for "cuda", gloo for "cpu" (also when a GPU is visible).
    Example: `d = start("cuda")` in each of `torchrun --nproc-per-node 8` processes gives ranks 0..7.
    """
    device_type = torch.device(device).type
    if device_type not in BACKENDS:
        raise ValueError(f"distributed training runs on {' or '.join(BACKENDS)}, not {device!r}")
    if not under_torchrun() and not force:
        return Dist(device=device)
    env = os.environ
    rank, world_size = int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1))
    local_rank, local_world = int(env.get("LOCAL_RANK", 0)), int(env.get("LOCAL_WORLD_SIZE", world_size))
    if device_type == "cuda":
        gpus = torch.cuda.device_count()
        if local_world > gpus:
            raise ValueError(f"{local_world} processes on this machine but {gpus} GPU(s): NCCL needs one GPU per "
                             f"process, so use --nproc-per-node {gpus} or fewer (on the CPU any number works)")
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    # Rendezvous and gloo's sockets stay on this machine unless torchrun was told otherwise.
    env.setdefault("MASTER_ADDR", "127.0.0.1")
    env.setdefault("MASTER_PORT", str(free_port()))
    if env["MASTER_ADDR"] in LOOPBACK:
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # else gloo may pick the address the hostname resolves to
    # A peer that dies or hangs makes collectives fail after this long instead of waiting forever.
    timeout = timedelta(seconds=timeout_s or float(env.get(TIMEOUT_VAR, DEFAULT_TIMEOUT_S)))
    backend = BACKENDS[device_type]
    dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timeout, store=_restart_store(timeout),
                            device_id=torch.device(device) if device_type == "cuda" else None)
    return Dist(rank, world_size, local_rank, device, backend)


def _restart_store(timeout: timedelta) -> dist.Store | None:
    """After torchrun restarts the ranks (--max-restarts), a store of their own for this attempt; else None (torch's).

    torchrun keeps its store across restarts and torch 2.13 adds no prefix per attempt, so restarted ranks could
    read the dead ones' addresses ("Gloo connectFullMesh failed ... Connection refused", 2 restarts in 3 here).
    """
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    if attempt == "0" or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    agents = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), int(os.environ["WORLD_SIZE"]),
                           is_master=False, timeout=timeout)
    return dist.PrefixStore(f"buildgpt/attempt-{attempt}", agents)


def rank_zero_value(value):
    """`value` as rank 0 has it, on every rank; without a process group, `value` itself.

    Example: `resume = rank_zero_value(resume)`: rank 0's checkpoint folder decides for every rank.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(model: torch.nn.Module, d: Dist, fsdp: bool = False, reshard_after_forward: bool = True) -> torch.nn.Module:
    """The model ready for data-parallel training: DDP (a full copy per rank) or FSDP2 (a shard per rank).

    FSDP2 shards each Block, then the root (embeddings, final norm, head). Before a block runs,
    its parameters are all-gathered; `reshard_after_forward=True` frees them again right after
    its forward and gathers them anew for the backward (ZeRO-3: least memory, more traffic);
    False keeps them until the backward (ZeRO-2-like: gradients and optimizer state still
    sharded). Without a process group, DDP gives the model back unchanged and FSDP refuses.
    Example: `model = wrap(GPT(config), start("cpu", force=True), fsdp=True)` (or `start("cpu")` under torchrun).
    """
    model.to(d.device)
    if d.backend is None:
        if fsdp:
            raise ValueError("FSDP needs a process group: start(device, force=True), or run under torchrun")
        return model
    if not fsdp:
        return DistributedDataParallel(model, device_ids=[d.local_rank] if d.device.startswith("cuda") else None)
    # The mesh names the device type itself: left to default it would be CUDA whenever a GPU is
    # visible, and gloo with CUDA tensors hangs or fails.
    mesh = init_device_mesh(torch.device(d.device).type, (d.world_size,))
    # FSDP2 warns about every view a module returns; the GPT's outputs are never changed in place.
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    for block in model.blocks:
        fully_shard(block, mesh=mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard_after_forward)
    return model


def shutdown() -> None:
    """Leave the process group, if this process joined one.

    Example: `shutdown()` at the end of a run begun with `start`; without a group it does nothing.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    # A DDP model must be freed while the group lives (let it go out of scope before this call). Freed
    # later, its reducer drops the group's last reference while holding the GIL, and gloo's destructor
    # then waits for a worker thread that is waiting for the GIL: a deadlock (seen in this project's
    # throughput run). Collect any such model that only a reference cycle still keeps.
    gc.collect()
    if dist.get_backend() == "gloo":
        # Tearing gloo down while its thread still frees a tensor of the last collective can deadlock
        # on the GIL (pytorch/pytorch#190489): wait until every rank is here, so none is in flight.
        try:
            dist.monitored_barrier(timeout=timedelta(seconds=30))
        except RuntimeError as e:  # a rank that never arrives: say which, and leave without tearing down
            print(f"rank {dist.get_rank()}: {e}", file=sys.stderr)
            return
    dist.destroy_process_group()


def torchrun_command(args: list[str], nproc: int) -> list[str]:
    """torchrun on this machine only (`--standalone`): its rendezvous on a free local port, so two runs never meet.

    Example: `torchrun_command(["-m", "buildgpt.cli", "train", "shakespeare-char"], 2)`.
    """
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]


def launch(args: list[str], nproc: int, env: dict[str, str] | None = None, timeout: float | None = None,
           tee: bool = False) -> subprocess.CompletedProcess:
    """Run `args` (a script or `-m module ...`) on `nproc` local processes with torchrun; output captured.

    One thread per process (they share this machine's cores); `tee` prefixes each line with its rank.
    Past `timeout` seconds torchrun is told to stop, which stops every rank it started (not left
    running), and a TimeoutError carries the output they had written.
    Example: `launch(["-m", "buildgpt.cli", "train", "shakespeare-char"], 2).returncode`.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", **(env or {})}
    # torchrun keeps a folder of logs per run, in /tmp unless told where: here, one removed afterwards
    with tempfile.TemporaryDirectory(prefix="buildgpt-torchrun-") as logs:
        command = torchrun_command([f"--log-dir={logs}", *(["--tee=3"] if tee else []), *args], nproc)
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as process:
            try:
                stdout, stderr = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                # Each rank runs in a session of its own, out of reach of a signal to torchrun's group;
                # torchrun passes a SIGTERM on to them, then kills any that linger.
                process.terminate()
                try:
                    stdout, stderr = process.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    stdout, stderr = "", "(torchrun did not stop when asked: its ranks may still be running)"
                raise TimeoutError(f"{nproc} processes running {' '.join(args)} had not finished after {timeout:g} s and "
                                   f"were stopped. Their last output:\n{stdout[-2000:]}{stderr[-3000:]}") from None
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
