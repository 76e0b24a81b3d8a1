"""Peak memory of one piece of code, measured in a fresh Python process so nothing else counts.

On a GPU, PyTorch's allocator keeps the peak (`torch.cuda.max_memory_allocated`). On a CPU it
keeps no statistics, but Linux does: a process's resident-memory high-water mark (`VmHWM` in
/proc/self/status), which can be reset to the current size (`/proc/self/clear_refs`). Reset
after the setup and read after the statement, its growth is the statement's peak. (`ru_maxrss`
would not do: a child starts with its parent's high-water mark, so a big Jupyter kernel would
hide everything below its own size.)
"""

from __future__ import annotations

import os
import subprocess
import sys

_MEASURE = """
import torch
{setup}
cuda = {device!r}.startswith("cuda")


def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


if cuda:
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); before = torch.cuda.memory_allocated()
else:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the high-water mark starts again from here
    before = status("VmRSS")
{statement}
if cuda:
    torch.cuda.synchronize(); print(torch.cuda.max_memory_allocated() - before)
else:
    print(status("VmHWM") - before)
"""


def peak_memory(statement: str, setup: str = "", device: str = "cpu") -> int:
    """Bytes by which peak memory grows while `statement` runs after `setup`, in a new process.

    Example: `peak_memory("y = x * 2", "x = torch.ones(2**25)")` is about 134 MB.
    """
    code = _MEASURE.format(setup=setup, statement=statement, device=str(device))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"measuring peak memory failed:\n{result.stderr[-2000:]}")
    return max(0, int(result.stdout.split()[-1]))
