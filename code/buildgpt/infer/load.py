"""A GPT back from a checkpoint, ready to generate."""

from __future__ import annotations

import os

import torch

from ..nn.model import GPT, GPTConfig
from ..tokenizers.chars import CharTokenizer
from ..tokenizers.chat import ChatTokenizer
from ..train.checkpoint import Checkpoint, CheckpointError, load
from .half_weights import with_half_weights
from .quantize import FORMATS, quantize_model


def usable_device(device: str) -> torch.device:
    """`device` as torch names it, refused with a hint when torch does not know it or this machine lacks it.

    Example: `usable_device("cpu")` is `device(type='cpu')`; `usable_device("gpu")` raises ValueError.
    """
    try:
        parsed = torch.device(device)
    except RuntimeError:
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda", "mps"):  # torch also knows meta, xla, ...: not to run on
        raise ValueError(f"unknown device {device!r}: use cpu, cuda (or cuda:1, ...) or mps")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}, but this machine has no CUDA GPU torch can use: use cpu")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}, but this machine has no Apple GPU torch can use: use cpu")
    return parsed


def load_model(path: str | os.PathLike, device: str = "cpu", weights: str | None = None) -> tuple[GPT, Checkpoint]:
    """A GPT rebuilt from a checkpoint's config and weights, in eval mode.

    `weights` is the format the caller expects ("fp32", or a format of `quantize.FORMATS`); a
    file in another one is refused, naming both. None takes whatever the file holds.
    Example: `model, ckpt = load_model("checkpoints/shakespeare-char/best.safetensors")`.
    """
    usable_device(device)  # before reading the file: a typo should not wait for a large checkpoint
    ckpt = load(path)
    stored = ckpt.meta.get("weights", "fp32")
    if weights is not None and stored != weights:
        raise CheckpointError(f"{path} holds {stored} weights, not {weights}"
                              + ("; use the float32 checkpoint it was quantized from" if stored != "fp32" else ""))
    if stored != "fp32" and stored not in FORMATS:
        raise CheckpointError(f"{path} holds weights in an unknown format {stored!r}")
    try:
        model = GPT(GPTConfig.from_dict(ckpt.model_config))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path} has a damaged header ({type(e).__name__}: {e})") from None
    if stored != "fp32":
        model = quantize_model(model, stored)  # the structure; the values come from the file
    try:
        model.load_state_dict(ckpt.model_state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit its own config: {e}") from None
    return model.to(device).eval(), ckpt


def load_for_sampling(path: str | os.PathLike, device: str, weights: str | None, use_cache: bool) -> tuple[GPT, Checkpoint]:
    """The model to sample from, its weights in `weights`: fp32, fp16 or a format of `quantize.FORMATS`.

    None takes float16 copies for a cached decode (its one-token steps are bound by reading the
    weights) and float32 otherwise; a quantized checkpoint is sampled in its own format only.
    Example: `model, ckpt = load_for_sampling("checkpoints/shakespeare-char/best.safetensors", "cpu", "int8", True)`.
    """
    model, ckpt = load_model(path, device)
    stored = ckpt.meta.get("weights", "fp32")
    weights = weights or (stored if stored != "fp32" else "fp16" if use_cache else "fp32")
    if stored != "fp32" and weights != stored:
        raise CheckpointError(f"{path} holds {stored} weights; it cannot be sampled as {weights}. Leave out --weights "
                              f"to sample it as {stored}, or sample the float32 checkpoint it came from")
    if stored == "fp32" and weights == "fp16":
        model = with_half_weights(model)
    elif stored == "fp32" and weights != "fp32":
        model = quantize_model(model, weights)
    return model, ckpt


def char_tokenizer(ckpt: Checkpoint, path: str | os.PathLike) -> CharTokenizer | ChatTokenizer:
    """The character vocabulary a checkpoint was trained with, checked against its model's vocab_size:
    a `ChatTokenizer` if it was chat-tuned (its meta names special tokens), else a `CharTokenizer`.

    Example: `tokenizer = char_tokenizer(load("best.safetensors"), "best.safetensors")`.
    """
    tokenizer_meta = ckpt.meta.get("tokenizer") or {}
    if not isinstance(tokenizer_meta, dict) or tokenizer_meta.get("type") != "char":
        raise CheckpointError(f"{path} is not a character-level model (its meta.tokenizer is {tokenizer_meta or None}); "
                              "use a character-level GPT's: from `buildgpt train shakespeare-char` or `novels-char`, "
                              "or the assistant page's checkpoints/assistant/last.safetensors")
    try:
        tokenizer = (ChatTokenizer.from_meta(tokenizer_meta) if "special_tokens" in tokenizer_meta
                     else CharTokenizer(tokenizer_meta["chars"]))
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path} has a damaged tokenizer in its header ({type(e).__name__}: {e})") from None
    if tokenizer.vocab_size != ckpt.model_config.get("vocab_size"):
        raise CheckpointError(f"{path}: vocab_size is {ckpt.model_config.get('vocab_size')} but its tokenizer has "
                              f"{tokenizer.vocab_size} tokens")
    return tokenizer


def load_char_model(path: str | os.PathLike, text: str, device: str = "cpu") -> tuple[GPT, CharTokenizer | ChatTokenizer, Checkpoint]:
    """A float32 character-level GPT from a checkpoint, with its vocabulary, checked to encode all of `text`.

    For training on `text` (finetuning) or scoring it. A character the model has no embedding
    for is refused, with the characters named: mapping it to some other id would train on a lie.
    Example: `model, tokenizer, ckpt = load_char_model("checkpoints/novels-char/best.safetensors", text)`.
    """
    model, ckpt = load_model(path, device, weights="fp32")
    tokenizer = char_tokenizer(ckpt, path)
    chars = tokenizer.base.chars if isinstance(tokenizer, ChatTokenizer) else tokenizer.chars
    if missing := sorted(set(text) - set(chars)):
        raise ValueError(f"the text has {len(missing)} characters that the vocabulary of {path} lacks: "
                         f"{''.join(missing)!r}; the model has no embedding for them. Remove them from the text, "
                         "or pretrain with a vocabulary that includes them")
    return model, tokenizer, ckpt
