"""Peak memory of one piece of code, measured in a fresh Python process so nothing else counts.

On a GPU, PyTorch's allocator keeps the peak (`torch.cuda.max_memory_allocated`). On a CPU it
keeps no statistics, but the kernel does: a process's high-water mark of resident memory
(`ru_maxrss`). Measured before and after the statement, in a process that has only done the
setup, its growth is the statement's peak.
"""

from __future__ import annotations

import os
import subprocess
import sys

_MEASURE = """
import resource, torch
{setup}
cuda = {device!r}.startswith("cuda")
if cuda:
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); before = torch.cuda.memory_allocated()
else:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
{statement}
if cuda:
    torch.cuda.synchronize(); print(torch.cuda.max_memory_allocated() - before)
else:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before)
"""


def peak_memory(statement: str, setup: str = "", device: str = "cpu") -> int:
    """Bytes by which peak memory grows while `statement` runs after `setup`, in a new process.

    Growth below what the setup already reached is invisible on a CPU (a high-water mark only
    rises), so measure statements that need more than the setup did.
    Example: `peak_memory("y = x * 2", "x = torch.ones(2**25)")` is about 134 MB.
    """
    code = _MEASURE.format(setup=setup, statement=statement, device=str(device))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"measuring peak memory failed:\n{result.stderr[-2000:]}")
    return max(0, int(result.stdout.split()[-1]))
