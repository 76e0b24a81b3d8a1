"""Small controlled experiments: train model variants with the same budget and seeds, compare fairly.

Used by the positional-encoding chapter and the researcher exercise. Every run scores the
whole validation split, so differences between variants are not sampling noise of the
evaluation; the spread across seeds is the training noise a conclusion must beat.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, replace

import torch

from ..data.batches import TokenBatches
from ..nn.model import GPT, GPTConfig
from ..utils.progress import tqdm
from .evaluate import split_loss
from .loop import History, TrainConfig, train


@dataclass
class Run:
    variant: str
    seed: int
    params: int
    history: History
    val_loss: float  # on the whole validation split, at the training context length
    seconds: float
    model: GPT


def train_variant(variant: str, overrides: dict, base_model: GPTConfig, schedule: TrainConfig, seed: int,
                  train_data: torch.Tensor, val_data: torch.Tensor, vocab_size: int, device: str = "cpu") -> Run:
    """Train the base model with `overrides` applied, from seed `seed`, and score it.

    Example: `train_variant("rope", {"position": "rope"}, model, schedule, 0, train, val, 65)`.
    """
    model, history, val, seconds = fit_and_score(
        lambda: GPT(replace(base_model, vocab_size=vocab_size, **overrides)), replace(schedule, seed=seed),
        train_data, val_data, device)
    return Run(variant, seed, model.num_params(), history, val, seconds, model)


def fit_and_score(build, schedule: TrainConfig, train_data: torch.Tensor, val_data: torch.Tensor,
                  device: str = "cpu") -> tuple[torch.nn.Module, History, float, float]:
    """Build a model from `schedule.seed`, train it with the one loop, score it on the whole val split.

    Returns (model, history, val_loss, training seconds). Example: `fit_and_score(lambda: GPT(config), schedule, train, val)`.
    """
    torch.manual_seed(schedule.seed)
    model = build()
    start = time.perf_counter()
    history = train(model, TokenBatches(train_data, val_data, model.config.block_size), schedule, device, progress=False)
    seconds = time.perf_counter() - start
    return model, history, split_loss(model, val_data, model.config.block_size, batch_size=512, device=device), seconds


def run_study(variants: dict[str, dict], seeds: list[int], base_model: GPTConfig, schedule: TrainConfig,
              train_data: torch.Tensor, val_data: torch.Tensor, vocab_size: int, device: str = "cpu",
              progress: bool = True) -> list[Run]:
    """Every variant from every seed; the same data, steps and evaluation for all.

    Example: `run_study({"rope": {"position": "rope"}}, [0, 1, 2], model, schedule, train, val, 65)`.
    """
    jobs = [(name, seed) for name in variants for seed in seeds]
    runs = []
    for name, seed in tqdm(jobs, desc="runs", disable=not progress):
        runs.append(train_variant(name, variants[name], base_model, schedule, seed,
                                  train_data, val_data, vocab_size, device))
    return runs


@dataclass
class Summary:
    variant: str
    mean: float
    std: float  # sample standard deviation across seeds
    n: int
    params: int

    @property
    def sem(self) -> float:
        """Standard error of the mean."""
        return self.std / math.sqrt(self.n) if self.n > 1 else math.inf

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Student's t interval for the mean over seeds (infinite with one seed)."""
        if self.n < 2:
            return -math.inf, math.inf
        half = t_quantile(0.5 + confidence / 2, self.n - 1) * self.sem
        return self.mean - half, self.mean + half


def summarize(runs: list[Run]) -> dict[str, Summary]:
    """Mean, spread and count of the val losses of each variant's seeds. Example: `summarize(runs)["rope"].mean`."""
    by_variant: dict[str, list[Run]] = {}
    for run in runs:
        by_variant.setdefault(run.variant, []).append(run)
    return {name: Summary(name, statistics.mean(r.val_loss for r in rs),
                          statistics.stdev(r.val_loss for r in rs) if len(rs) > 1 else 0.0,
                          len(rs), rs[0].params)
            for name, rs in by_variant.items()}


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (Lentz's method)."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast on this side only
        return 1.0 - _incomplete_beta(b, a, 1 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny, f, c, d = 1e-300, 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            numerator = 1.0
        elif i % 2 == 0:
            numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            numerator = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + numerator / c if abs(c) > tiny else tiny
        f *= c * d
        if abs(1.0 - c * d) < 1e-12:
            break
    return front * (f - 1.0)


def t_quantile(p: float, df: float) -> float:
    """The p-quantile (p > 0.5) of Student's t with `df` degrees of freedom. Example: `t_quantile(0.975, 2)` is 4.30."""
    def cdf(t: float) -> float:
        return 1.0 - 0.5 * _incomplete_beta(df / 2, 0.5, df / (df + t * t))

    low, high = 0.0, 1e6
    for _ in range(200):  # bisection: the CDF rises with t
        middle = (low + high) / 2
        low, high = (middle, high) if cdf(middle) < p else (low, middle)
    return (low + high) / 2


def compare(candidate: Summary, baseline: Summary, confidence: float = 0.95) -> str:
    """'better', 'worse' or 'within noise': does Welch's interval for the difference of means exclude zero?

    With two or three seeds the spread is itself uncertain, so the interval uses Student's t with
    the Welch-Satterthwaite degrees of freedom, not a normal z: at two seeds a side its critical
    value is about 4.3, not 2.
    Example: `compare(summaries["rope"], summaries["learned"])`.
    """
    difference = candidate.mean - baseline.mean
    if candidate.n < 2 or baseline.n < 2:
        return "within noise"  # one seed says nothing about the spread
    a, b = candidate.std ** 2 / candidate.n, baseline.std ** 2 / baseline.n
    if a + b == 0:
        return "within noise" if difference == 0 else ("better" if difference < 0 else "worse")
    df = (a + b) ** 2 / (a ** 2 / (candidate.n - 1) + b ** 2 / (baseline.n - 1))
    noise = t_quantile(0.5 + confidence / 2, df) * math.sqrt(a + b)
    if abs(difference) <= noise:
        return "within noise"
    return "better" if difference < 0 else "worse"


# Below the counted bigram by less than this, a character model has learned little beyond one character of context.
EARLY_TRAINING_NATS = 0.5


def regime(baseline_loss: float, bigram: float, steps: int) -> str:
    """A sentence that places a study's baseline against the counted bigram (`evaluate.bigram_loss`),
    so a reader knows whether its verdicts are about architectures or about the first steps of learning.

    Example: `regime(2.279, 2.482, 600)` says the models are still early in training.
    """
    gap = bigram - baseline_loss
    where = f"After {steps} steps the baseline ends at {baseline_loss:.3f}"
    bigram_said = (f"the bigram table counted from the training text ({bigram:.3f}: each character's frequencies "
                   "after the one before, which chapter 1's trained bigram approaches)")
    if gap < EARLY_TRAINING_NATS:
        return (f"{where}, only {gap:.3f} nats below {bigram_said}, which reads a single character of context: these "
                "models are still early in training, so the verdicts rank how fast each variant starts to learn, not "
                "where it would end up.")
    return (f"{where}, {gap:.3f} nats below {bigram_said}: well past what one character of context gives, though "
            "still far from a long run's result.")


def extrapolation(model: GPT, val_data: torch.Tensor, lengths: list[int], max_tokens: int,
                  device: str = "cpu") -> dict[int, float | None]:
    """Loss on the first `max_tokens` validation tokens, read in windows of each length.

    None where the model cannot run at that length (a learned table has no rows past it).
    Example: `extrapolation(model, val_data, [64, 128, 256], max_tokens=20_000)`.
    """
    data = val_data[: max_tokens + 1]
    table = model.config.block_size if model.config.position == "learned" else math.inf
    return {length: split_loss(model, data, length, batch_size=16, device=device) if length <= table else None
            for length in lengths}
