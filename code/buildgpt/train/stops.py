"""How a training run from the command line ends when it does not finish: Ctrl-C, SIGTERM, a rank that died,
a loss that stopped being a number. Each says what was kept and gives an exit code, never a traceback.
Also the rule that keeps runs apart: a new run never writes over an earlier one's checkpoints.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from pathlib import Path

import torch

from . import distributed, objectives
from .checkpoint import what_was_kept
from .loop import History, TrainConfig, TrainingDiverged, train


def resume_hint() -> str:
    """What to do with an intact checkpoint: go on with --resume, unless torchrun will restart the ranks itself.

    Example: `resume_hint()` is ": go on with --resume" outside torchrun."""
    restarts_left = int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", 0)) - int(
        os.environ.get("TORCHELASTIC_RESTART_COUNT", 0))
    return ": torchrun starts the ranks again (--max-restarts)" if restarts_left > 0 else ": go on with --resume"


def check_run_folder(out_dir: str, resume: bool | None) -> bool:
    """Before any work: whether to resume. A new run never writes over an earlier one's checkpoints, and a resume
    needs one; `resume=None` resumes if there is a run to go on from, and starts one otherwise.

    Example: `check_run_folder("checkpoints/calculator", resume=False)` raises if a run is there already."""
    folder = Path(out_dir)
    last, best = folder / "last.safetensors", folder / "best.safetensors"
    if resume is None:  # one command for a first launch and its restarts (torchrun --max-restarts, a requeued job)
        resume = last.is_file()
    if resume and not last.is_file():
        raise ValueError(f"--resume: there is no {last} to go on from; leave out --resume to start a new run")
    kept = [p.name for p in (last, best) if p.exists()]  # a best alone is a run's too
    if not resume and kept:
        go_on = "go on with --resume, or " if last.is_file() else ""
        raise ValueError(f"{out_dir} holds a run already ({', '.join(kept)}): {go_on}start a new run in another "
                         "--out-dir (or move this one aside)")
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):  # found now, not after the training
        raise ValueError(f"cannot write checkpoints to {out_dir}: permission denied; give an --out-dir you can write to")
    return resume


def train_or_exit_code(model: torch.nn.Module, batches, config: TrainConfig, device: str, meta: dict,
                       loss_fn: objectives.LossFn = objectives.next_token_loss) -> History | int:
    """Train; on Ctrl-C, SIGTERM, a failed peer or a diverging loss, say what was kept and return the exit code
    instead of a history."""
    # torchrun stops the other ranks with SIGTERM when one fails. Not under NCCL: a rank blocked in a CUDA sync
    # would only run the handler once torchrun's SIGKILL comes, 30 s later; and signals belong to the main thread.
    catch_sigterm = threading.current_thread() is threading.main_thread() and not (
        torch.distributed.is_available() and torch.distributed.is_initialized()
        and torch.distributed.get_backend() == "nccl")
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if catch_sigterm else None
    try:
        return train(model, batches, config, device, meta=meta, loss_fn=loss_fn)
    except KeyboardInterrupt as e:
        stopped = e.args == ("SIGTERM",)
        why = "interrupted" if not stopped else (
            "stopped by SIGTERM (torchrun sends it when another rank fails)" if distributed.under_torchrun()
            else "stopped by SIGTERM")
        print(f"\n{why}; {what_was_kept(config.out_dir, resume_hint())}", file=sys.stderr)
        return 143 if stopped else 130
    except RuntimeError as e:
        if isinstance(e, TrainingDiverged):
            print(f"error: {e}", file=sys.stderr)
            return 1
        grouped = torch.distributed.is_available() and torch.distributed.is_initialized()
        lost_peer = grouped and (isinstance(e, torch.distributed.DistError)
                                 or re.search(r"peer|connection|broken pipe|timed out", str(e), re.IGNORECASE))
        if not lost_peer:  # anything else is a bug: its traceback helps
            raise
        first_line = (str(e).splitlines() or [""])[0]
        cause = re.sub(r"^\[[^\]]*\]\s*", "", first_line).split(". ")[0]  # less gloo's source file
        print(f"\nerror on rank {torch.distributed.get_rank()}: a collective failed ({cause}), so another rank "
              f"probably died (torchrun names it); {what_was_kept(config.out_dir, resume_hint())}", file=sys.stderr)
        return 1
    finally:
        if catch_sigterm:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _stop_on_sigterm(signum, frame):
    """A SIGTERM ends training as Ctrl-C does: unwinding, so no checkpoint is left half-written."""
    raise KeyboardInterrupt("SIGTERM")
