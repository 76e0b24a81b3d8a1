"""The settings types: one small frozen dataclass per chapter, saying how large each of its runs is.

`runs()` lists every training run a setting describes, so a test can take one step of each under
every profile on any machine. The values live in the table of `chapters.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..nn.model import GPTConfig
from ..train.loop import TrainConfig


@dataclass(frozen=True)
class TrainingRun:
    """One model trained with one schedule (`model.vocab_size` is replaced by the data's)."""

    model: GPTConfig
    train: TrainConfig


@dataclass(frozen=True)
class BigramSettings:
    block_size: int  # training windows, in characters (the bigram reads one)
    train: TrainConfig
    max_val_loss: float  # the chapter asserts its val loss ends below this

    def runs(self) -> dict[str, TrainingRun]:
        return {}  # not a GPT: the dry-run test trains the bigram itself


@dataclass(frozen=True)
class GPTSettings:
    """A model, its schedule, and the val loss the chapter asserts (chapter 2: one head; chapter 3: the GPT)."""

    model: GPTConfig
    train: TrainConfig
    max_val_loss: float | None = None

    def runs(self) -> dict[str, TrainingRun]:
        return {"model": TrainingRun(self.model, self.train)}


@dataclass(frozen=True)
class DistributedSettings:
    """Training on many processes: the equivalence and throughput runs are 2 CPU processes over gloo
    under every profile; the command-line run trains the `gpt` preset with `ranks` processes on the device."""

    equivalence: TrainingRun  # a few steps: one process vs DDP vs FSDP2; `train.batch_size` is the whole batch
    throughput: TrainingRun  # timed steps (`train.max_iters`) of 1 and 2 processes; `train.batch_size` per process
    ranks: int  # processes of the command-line run: 2 on the CPU, one per GPU (the gpu book has one)
    cli_iters: int  # its steps

    def runs(self) -> dict[str, TrainingRun]:
        return {"equivalence": self.equivalence, "throughput": self.throughput}


@dataclass(frozen=True)
class BatchedHeadsSettings:
    n_embd: int  # the attention layer timed
    head_counts: tuple[int, ...]  # each timed with per-head, batched and fused attention
    batch_size: int
    block_size: int
    repeats: int  # timed calls per measurement (the median is kept)

    def runs(self) -> dict[str, TrainingRun]:
        return {}


@dataclass(frozen=True)
class StudySettings:
    """Model variants trained with the same budget and seeds (chapter 4, exercise 4)."""

    model: GPTConfig
    train: TrainConfig
    seeds: tuple[int, ...]
    eval_multiples: tuple[int, ...] = ()  # evaluate at these multiples of the training context
    extrapolation_tokens: int = 0  # validation tokens scored at each longer context

    def runs(self) -> dict[str, TrainingRun]:
        return {"model": TrainingRun(self.model, self.train)}


@dataclass(frozen=True)
class TokenizerSettings:
    small_chars: int  # the Shakespeare slice for Basic vs Regex
    small_vocab_size: int
    reference_chars: int  # the slice the reference and fast trainers race on
    reference_vocab_size: int
    corpus_chars: int  # novels a tokenizer is trained on, for the compression curve
    eval_chars: int  # held-out text its compression is measured on
    vocab_sizes: tuple[int, ...]
    min_speedup: float  # the fast trainer must beat the reference by this factor

    def runs(self) -> dict[str, TrainingRun]:
        return {}


@dataclass(frozen=True)
class BitsPerByteSettings:
    """One GPT on characters and one on BPE tokens, same shape, steps and batches, in bits per byte."""

    run: TrainingRun
    vocab_size: int  # of the BPE tokenizer
    seed: int
    # How many bits per byte the BPE model must win by (None: no claim). Under cpu it won by 0.535,
    # 0.552 and 0.531 with seeds 0, 1, 2 (the page's cells up to the margin, run with each seed, on
    # 2026-11-29), so 0.2 is a wide margin; gpu trains longer, which may narrow the gap, and is
    # unmeasured: no claim.
    min_bpe_margin: float | None = None

    def runs(self) -> dict[str, TrainingRun]:
        return {"lm": self.run}


@dataclass(frozen=True)
class AdditionSettings:
    """Exercise 2: a GPT that adds. `model.block_size` must hold the longest problem text."""

    model: GPTConfig
    train: TrainConfig
    digits: int  # operands of up to this many digits, zero-padded to it
    n_test: int  # held-out problems, never seen in training
    n_curve: int  # held-out problems scored at each evaluation, for the accuracy curves
    min_accuracy: float | None  # the chapter asserts the reversed, masked model reaches this (None: no claim)
    # Length generalisation: train on operands of up to `length_digits` digits, test up to twice that.
    lengths: TrainingRun  # its model's block_size holds a problem of twice `length_digits`
    length_digits: int
    n_length_test: int  # problems per tested length

    def runs(self) -> dict[str, TrainingRun]:
        return {"adder": TrainingRun(self.model, self.train), "lengths": self.lengths}


@dataclass(frozen=True)
class CalculatorSettings:
    """Exercise 2's calculator: + - * / on integers, the working written before the answer."""

    run: TrainingRun  # `run.model.block_size` must hold the longest traced problem
    digits: int  # operands of up to this many digits
    trace: bool  # write the working (carries, borrows, partial products, long division) first
    n_test: int  # held-out problems, all operations together
    min_accuracy: float | None  # per operation, asserted by the chapter (None: no claim)
    train_ops: tuple[str, ...] = ("+", "-", "*", "/", "/")  # drawn uniformly: division, the hardest, twice as often
    short_of_bar: tuple[str, ...] = ()  # operations this budget leaves below min_accuracy: shown, not asserted

    def runs(self) -> dict[str, TrainingRun]:
        return {"calculator": self.run}


@dataclass(frozen=True)
class PretrainSettings:
    """Exercise 3: pretrain on the novels, finetune on tinyshakespeare, against training from scratch.

    The routes from scratch train with the pretraining schedule cut to their number of steps: the
    schedule a model with no head start deserves.
    """

    model: GPTConfig  # `vocab_size` is replaced by the vocabulary shared by both corpora
    pretrain: TrainConfig  # on the novels
    finetune: TrainConfig  # on tinyshakespeare, from the pretrained weights: fewer steps, a lower learning rate
    max_gap: float | None  # the novels' val minus train loss after pretraining stays below this (None: no claim)
    max_val_loss: float | None = None  # the finetuned model's loss on the whole tinyshakespeare val split

    def scratch(self, steps: int) -> TrainConfig:
        """The pretraining schedule cut to `steps` steps, for a model trained on tinyshakespeare from scratch,
        evaluated as often and on as many batches as finetuning, whose curve it is plotted against."""
        return replace(self.pretrain, max_iters=steps, eval_interval=self.finetune.eval_interval,
                       eval_iters=self.finetune.eval_iters, warmup_iters=min(self.pretrain.warmup_iters, steps // 10))

    def runs(self) -> dict[str, TrainingRun]:
        return {"pretrain": TrainingRun(self.model, self.pretrain), "finetune": TrainingRun(self.model, self.finetune),
                "scratch": TrainingRun(self.model, self.scratch(self.pretrain.max_iters + self.finetune.max_iters))}


@dataclass(frozen=True)
class EfficiencySettings:
    """Making it fast: the sizes timed, and the model trained briefly and then quantized."""

    attention_lengths: tuple[int, ...]  # context lengths of the written-out vs fused attention timings
    attention_shape: tuple[int, int, int]  # (batch, heads, head size) of those timings
    step_batch: int  # sequences per training step, for the float32 vs bfloat16 step times
    decode_lengths: tuple[int, ...]  # tokens generated by the lecture model, with and without the KV cache
    quantized: TrainingRun  # trained on tinyshakespeare, then stored as int8, Q8_0 and Q4_0
    repeats: int  # timed calls per measurement (the median is kept)
    max_int8_change: float  # int8's whole-split val loss may rise at most this much over float32
    max_q4_change: float  # and Q4_0's

    def runs(self) -> dict[str, TrainingRun]:
        return {"quantized": self.quantized}


@dataclass(frozen=True)
class AssistantSettings:
    """From GPT to an assistant: a base model, supervised finetuning on demonstrations, then DPO."""

    model: GPTConfig  # `vocab_size` is replaced by the characters' (+3 chat markers); a request and answer fit its window
    pretrain: TrainConfig  # the base model, on tinyshakespeare
    sft: TrainConfig  # on chats: a request and a speech that meets it
    dpo: TrainConfig  # on preference pairs, starting from the SFT model (which stays frozen as the reference)
    beta: float  # DPO's strength: how far the policy may move from the reference
    nll_weight: float  # how much of the chosen answers' next-token loss is added to DPO's (RPO); 0: plain DPO
    copies: int  # demonstrations per length, in multiples of the most common length's speeches (speakers drawn at random)
    n_eval: int  # held-out requests answered after each stage
    n_dpo_eval: int  # of those, answered at each DPO evaluation (the accuracy curve)
    n_val_requests: int  # other requests the SFT model answers: DPO pairs from its misses, and which flaws it makes
    min_sft_accuracy: float  # the share of held-out requests fully met after SFT, asserted by the chapter
    pretrain_block_size: int  # the base model's windows, at most the model's: more, shorter ones learn the text sooner
    dpo_claims: bool = True  # the chapter asserts that DPO raised the margin and did not lower accuracy

    def runs(self) -> dict[str, TrainingRun]:
        return {"pretrain": TrainingRun(replace(self.model, block_size=self.pretrain_block_size), self.pretrain),
                "sft": TrainingRun(self.model, self.sft), "dpo": TrainingRun(self.model, self.dpo)}
