"""Our DPO loss is TRL's: the same pairs through TRL's DPOTrainer give the same token ids, log-probs, margins and loss.

TRL (Hugging Face's reference implementation) scores the exported GPT-2 copies of our policy and
reference. With a conversational dataset it renders prompt and prompt+answer with the tokenizer's
chat template (ours, from the export) and scores what follows the prompt: the answer and its
closing <|end|>, exactly the targets `encode_chat` marks (TRL adds no EOS to conversational data).
Its "sigmoid" loss is ours: -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))), averaged over pairs;
its "sft" term (RPO) is our `nll_weight` term.
"""

from __future__ import annotations

import copy
import math
import socket

import pytest
import torch

from buildgpt.infer.export_hf import to_hf_model, to_hf_tokenizer
from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.tokenizers.chat import END, ChatTokenizer
from buildgpt.train.alignment import DPOLoss, PreferenceBatches, dpo_loss

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

pytestmark = [pytest.mark.usefixtures("one_thread"),  # TRL's own call into transformers 5.24 warns; not ours to fix
              pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")]
CHARS = list("\n !',.:;?abcdefghijklmnopqrstuvwxyz")  # 35 + 3 markers <= n_embd: the head bias exports exactly
TOKENIZER = ChatTokenizer(CHARS)
CONFIG = GPTConfig(vocab_size=TOKENIZER.vocab_size, block_size=96, n_layer=2, n_head=2, n_embd=64, dropout=0.0,
                   mlp="gelu")
BETA = 0.1  # TRL's default
TRIPLES = [  # different lengths; the last two answers share all but their last character
    ("what news?", "none, my lord.", "i know not; go away."),
    ("who goes there?", "a friend.\nlet me in.", "no one at all, sir, no one."),
    ("speak.", "i will.", "no."),
    ("how fares the king?", "well, and merry.", "well, and merry!"),
]


def perturbed(model: GPT, scale: float, seed: int) -> GPT:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def models():
    """A random reference (every weight perturbed, biases and gains included), and a policy near it but not equal."""
    torch.manual_seed(0)
    reference = perturbed(GPT(CONFIG), 0.2, seed=1)
    return perturbed(copy.deepcopy(reference), 0.05, seed=2), reference


@pytest.fixture(scope="module")
def ours(models):
    """Our per-pair log-probs (policy chosen, rejected; reference chosen, rejected), margins and loss on all pairs."""
    policy, reference = models
    batches = PreferenceBatches(TOKENIZER, {"train": TRIPLES}, CONFIG.block_size)
    assert len(batches.examples["train"]) == len(TRIPLES)
    with torch.no_grad():  # every pair once, in order: row i is TRIPLES[i]
        logprobs = DPOLoss(reference, BETA).pair_logprobs(policy, next(batches.in_order("train", len(TRIPLES))))
        loss, margins = dpo_loss(*logprobs, BETA)
    return logprobs, margins, loss


def build_trl_trainer(models, output_dir, **config):
    """TRL's DPOTrainer on the exported models, in float32 on the CPU, with every socket connection refused."""
    policy, reference = models
    eos = TOKENIZER.special_tokens[END]
    dataset = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": p}],
                                           "chosen": [{"role": "assistant", "content": c}],
                                           "rejected": [{"role": "assistant", "content": r}]} for p, c, r in TRIPLES])
    args = trl.DPOConfig(output_dir=str(output_dir), beta=BETA, report_to=[], use_cpu=True, bf16=False,
                         activation_checkpointing=False, per_device_train_batch_size=len(TRIPLES),
                         max_length=CONFIG.block_size, seed=0, **config)
    tried = []

    def refuse(sock, address):
        tried.append(address)
        raise OSError("network is unreachable (test)")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        trainer = trl.DPOTrainer(model=to_hf_model(policy, eos), ref_model=to_hf_model(reference, eos), args=args,
                                 train_dataset=dataset, processing_class=to_hf_tokenizer(TOKENIZER, CONFIG.block_size))
    assert tried == []
    return trainer


@pytest.fixture(scope="module")
def trl_trainer(models, tmp_path_factory):
    return build_trl_trainer(models, tmp_path_factory.mktemp("trl"), loss_type="sigmoid")


def test_trl_scores_the_ids_we_score(trl_trainer):
    rows = [trl_trainer.train_dataset[i] for i in range(len(TRIPLES))]
    for row, (prompt, chosen, rejected) in zip(rows, TRIPLES, strict=True):
        for answer, answer_ids in ((chosen, row["chosen_ids"]), (rejected, row["rejected_ids"])):
            ids, scored = TOKENIZER.encode_chat([{"role": "user", "content": prompt},
                                                {"role": "assistant", "content": answer}])
            assert row["prompt_ids"] + answer_ids == ids
            assert [False] * len(row["prompt_ids"]) + [True] * len(answer_ids) == scored  # the answer and its <|end|>
    batch = trl_trainer.data_collator(rows)
    x, y = next(PreferenceBatches(TOKENIZER, {"train": TRIPLES}, CONFIG.block_size).in_order("train", len(TRIPLES)))
    for i, length in enumerate(batch["attention_mask"].sum(dim=1).tolist()):  # row i of each, padding aside
        ids, scored = batch["input_ids"][i, :length], batch["completion_mask"][i, :length].bool()
        assert ids[:-1].tolist() == x[i, :length - 1].tolist()  # our inputs: every id but the last
        assert ids[1:].masked_fill(~scored[1:], -100).tolist() == y[i, :length - 1].tolist()  # our scored targets
        assert (y[i, length - 1:] == -100).all()


def test_our_dpo_loss_is_trls(trl_trainer, ours):
    (chosen, rejected, ref_chosen, ref_rejected), margins, loss = ours
    batch = trl_trainer.data_collator([trl_trainer.train_dataset[i] for i in range(len(TRIPLES))])
    with torch.no_grad():
        trl_loss = trl_trainer.compute_loss(trl_trainer.model, batch)
        # TRL's per-sequence log-probs, by the code its loss uses (labels masked to the completion, summed)
        trl_chosen, trl_rejected = trl_trainer.compute_ref_log_probs(trl_trainer.model, batch)
        trl_ref_chosen, trl_ref_rejected = trl_trainer.compute_ref_log_probs(trl_trainer.ref_model, batch)
    trl_margins = BETA * ((trl_chosen - trl_ref_chosen) - (trl_rejected - trl_ref_rejected))

    assert abs(loss.item() - math.log(2)) > 0.05 and margins.abs().min() > 0.01  # the policy is not the reference
    for a, b in ((chosen, trl_chosen), (rejected, trl_rejected), (ref_chosen, trl_ref_chosen),
                 (ref_rejected, trl_ref_rejected)):
        assert (a - b).abs().max().item() < 1e-4  # float32 sums of about -100 (one rounding step: 8e-6)
    assert (margins - trl_margins).abs().max().item() < 1e-5  # beta times the rounding of four such sums
    assert abs(loss.item() - trl_loss.item()) < 1e-5  # TRL averages over pairs too
    logged = trl_trainer._metrics["eval"]["rewards/margins"][-1]  # "eval": the exported models are in eval mode
    assert abs(logged - margins.mean().item()) < 1e-5


def test_our_nll_weight_is_trls_sft_term(models, tmp_path_factory):
    """`DPOLoss(nll_weight=a)` is TRL's loss_type=["sigmoid", "sft"] with loss_weights=[1, a].

    TRL 1.16 has no `rpo_alpha`; its "sft" term is the chosen answers' token mean over the whole
    batch (not a mean of per-answer means), as ours is. TRIPLES' answers differ in length, so the
    two means differ and only the batch-wide one passes.
    """
    policy, reference = models
    alpha = 0.7
    trainer = build_trl_trainer(models, tmp_path_factory.mktemp("trl_sft"), loss_type=["sigmoid", "sft"],
                                loss_weights=[1.0, alpha])
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(TRIPLES))])
    x, y = next(PreferenceBatches(TOKENIZER, {"train": TRIPLES}, CONFIG.block_size).in_order("train", len(TRIPLES)))
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, batch).item()
        plain = DPOLoss(reference, BETA)(policy, (x, y)).item()
        ours = DPOLoss(reference, BETA, nll_weight=alpha)(policy, (x, y)).item()
        chosen = DPOLoss(reference, BETA).pair_logprobs(policy, (x, y))[0]
    lengths = (y[:len(TRIPLES)] != -100).sum(dim=1)
    per_answer_means = plain - alpha * (chosen / lengths).mean().item()  # the semantics TRL does not use
    assert len(set(lengths.tolist())) > 1 and abs(per_answer_means - trl_loss) > 1e-3
    assert ours - plain > 1.0  # the sft term is on, and large: alpha times a mean token loss of about 5
    assert abs(ours - trl_loss) < 1e-5
