"""Run profiles: how big each chapter's runs are on this machine.

`BUILDGPT_PROFILE` picks one of `smoke` (every chapter in seconds, for the tests), `cpu`
(the book a laptop or CI builds) and `gpu` (the published book, full size). Left unset, it is
`gpu` when CUDA is available and `cpu` otherwise. One table, `SETTINGS`, says per chapter what
each profile runs, so the sizes live in one place instead of in every chapter.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

PROFILES = ("smoke", "cpu", "gpu")
ENV_VAR = "BUILDGPT_PROFILE"

# Per chapter, per profile: the run sizes and the claim the chapter asserts.
SETTINGS: dict[str, dict[str, dict]] = {
    "bigram": {
        "smoke": dict(max_iters=200, eval_interval=50, eval_iters=10, batch_size=32,
                      block_size=8, learning_rate=1e-2, max_val_loss=3.6),
        "cpu": dict(max_iters=5000, eval_interval=250, eval_iters=100, batch_size=32,
                    block_size=8, learning_rate=1e-2, max_val_loss=2.6),
        "gpu": dict(max_iters=10000, eval_interval=500, eval_iters=200, batch_size=32,
                    block_size=8, learning_rate=1e-2, max_val_loss=2.6),
    },
}

# Seconds one notebook cell may run before the book build gives up on it.
CELL_TIMEOUT = {"smoke": 120, "cpu": 900, "gpu": 1800}


@dataclass(frozen=True)
class Profile:
    name: str
    device: str

    def settings(self, chapter: str) -> dict:
        """The run sizes of `chapter` under this profile."""
        if chapter not in SETTINGS:
            raise KeyError(f"no settings for chapter {chapter!r}; known: {sorted(SETTINGS)}")
        return dict(SETTINGS[chapter][self.name])

    def describe(self) -> str:
        name = torch.cuda.get_device_name() if self.device == "cuda" else f"{os.cpu_count()} CPU cores"
        return f"profile '{self.name}' on {self.device} ({name}), torch {torch.__version__}"


def profile_name() -> str:
    """The profile asked for by `BUILDGPT_PROFILE`, or the one this machine suits."""
    name = os.environ.get(ENV_VAR, "").strip().lower()
    if not name:
        return "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(f"{ENV_VAR}={name!r} is not a profile; use one of {', '.join(PROFILES)}")
    return name


def current() -> Profile:
    """The active profile and the device its runs use."""
    name = profile_name()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "gpu" and device != "cuda":
        raise RuntimeError(f"{ENV_VAR}=gpu needs a CUDA device and none is available; "
                           "use 'cpu' or 'smoke', or leave it unset to choose automatically")
    return Profile(name=name, device=device)
