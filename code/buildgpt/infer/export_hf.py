"""Export a GPT to Hugging Face transformers' GPT-2 (`GPT2LMHeadModel`), with its tokenizer, exactly.

Our GPT built with GPT-2's choices (LayerNorm, a GELU or ReLU MLP, no QK-norm, positions added
to the embeddings) is GPT-2, so the export only renames and reshapes weights (the names are
nanoGPT's, `nn.nanogpt.NANOGPT_NAMES`, which are GPT-2's):

    ours                                 transformers' GPT2LMHeadModel
    token_embedding.weight               transformer.wte.weight
    position_embedding (the table)       transformer.wpe.weight
    blocks.i.ln1, ln2                    transformer.h.i.ln_1, ln_2
    blocks.i.attn.qkv.weight (3C, C)     transformer.h.i.attn.c_attn.weight (C, 3C), bias zero
    blocks.i.attn.proj                   transformer.h.i.attn.c_proj
    blocks.i.ffwd.up, down               transformer.h.i.mlp.c_fc, c_proj
    ln_f                                 transformer.ln_f (its bias also carries our head's bias)
    lm_head.weight                       lm_head.weight (untied: tie_word_embeddings=False)

Three details. GPT-2's `c_attn` makes q, k and v with one matrix, in that order, heads side by
side inside each: exactly our `qkv`. GPT-2 stores its projections as `Conv1D`, a Linear with its
weight transposed to (in, out), so those weights are transposed. GPT-2's head has no bias, so
ours is folded into ln_f's bias β: logits = W(γ⊙n + β) + b = W(γ⊙n + β') where Wβ' = Wβ + b,
solved by least squares. That is exact only when b is a combination of W's columns, which holds
when vocab_size <= n_embd (and W has full rank); otherwise the export is refused.
Where our config says bias=False, GPT-2's biases are exported as zeros. The sinusoidal table
and "no positions" are fixed tables (zeros for the latter), so they export as GPT-2's `wpe`; the
paper's token embeddings, scaled by sqrt(n_embd), export already scaled.

The tokenizer is character-level: each character is one token with our id, and a chat model's
markers are special tokens with our ids. Decoding glues tokens with no space between them. A
chat model also gets a chat template that renders what `ChatTokenizer.encode_chat` renders.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from ..nn.batched_attention import BatchedSelfAttention
from ..nn.model import GPT, GPTConfig
from ..nn.nanogpt import nanogpt_name
from ..tokenizers.chars import CharTokenizer
from ..tokenizers.chat import ASSISTANT, END, ROLE_MARKERS, SPECIAL_TOKENS, ChatTokenizer
from ..utils.files import give_default_mode
from .load import char_tokenizer, load_model

# What GPT-2 can express, field by field, and why the other values cannot be exported.
GPT2_CHOICES = {
    "position": (("learned", "sinusoidal", "sinusoidal_paper", "none"), "GPT-2 adds a table of absolute positions to the embeddings; "
                 "rope and alibi act inside attention, which GPT-2 has no place for"),
    "norm": (("layernorm",), "GPT-2 normalises with LayerNorm (centred, with a bias)"),
    "mlp": (("gelu", "relu"), "GPT-2's MLP is two matrices around one non-linearity, no gate"),
    "qk_norm": ((False,), "GPT-2 has no normalisation of queries and keys"),
}


def check_exportable(config: GPTConfig) -> None:
    """Raise ValueError naming the first config field that GPT-2 has no equivalent for.

    Example: `check_exportable(GPTConfig(position="rope"))` raises, naming position='rope'.
    """
    for field, (allowed, why) in GPT2_CHOICES.items():
        value = getattr(config, field)
        if value not in allowed:
            raise ValueError(f"cannot export to GPT-2: {field}={value!r} has no GPT-2 equivalent ({why}); "
                             f"exportable values of {field}: {', '.join(map(repr, allowed))}")


def fold_head_bias(weight: torch.Tensor, bias: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """A new ln_f bias β' with W β' = W β + b, so a head without a bias gives the same logits.

    Solved in float64 (the pseudo-inverse gives the least-squares β'); refused unless the
    float32 β' reproduces W β + b to rounding error.
    Example: `ln_f_bias = fold_head_bias(model.lm_head.weight, model.lm_head.bias, model.ln_f.bias)`.
    """
    W, target = weight.double(), weight.double() @ beta.double() + bias.double()
    folded = (beta.double() + torch.linalg.pinv(W) @ bias.double()).float()
    residual = (W @ folded.double() - target).abs().max().item()
    if residual > 1e-6 * (1.0 + target.abs().max().item()):
        vocab_size, n_embd = weight.shape
        why = (f"a fold is exact only when vocab_size <= n_embd, and this model has vocab_size={vocab_size}, "
               f"n_embd={n_embd}" if vocab_size > n_embd else
               f"its head's matrix is too ill-conditioned (condition number {torch.linalg.cond(W).item():.3g}) for "
               "a float32 bias to carry the fold")
        raise ValueError(f"cannot export to GPT-2 exactly: GPT-2's head has no bias, and ours does not fold into "
                         f"ln_f's bias (residual {residual:.3g}): {why}. A model built with GPTConfig(bias=False) "
                         "always exports; `buildgpt train` under the cpu or gpu profile gives one with n_embd above "
                         "its vocab_size, which normally does")
    return folded


def hf_config(config: GPTConfig, eos_token_id: int | None = None, layer_norm_epsilon: float = 1e-5):
    """The `GPT2Config` of the same shape: sizes, activation, dropout, and LayerNorm's epsilon.

    Example: `hf_config(GPTConfig(mlp="gelu")).activation_function == "gelu"`.
    """
    from transformers import GPT2Config

    check_exportable(config)
    return GPT2Config(
        vocab_size=config.vocab_size, n_positions=config.block_size, n_embd=config.n_embd,
        n_layer=config.n_layer, n_head=config.n_head, n_inner=4 * config.n_embd,
        activation_function=config.mlp,  # ours: exact GELU (nn.GELU()), as HF's "gelu"; "relu" is "relu"
        resid_pdrop=config.dropout, embd_pdrop=config.dropout, attn_pdrop=config.dropout,
        layer_norm_epsilon=layer_norm_epsilon,  # 1e-5: norms.LayerNorm's default, which make_norm keeps
        tie_word_embeddings=False,  # our head has its own weights
        bos_token_id=None, eos_token_id=eos_token_id, pad_token_id=None,  # not GPT-2's 50256: our vocabulary
    )


def _conv1d(layer: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """A Linear's weight as Conv1D stores it, (in, out), and its bias (zeros where it has none)."""
    bias = layer.bias if layer.bias is not None else layer.weight.new_zeros(layer.out_features)
    return layer.weight.t(), bias


def hf_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """Our weights under GPT-2's names and layouts (see the table in the module docstring).

    Example: `GPT2LMHeadModel(hf_config(model.config)).load_state_dict(hf_state_dict(model))`.
    """
    config = model.config
    check_exportable(config)
    C = config.n_embd
    zeros = model.ln_f.weight.new_zeros(C)  # on the model's device
    positions = model.position_embedding(config.block_size)  # the learned or fixed table, or 0.0
    state = {  # our names, GPT-2's layouts; the names become GPT-2's (nanoGPT's) at the end
        # every token's embedding as the model looks it up (sinusoidal_paper scales it by sqrt(n_embd))
        "token_embedding.weight": model.token_embedding(torch.arange(config.vocab_size, device=zeros.device)),
        "position_embedding.weight": model.token_embedding.weight.new_zeros(config.block_size, C) + positions,
    }
    for i, block in enumerate(model.blocks):
        attn = block.attn
        if not isinstance(attn, BatchedSelfAttention):  # per-head weights: gather them into one qkv first
            attn = BatchedSelfAttention(C, config.n_head, bias=config.bias).load_from_heads(attn)
        prefix = f"blocks.{i}."
        for name, norm in (("ln1", block.ln1), ("ln2", block.ln2)):
            state[prefix + name + ".weight"] = norm.weight
            state[prefix + name + ".bias"] = norm.bias if norm.bias is not None else zeros
        state[prefix + "attn.qkv.weight"] = attn.qkv.weight.t()  # (C, 3C): columns q | k | v
        state[prefix + "attn.qkv.bias"] = attn.qkv.weight.new_zeros(3 * C)  # our q, k, v have no bias
        for name, layer in (("attn.proj", attn.proj), ("ffwd.up", block.ffwd.up), ("ffwd.down", block.ffwd.down)):
            state[prefix + name + ".weight"], state[prefix + name + ".bias"] = _conv1d(layer)
    beta = model.ln_f.bias if model.ln_f.bias is not None else zeros
    if model.lm_head.bias is not None:
        beta = fold_head_bias(model.lm_head.weight, model.lm_head.bias, beta)
    state["ln_f.weight"], state["ln_f.bias"] = model.ln_f.weight, beta
    state["lm_head.weight"] = model.lm_head.weight
    return {nanogpt_name(name): tensor.detach().float().cpu().contiguous().clone() for name, tensor in state.items()}


@torch.no_grad()
def to_hf_model(model: GPT, eos_token_id: int | None = None):
    """A transformers `GPT2LMHeadModel` computing the same function as `model`, in eval mode.

    Example: `hf = to_hf_model(model); hf(ids).logits` matches `model(ids)[0]`.
    """
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel(hf_config(model.config, eos_token_id, layer_norm_epsilon=model.ln_f.eps))
    hf.load_state_dict(hf_state_dict(model), strict=True)  # strict: every GPT-2 weight comes from ours
    return hf.eval()


def chat_template() -> str:
    """The jinja chat template that renders a conversation as `ChatTokenizer.encode_chat` does.

    Roles other than ours, and messages that spell a marker, are refused (raise_exception), as ours refuses them.
    Example: `tokenizer.apply_chat_template(messages, add_generation_prompt=True)`.
    """
    markers, specials = json.dumps(ROLE_MARKERS), json.dumps(list(SPECIAL_TOKENS))  # JSON is jinja's literal syntax
    return (
        "{%- set markers = " + markers + " -%}"
        "{%- for message in messages -%}"
        "{%- if message['role'] not in markers -%}"
        "{{ raise_exception('the chat format knows the roles user and assistant, not ' ~ message['role']) }}"
        "{%- endif -%}"
        "{%- for marker in " + specials + " if marker in message['content'] -%}"
        "{{ raise_exception('a message may not spell the chat marker ' ~ marker) }}"
        "{%- endfor -%}"
        "{{ markers[message['role']] + message['content'] + " + json.dumps(END) + " }}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ " + json.dumps(ASSISTANT) + " }}{%- endif -%}"
    )


def to_hf_tokenizer(tokenizer: CharTokenizer | ChatTokenizer, block_size: int):
    """A transformers `PreTrainedTokenizerFast` with our ids: one token per character, chat markers as special tokens.

    Example: `to_hf_tokenizer(tokenizer, 256).encode("To be")` equals `tokenizer.encode("To be")`.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chat = isinstance(tokenizer, ChatTokenizer)
    chars = tokenizer.base.chars if chat else tokenizer.chars
    vocab = {c: i for i, c in enumerate(chars)} | (tokenizer.special_tokens if chat else {})
    backend = Tokenizer(models.WordLevel(vocab))  # no unknown token: a character not in the vocabulary is an error
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character alone
    backend.decoder = decoders.Fuse()  # join tokens as they are: no spaces between characters
    extras = {}
    if chat:  # found in text before the characters are split; ids as in `vocab`, already ours
        backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
        extras = {"eos_token": END, "chat_template": chat_template()}
    hf = PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=block_size,
                                 clean_up_tokenization_spaces=False, **extras)  # no " ." -> "." in decode
    if hf.get_vocab() != vocab:
        raise RuntimeError("the Hugging Face tokenizer did not keep our ids")  # e.g. a marker that is also a character
    return hf


def export_hf(checkpoint_path: str | os.PathLike, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a float32 character-level checkpoint as a transformers GPT-2 folder (config.json,
    model.safetensors, tokenizer files), which `AutoModelForCausalLM.from_pretrained(out_dir)` and
    `AutoTokenizer.from_pretrained(out_dir)` load, giving our logits.

    The folder is written beside `out_dir` under a temporary name, then renamed, so a failure leaves
    no half export. An existing non-empty `out_dir` is replaced only with `overwrite=True`.
    Example: `export_hf("checkpoints/shakespeare-char/best.safetensors", "hf/shakespeare-char")`.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder; choose another output folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; choose another folder, or pass overwrite=True "
                              "to replace it")
    if out.resolve() in Path(checkpoint_path).resolve().parents:
        raise ValueError(f"{checkpoint_path} is inside {out}, which the export would replace: choose another folder")
    model, ckpt = load_model(checkpoint_path, weights="fp32")  # refuses quantized and damaged files
    tokenizer = char_tokenizer(ckpt, checkpoint_path)
    eos = tokenizer.special_tokens[END] if isinstance(tokenizer, ChatTokenizer) else None
    hf_model = to_hf_model(model, eos)  # the refusals (config, head bias) come before anything is written
    hf_tokenizer = to_hf_tokenizer(tokenizer, model.config.block_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    old = None
    try:
        hf_model.save_pretrained(tmp)
        hf_tokenizer.save_pretrained(tmp)
        give_default_mode(tmp)  # as the umask gives a new folder, not mkdtemp's owner-only 0700
        if out.is_dir() and (foreign := sorted({p.name for p in out.iterdir()} - {p.name for p in tmp.iterdir()})):
            raise ValueError(f"{out} holds {', '.join(foreign[:3])}, which no export writes: overwrite replaces only "
                             "an earlier export; choose another folder")
        if out.is_dir() and any(out.iterdir()):  # overwrite: move the old export aside, delete it after
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
            os.replace(out, old)
        os.replace(tmp, out)  # a rename also replaces an empty folder
    except BaseException:
        if old is not None and not out.exists():
            os.replace(old, out)  # put the previous export back
            old = None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out
