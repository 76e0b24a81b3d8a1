"""Exercise 3's check: the learner's learning-rate schedule against the training loop's.

The learner writes `lr_at(step, max_iters, learning_rate, min_lr, warmup_iters)`: a linear
warmup that reaches `learning_rate` at the last warmup step (step 0 already takes
learning_rate / warmup_iters), then a half cosine from `learning_rate` down to `min_lr` at
`max_iters`, and `min_lr` after that. Finetuning runs the same schedule with a lower peak.
"""

from __future__ import annotations

import math

from ..train.loop import TrainConfig

SCHEDULES = [(100, 1e-3, 1e-4, 10), (50, 3e-4, 3e-5, 0), (30, 1e-2, 0.0, 5)]  # (max_iters, lr, min_lr, warmup)
BEYOND = 5  # steps past max_iters that are checked too
RTOL = 1e-6


def reference_lr(step: int, max_iters: int, learning_rate: float, min_lr: float, warmup_iters: int) -> float:
    """The training loop's learning rate at `step`. Example: `reference_lr(0, 100, 1e-3, 1e-4, 10)` is 1e-4."""
    config = TrainConfig(max_iters=max_iters, learning_rate=learning_rate, min_lr=min_lr,
                         warmup_iters=warmup_iters, decay_lr=True)
    return config.lr_at(step)


def _mistake(step, max_iters, learning_rate, min_lr, warmup_iters, *, warmup_from_zero=False, floor=None,
             progress_from_zero=False, clamp=True, cosine=True) -> float:
    """The schedule with one thing changed: the known mistakes the check recognises."""
    if step < warmup_iters:
        return learning_rate * (step if warmup_from_zero else step + 1) / warmup_iters
    end = min_lr if floor is None else floor
    start = 0 if progress_from_zero else warmup_iters
    progress = (step - start) / max(1, max_iters - start)
    progress = min(1.0, progress) if clamp else progress
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if cosine else 1 - progress
    return end + shape * (learning_rate - end)


MISTAKES = {  # diagnosis -> the keywords of `_mistake` that reproduce it; the first match is reported
    "the warmup starts at 0: step 0 already takes learning_rate / warmup_iters, so that the last warmup "
    "step reaches the peak ((step + 1) / warmup_iters)": {"warmup_from_zero": True},
    "the decay ends at 0; it must end at min_lr": {"floor": 0.0},
    "the decay's progress counts from step 0; count it from the end of the warmup: "
    "(step - warmup_iters) / (max_iters - warmup_iters)": {"progress_from_zero": True},
    "past max_iters the rate climbs back up the cosine; it must stay at min_lr (clamp the progress at 1)":
        {"clamp": False},
    "the decay is a straight line; it is half a cosine: min_lr + 0.5 (1 + cos(π progress)) (learning_rate - min_lr)":
        {"cosine": False},
}


def check_lr_at(fn) -> None:
    """Raise an AssertionError naming the mistake unless `fn` gives the training loop's rate at every step.

    Example: `check_lr_at(lr_at)` prints one line when all is well.
    """
    name = getattr(fn, "__name__", "your function")
    for schedule in SCHEDULES:
        steps = range(schedule[0] + BEYOND)
        got = [fn(step, *schedule) for step in steps]
        want = [reference_lr(step, *schedule) for step in steps]
        assert all(isinstance(g, (int, float)) for g in got), f"{name} must return a number (a Python float)"
        wrong = [s for s in steps if not math.isclose(got[s], want[s], rel_tol=RTOL, abs_tol=1e-12)]
        if not wrong:
            continue
        case = "max_iters={}, learning_rate={:g}, min_lr={:g}, warmup_iters={}".format(*schedule)
        diagnosis = next((d for d, change in MISTAKES.items() if all(
            math.isclose(got[s], _mistake(s, *schedule, **change), rel_tol=RTOL, abs_tol=1e-12) for s in steps)), None)
        s = wrong[0]
        raise AssertionError(f"{name} is wrong at step {s} of the schedule {case}: it gives {got[s]:.6g}, "
                             f"expected {want[s]:.6g}" + (f". {diagnosis[0].upper()}{diagnosis[1:]}" if diagnosis else ""))
    print(f"✓ {name} gives the training loop's learning rate at every step of {len(SCHEDULES)} schedules.")
