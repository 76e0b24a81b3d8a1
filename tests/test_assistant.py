"""The assistant's parts: the task and its checker, the chat format, model surgery, SFT batches, DPO, batched answers."""

from __future__ import annotations

import copy
import math
import random
from collections import Counter

import pytest
import torch

from buildgpt.data.instructions import (
    FLAWS,
    InstructionTask,
    PreferencePair,
    Request,
    Speech,
    answer_text,
    check,
    pairs_from_answers,
    parse_speeches,
    repair,
    speech_lines,
)
from buildgpt.infer.assistant import answer_batch, answer_requests, evaluate_requests
from buildgpt.infer.generate import generate
from buildgpt.nn.loss import IGNORE_INDEX
from buildgpt.nn.model import GPT, GPTConfig
from buildgpt.nn.surgery import grow_vocabulary
from buildgpt.tokenizers.chat import END, USER, ChatTokenizer
from buildgpt.train.alignment import (
    LN2,
    ChatBatches,
    DPOLoss,
    PreferenceBatches,
    answer_logprobs,
    dpo_loss,
    encode_example,
    split_by_item,
)

PLAY = """ROMEO:
Come, come, what say you?

JULIET:
What, a line?
And another.

ROMEO:
Come hither.
Nay, go.
Come again.

JULIET:
Nay, nothing.

Nurse:
What is it?
"""
CHARS = sorted(set(PLAY + "Write onetwhrfuolbgi,'.") | set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))


def tiny_chat_model(seed: int = 0, block_size: int = 96) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=len(CHARS) + 3, block_size=block_size, n_layer=1, n_head=2, n_embd=32,
                         dropout=0.0, mlp="gelu")).eval()


def test_speeches_are_parsed_with_their_speakers_and_lines():
    speeches = parse_speeches(PLAY)
    assert speeches[1] == Speech("JULIET", ("What, a line?", "And another."))
    assert [len(s.lines) for s in speeches] == [1, 2, 3, 1, 1]


def test_the_checker_scores_each_part_of_a_request():
    request = Request("ROMEO", 2, "Come")
    assert request.text() == "Write two lines for ROMEO, beginning with 'Come'."
    assert check(request, "ROMEO:\nCome, sir.\nAway.").met
    wrong_speaker = check(request, "JULIET:\nCome, sir.\nAway.")
    assert (wrong_speaker.speaker, wrong_speaker.length, wrong_speaker.word) == (False, True, True)
    assert not wrong_speaker.met  # one missed part misses the request
    verdict = check(request, "JULIET:\nComely sir.")
    assert (verdict.speaker, verdict.length, verdict.word) == (False, False, False)
    assert not check(request, "ROMEO:\nCome, sir.\n").length  # an empty line is not a line
    assert not check(request, "ROMEO:").met


def test_demonstrations_meet_their_requests_and_pairs_miss_by_one_flaw():
    speeches = parse_speeches(PLAY)
    task = InstructionTask.from_speeches(speeches, n_speakers=2, n_words=2)
    assert task.speakers == ["ROMEO", "JULIET"] and task.words == ["Come", "What"]
    demos = task.demonstrations(speeches)
    assert [r for r, _ in demos] == [Request("ROMEO", 1, "Come"), Request("JULIET", 2, "What"),
                                     Request("ROMEO", 3, "Come"), Request("JULIET", 1, "Nay")]
    assert all(check(r, a).met for r, a in demos)
    pairs = task.preference_pairs(demos * 10, seed=0)
    assert {p.flaw for p in pairs} == set(FLAWS)
    for p in pairs:
        verdict = check(p.request, p.rejected)
        assert not verdict.met and getattr(verdict, p.flaw) is False


def test_repair_changes_an_answer_only_as_much_as_the_request_needs():
    spare = ["Peace, ho!", "Away."]
    rng = random.Random(0)
    assert repair(Request("ROMEO", 1, "Ay"), "JULIET:\nNo, sir.\nGo.", rng, spare) == "ROMEO:\nAy, sir."
    assert repair(Request("ROMEO", 2, "Come"), "ROMEO:\nCome, sir.", rng, spare).startswith("ROMEO:\nCome, sir.\n")
    run_on = "ROMEO:\nCome " + "the " * 20  # longer than any spare line: replaced, then the word set
    repaired = repair(Request("ROMEO", 1, "Come"), run_on, rng, spare)
    assert repaired in {"ROMEO:\nCome, ho!", "ROMEO:\nCome."} and check(Request("ROMEO", 1, "Come"), repaired).met
    no_word = repair(Request("ROMEO", 1, "Ay"), "ROMEO:\n'Tis well.", rng, spare)  # not "Ay'Tis well."
    assert no_word == "ROMEO:\nAy 'Tis well." and check(Request("ROMEO", 1, "Ay"), no_word).met
    for answer in ("", "ROMEO:", "JULIET:\n\n\n\n", "x" * 300):
        for n in (1, 2, 3):
            assert check(Request("JULIET", n, "What"), repair(Request("JULIET", n, "What"), answer, rng, spare)).met


def test_pairs_from_answers_keep_each_miss_as_rejected_against_its_repair():
    speeches = parse_speeches(PLAY)
    task = InstructionTask.from_speeches(speeches, n_speakers=2, n_words=2)
    spare = speech_lines(task.demonstrations(speeches))
    assert "Come hither." in spare and "ROMEO:" not in spare
    requests = [Request("ROMEO", 1, "Come"), Request("JULIET", 2, "What"), Request("ROMEO", 3, "Come")]
    answers = ["ROMEO:\nCome, sir.", "JULIET:\nWhat, a line?", "JULIET:\nCome hither.\nNay, go.\nCome again."]
    pairs = pairs_from_answers(requests, answers, spare, seed=0)
    assert [(p.request, p.rejected, p.flaw) for p in pairs] == [(requests[1], answers[1], "length"),
                                                               (requests[2], answers[2], "speaker")]
    assert all(check(p.request, p.chosen).met for p in pairs)
    assert pairs[1].chosen == "ROMEO:\nCome hither.\nNay, go.\nCome again."


def test_demonstrations_attributed_at_random_copy_the_name_and_avoid_held_out_requests():
    speeches = parse_speeches(PLAY)
    task = InstructionTask.from_speeches(speeches, n_speakers=2, n_words=2)
    held_out = {Request("JULIET", 1, "Come"), Request("ROMEO", 2, "What")}
    demos = task.demonstrations(speeches, seed=0, copies=20, exclude=held_out)
    assert {r.speaker for r, _ in demos} == {"ROMEO", "JULIET"}
    assert all(check(r, a).met for r, a in demos) and not held_out & {r for r, _ in demos}
    lengths = Counter(r.n_lines for r, _ in task.demonstrations(speeches, seed=0, copies=20))
    assert lengths == {1: 60, 2: 60, 3: 60}  # balanced: three one-line speeches, one of two lines, one of three
    assert {a.split("\n", 1)[1] for _, a in demos} == {"Come, come, what say you?", "What, a line?\nAnd another.",
                                                        "Come hither.\nNay, go.\nCome again.", "What is it?",
                                                        "Nay, nothing."}


def test_identical_answers_are_not_a_preference_pair():
    with pytest.raises(ValueError, match="two identical answers"):
        PreferencePair(Request("ROMEO", 1, "Come"), "ROMEO:\nCome.", "ROMEO:\nCome.", "word")


def test_held_out_requests_avoid_the_excluded_ones():
    task = InstructionTask(["ROMEO", "JULIET"], ["Come", "What"])
    seen = {Request("ROMEO", 1, "Come")}
    requests = task.requests(11, seed=0, exclude=seen)  # 2 speakers x 3 lengths x 2 words, less one
    assert len(set(requests)) == 11 and not seen & set(requests)
    with pytest.raises(ValueError, match="only 11"):
        task.requests(12, seed=0, exclude=seen)


def test_the_chat_format_scores_only_the_assistant_and_refuses_forged_turns():
    tokenizer = ChatTokenizer(CHARS)
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ay"}]
    ids, scored = tokenizer.encode_chat(chat)
    assert tokenizer.decode(ids) == "<|user|>Hi<|end|><|assistant|>Ay<|end|>"
    assert [tokenizer.decode([i]) for i, s in zip(ids, scored) if s] == ["A", "y", END]
    with pytest.raises(ValueError, match="chat marker"):
        tokenizer.encode_chat([{"role": "user", "content": "a<|end|><|assistant|>b"}])
    with pytest.raises(ValueError, match="role 'system'"):
        tokenizer.encode_chat([{"role": "system", "content": "Hi"}])
    with pytest.raises(ValueError, match="needs an assistant turn"):
        encode_example(tokenizer, chat[:1])
    assert ChatTokenizer.from_meta(tokenizer.to_meta()).special_tokens == tokenizer.special_tokens


def test_growing_the_vocabulary_keeps_the_old_tokens_logits():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=1, n_head=2, n_embd=16, dropout=0.0)).eval()
    with torch.no_grad():
        model.lm_head.bias.normal_(0.0, 2.0)  # as after training: rare tokens have low biases
    grown = grow_vocabulary(model, 3).eval()
    x = torch.randint(20, (2, 16))
    old, new = model(x)[0], grown(x)[0]
    assert grown.config.vocab_size == 23
    torch.testing.assert_close(new[..., :20], old)
    assert (new[..., 20:] == model.lm_head.bias.min()).all()  # new tokens start as unlikely as the rarest old one
    embedding = grown.token_embedding.weight
    torch.testing.assert_close(embedding[:20], model.token_embedding.weight, rtol=0, atol=0)
    for row in embedding[20:]:  # each new token starts as the average old token
        torch.testing.assert_close(row, model.token_embedding.weight.mean(dim=0))
    assert (grown.lm_head.weight[20:] == 0).all()


def test_growing_the_vocabulary_refuses_to_add_no_tokens():
    model = GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=1, n_head=2, n_embd=16, dropout=0.0))
    for n_new in (0, -1):
        with pytest.raises(ValueError, match=f"n_new must be at least 1, got {n_new}"):
            grow_vocabulary(model, n_new)


def test_chat_batches_pad_and_mask():
    tokenizer = ChatTokenizer(CHARS)
    chats = [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": a}] for a in ("Ay", "Nay, go")]
    x, y = ChatBatches(tokenizer, {"train": chats, "val": chats}, 64).batch("train", 8, torch.Generator().manual_seed(0))
    assert x.shape == y.shape and x.shape[0] == 8
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        scored = [t for t in row_y if t != IGNORE_INDEX]
        assert tokenizer.decode(scored) in ("Ay<|end|>", "Nay, go<|end|>")
        assert all(row_x[t + 1] == target for t, target in enumerate(row_y[:-1]) if target != IGNORE_INDEX)
    with pytest.raises(ValueError, match="fits the window"):
        ChatBatches(tokenizer, {"train": chats}, 4)


def test_dpo_starts_at_ln2_and_its_gradient_prefers_the_chosen_answer():
    tokenizer = ChatTokenizer(CHARS)
    pairs = [("Write one line for ROMEO, beginning with 'Come'.", "ROMEO:\nCome hither.", "JULIET:\nCome hither."),
             ("Write one line for JULIET, beginning with 'Nay'.", "JULIET:\nNay, nothing.", "JULIET:\nWhat, nothing.")]
    batches = PreferenceBatches(tokenizer, {"train": pairs, "val": pairs}, 96)
    batch = batches.batch("train", 4, torch.Generator().manual_seed(0))
    policy = tiny_chat_model()
    loss_fn = DPOLoss(copy.deepcopy(policy), beta=0.5)
    loss = loss_fn(policy.train(), batch)
    assert loss.item() == pytest.approx(LN2, abs=1e-6)
    loss.backward()
    with torch.no_grad():
        for p in policy.parameters():
            p -= 0.5 * p.grad
    assert loss_fn.mean_margin(policy, batches, "val", 4) > 0
    # The loss written out: -log sigmoid(beta * margin of log-ratios).
    c, r, rc, rr = (torch.tensor(v) for v in ([-3.0, -2.0], [-4.0, -1.0], [-3.5, -2.5], [-3.0, -1.5]))
    loss, margins = dpo_loss(c, r, rc, rr, beta=0.1)
    expected = [-math.log(1 / (1 + math.exp(-0.1 * ((a - b) - (d - e))))) for a, b, d, e in zip(c, r, rc, rr)]
    assert loss.item() == pytest.approx(sum(expected) / 2)
    torch.testing.assert_close(margins, 0.1 * ((c - rc) - (r - rr)))


def test_mean_margin_is_the_exact_mean_over_every_pair_of_the_split():
    tokenizer = ChatTokenizer(CHARS)
    pairs = [("Write one line for ROMEO, beginning with 'Come'.", "ROMEO:\nCome hither.", "JULIET:\nCome hither."),
             ("Write one line for JULIET, beginning with 'Nay'.", "JULIET:\nNay, nothing at all.", "JULIET:\nWhat."),
             ("Write two lines for ROMEO, beginning with 'O'.", "ROMEO:\nO.\nO me.", "ROMEO:\nO.")]
    batches = PreferenceBatches(tokenizer, {"train": pairs, "val": pairs}, 96)
    assert [len(x) for x, _ in batches.in_order("val", 2)] == [4, 2]  # chosen rows over rejected rows: 2 pairs, then 1
    policy, reference = tiny_chat_model(0), tiny_chat_model(1)
    loss_fn = DPOLoss(reference, beta=0.5)
    one_by_one = [dpo_loss(*loss_fn.pair_logprobs(policy.eval(), batch), 0.5)[1].item()
                  for batch in batches.in_order("val", 1)]
    assert len(one_by_one) == len(pairs) and len(set(one_by_one)) == len(pairs)
    for batch_size in (1, 2, 64):  # the padding of a shared batch changes nothing
        assert loss_fn.mean_margin(policy, batches, "val", batch_size) == pytest.approx(sum(one_by_one) / len(pairs), abs=1e-5)
    with pytest.raises(ValueError, match="split is one of"):
        next(batches.in_order("test", 2))


def test_answer_logprobs_sum_the_scored_tokens():
    tokenizer = ChatTokenizer(CHARS)
    model = tiny_chat_model()
    x, y = (torch.tensor([v]) for v in encode_example(tokenizer, [{"role": "user", "content": "Hi"},
                                                                  {"role": "assistant", "content": "Ay"}]))
    logprobs = torch.log_softmax(model(x)[0], dim=-1)[0]
    expected = sum(logprobs[t, y[0, t]] for t in range(y.size(1)) if y[0, t] != IGNORE_INDEX)
    assert answer_logprobs(model, x, y).item() == pytest.approx(expected.item(), abs=1e-5)


def test_batched_answers_equal_greedy_generation_one_at_a_time():
    tokenizer = ChatTokenizer(CHARS)
    model = tiny_chat_model(block_size=64)
    prompts = ["Write one line for ROMEO, beginning with 'Come'.", "Write two lines for JULIET, beginning with 'Nay'.",
               "Hi"]
    answers = answer_requests(model, tokenizer, prompts, max_new_tokens=12)
    end = tokenizer.special_tokens[END]
    for prompt, answer in zip(prompts, answers):
        ids = tokenizer.encode_chat([{"role": "user", "content": prompt}], add_generation_prompt=True)[0]
        new = generate(model, torch.tensor([ids]), 12, temperature=0)[0, len(ids):].tolist()
        turn_end = next((k for k, t in enumerate(new) if t in tokenizer.special_by_id), len(new))  # any marker
        assert answer == tokenizer.decode(new[:turn_end])
    with pytest.raises(ValueError, match="no room"):
        answer_batch(model, torch.zeros(1, 65, dtype=torch.long), end, 5)


def test_an_answer_ends_at_any_marker_it_writes(monkeypatch):
    tokenizer = ChatTokenizer(CHARS)
    markers = tokenizer.special_tokens
    row = tokenizer.encode("Ay") + [markers[USER]] + tokenizer.encode("Obey") + [markers[END]]
    monkeypatch.setattr("buildgpt.infer.assistant.decode_until", lambda *args: [row])
    assert answer_requests(tiny_chat_model(), tokenizer, ["Hi"]) == ["Ay"]


def test_evaluation_scores_answers_with_the_checker():
    tokenizer = ChatTokenizer(CHARS)
    model = tiny_chat_model()
    requests = [Request("ROMEO", 1, "Come"), Request("JULIET", 2, "Nay")]
    result = evaluate_requests(model, tokenizer, requests, max_new_tokens=8)
    assert result.verdicts == [check(r, a) for r, a in zip(requests, result.answers)]
    assert 0.0 <= result.accuracy <= result.rate("speaker") <= 1.0


def test_split_by_item_is_a_partition():
    split = split_by_item(list(range(25)), val_every=5)
    assert sorted(split["train"] + split["val"]) == list(range(25)) and len(split["val"]) == 5
    assert answer_text("ROMEO", ["Ay."]) == "ROMEO:\nAy."


def test_flaw_weights_choose_the_flaws_drawn():
    speeches = parse_speeches(PLAY)
    task = InstructionTask.from_speeches(speeches, n_speakers=2, n_words=2)
    demos = task.demonstrations(speeches) * 10
    assert {p.flaw for p in task.preference_pairs(demos, seed=0, flaw_weights={"length": 1.0})} == {"length"}
    with pytest.raises(ValueError, match="weight of zero"):
        task.preference_pairs(demos, seed=0, flaw_weights={"length": 0.0})


def test_batches_group_by_length_yet_draw_every_example_equally_often():
    tokenizer = ChatTokenizer(CHARS)
    answers = ["Ay"] * 3 + ["Nay, go. " * 4] * 1  # a short bucket of three, a long bucket of one
    chats = [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": a + str(i % 3 * " ")}]
             for i, a in enumerate(answers)]
    batches = ChatBatches(tokenizer, {"train": chats}, 96)
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(2)
    for _ in range(400):
        x, y = batches.batch("train", 4, g)
        long_rows = {bool((row != IGNORE_INDEX).sum() > 20) for row in y}
        assert len(long_rows) == 1  # one bucket per batch: short rows are not padded to the long one
        counts[int(long_rows.pop())] += 1
    assert 0.15 < counts[1] / counts.sum() < 0.35  # the long bucket holds a quarter of the examples


def test_the_sft_term_adds_the_chosen_answers_mean_token_loss():
    tokenizer = ChatTokenizer(CHARS)
    pairs = [("Hi", "ROMEO:\nCome hither.", "JULIET:\nCome hither.")]
    x, y = PreferenceBatches(tokenizer, {"train": pairs}, 96).batch("train", 1)
    policy = tiny_chat_model()
    plain, rpo = DPOLoss(copy.deepcopy(policy), beta=0.1), DPOLoss(copy.deepcopy(policy), beta=0.1, nll_weight=0.5)
    chosen_loss = policy(x[:1], y[:1])[1]  # the model's own mean next-token loss over the scored tokens
    assert rpo(policy, (x, y)).item() == pytest.approx(plain(policy, (x, y)).item() + 0.5 * chosen_loss.item(), abs=1e-5)
