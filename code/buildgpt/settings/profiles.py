"""Run profiles: how big each chapter's runs are on this machine.

`BUILDGPT_PROFILE` picks one of `smoke` (every chapter in seconds, for the tests), `cpu`
(the book a laptop or CI builds) and `gpu` (the published book, full size). Left unset, it is
`gpu` when CUDA is available and `cpu` otherwise. What each chapter runs under each profile is
one table, `settings.chapters.SETTINGS`, built from named presets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .chapters import settings_for

PROFILES = ("smoke", "cpu", "gpu")
ENV_VAR = "BUILDGPT_PROFILE"

# Seconds one notebook cell may run before the book build gives up on it.
CELL_TIMEOUT = {"smoke": 120, "cpu": 900, "gpu": 1800}


@dataclass(frozen=True)
class Profile:
    name: str
    device: str

    def settings(self, chapter: str):
        """The run sizes of `chapter` under this profile (a frozen dataclass of `settings.chapters`).

        Example: `current().settings("gpt").model.n_layer`.
        """
        return settings_for(chapter, self.name)

    def describe(self) -> str:
        name = torch.cuda.get_device_name() if self.device == "cuda" else f"{os.cpu_count()} CPU cores"
        return f"profile '{self.name}' on {self.device} ({name}), torch {torch.__version__}"


def profile_name() -> str:
    """The profile asked for by `BUILDGPT_PROFILE`, or the one this machine suits.

    Example: `profile_name()` is "smoke" when `BUILDGPT_PROFILE=smoke`; unset, it is "cpu" without CUDA.
    """
    name = os.environ.get(ENV_VAR, "").strip().lower()
    if not name:
        return "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(f"{ENV_VAR}={name!r} is not a profile; use one of {', '.join(PROFILES)}")
    return name


def current() -> Profile:
    """The active profile and the device its runs use.

    Example: `current()` is `Profile(name="cpu", device="cpu")` without CUDA or `BUILDGPT_PROFILE`.
    """
    name = profile_name()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "gpu" and device != "cuda":
        raise RuntimeError(f"{ENV_VAR}=gpu needs a CUDA device and none is available; "
                           "use 'cpu' or 'smoke', or leave it unset to choose automatically")
    return Profile(name=name, device=device)
