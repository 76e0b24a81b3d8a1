"""Shakespeare on request: a task whose answers code can check, for finetuning a GPT to follow instructions.

A request names a speaker, a number of lines and a first word: "Write two lines for ROMEO,
beginning with 'Come'." An answer meets it if its first line is the speaker's name as the plays
write it ("ROMEO:"), then exactly that many lines of speech, the first of which begins with the
word. Nothing here is a matter of taste, so "the model follows instructions better" becomes a
number.

The corpus supplies everything. Each short speech of tinyshakespeare (one to three lines) is a
**demonstration**; the requests we evaluate on ask for the most frequent first words. A **preference
pair** sets a demonstration (chosen) against the same speech spoiled in one way (rejected): the
wrong speaker's name, a line too many or too few, or its first word swapped for another. Or it
sets a model's own answer that missed (rejected) against that answer repaired (chosen).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass

NUMBER_WORDS = ("one", "two", "three")  # line counts, spelled: tinyshakespeare's only digit is 3
MAX_LINES = len(NUMBER_WORDS)
FLAWS = ("speaker", "length", "word")


@dataclass(frozen=True)
class Speech:
    speaker: str  # as the plays write it: "ROMEO", "First Citizen"
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Request:
    speaker: str
    n_lines: int
    word: str  # the first word, letters only, as the plays write it: "Come"

    def text(self) -> str:
        """What the user writes. Example: `Request("ROMEO", 2, "Come").text()` is "Write two lines for ROMEO, beginning with 'Come'."."""
        lines = "line" if self.n_lines == 1 else "lines"
        return f"Write {NUMBER_WORDS[self.n_lines - 1]} {lines} for {self.speaker}, beginning with '{self.word}'."


@dataclass(frozen=True)
class Verdict:
    """Which parts of a request an answer meets."""

    speaker: bool
    length: bool
    word: bool

    @property
    def met(self) -> bool:
        return self.speaker and self.length and self.word


@dataclass(frozen=True)
class PreferencePair:
    request: Request
    chosen: str  # meets the request
    rejected: str  # misses it in the way `flaw` says
    flaw: str  # one of FLAWS

    def __post_init__(self):
        if self.chosen == self.rejected:
            raise ValueError(f"the preference pair for {self.request.text()!r} has two identical answers "
                             f"({self.chosen!r}); a pair must differ to say which is better")


def parse_speeches(text: str) -> list[Speech]:
    """Every speech of a play's text: a "NAME:" line, then its lines, up to a blank line.

    Example: `parse_speeches("ROMEO:\\nO, she doth teach the torches!\\n\\n")` is one speech of one line.
    """
    speeches = []
    for block in text.split("\n\n"):
        head, *lines = block.strip("\n").split("\n")
        if lines and head.endswith(":") and all(lines):
            speeches.append(Speech(head[:-1], tuple(lines)))
    return speeches


def first_word(line: str) -> str:
    """The letters a line begins with, up to the first other character. Example: `first_word("Come, sir!") == "Come"`."""
    return re.match(r"[A-Za-z]*", line).group()


def answer_text(speaker: str, lines) -> str:
    """An answer as the plays write a speech. Example: `answer_text("ROMEO", ["Ay."])` is "ROMEO:\\nAy."."""
    return "\n".join([f"{speaker}:", *lines])


def check(request: Request, answer: str) -> Verdict:
    """Which parts of `request` the `answer` meets. Example: `check(Request("ROMEO", 1, "Ay"), "ROMEO:\\nAy.").met`."""
    head, *lines = answer.split("\n")
    return Verdict(speaker=head == f"{request.speaker}:",
                   length=len(lines) == request.n_lines and all(line.strip() for line in lines),
                   word=bool(lines) and first_word(lines[0]) == request.word)


@dataclass
class InstructionTask:
    """The task built from a corpus's speeches: who may be asked for, which first words, and the demonstrations.

    `speakers` are the most frequent speakers of short speeches and `words` their most frequent
    first words, both counted in `speeches` (the training text), so every request asks for
    something the corpus has plenty of.
    Example: `task = InstructionTask.from_speeches(parse_speeches(train_text))`.
    """

    speakers: list[str]
    words: list[str]

    @classmethod
    def from_speeches(cls, speeches: list[Speech], n_speakers: int = 24, n_words: int = 16) -> InstructionTask:
        short = [s for s in speeches if len(s.lines) <= MAX_LINES]
        speakers = [name for name, _ in Counter(s.speaker for s in short).most_common(n_speakers)]
        counts = Counter(first_word(s.lines[0]) for s in short if s.speaker in speakers)
        return cls(speakers, [w for w, _ in counts.most_common(n_words + 1) if w][:n_words])

    def demonstrations(self, speeches: list[Speech], seed: int | None = None, copies: int = 1,
                       exclude: set[Request] = frozenset()) -> list[tuple[Request, str]]:
        """Each short speech that begins with a word: the request it meets, and itself as the answer.

        Without `seed`, only the speeches of known speakers count, each as its speaker's. With a
        seed, every short speech counts, each time for a known speaker drawn at random: who first
        said the lines does not change whether they meet the request, and a model that cannot
        guess the name from the lines must learn to copy it from the request. Then every length
        gets `copies` times as many demonstrations as the most common length has speeches (the
        rarer lengths' speeches recur, for other speakers), since requests ask for each length
        equally often. No demonstration answers a request in `exclude` (the held-out ones).
        Example: `task.demonstrations(speeches)[0]` is `(Request(...), "SPEAKER:\\n...")`.
        """
        short = [s for s in speeches if len(s.lines) <= MAX_LINES and first_word(s.lines[0])]
        if seed is None:
            known_speakers = set(self.speakers)
            attributed = [(s.speaker, s) for s in short if s.speaker in known_speakers]
        else:
            rng = random.Random(seed)
            by_length = [[s for s in short if len(s.lines) == n] for n in range(1, MAX_LINES + 1)]
            per_length = copies * max(map(len, by_length))
            attributed = [(rng.choice(self.speakers), group[i % len(group)])
                          for group in by_length if group for i in range(per_length)]
        demos = [(Request(speaker, len(s.lines), first_word(s.lines[0])), answer_text(speaker, s.lines))
                 for speaker, s in attributed]
        return [(request, answer) for request, answer in demos if request not in exclude]

    def requests(self, n: int, seed: int, exclude: set[Request] = frozenset()) -> list[Request]:
        """`n` distinct requests drawn uniformly from speakers x lengths x words, none of them in `exclude`."""
        pool = [Request(s, k, w) for s in self.speakers for k in range(1, MAX_LINES + 1) for w in self.words]
        pool = [r for r in pool if r not in exclude]
        if n > len(pool):
            raise ValueError(f"asked for {n} requests, but only {len(pool)} are not excluded")
        return random.Random(seed).sample(pool, n)

    def preference_pairs(self, demos: list[tuple[Request, str]], seed: int,
                         flaw_weights: dict[str, float] | None = None) -> list[PreferencePair]:
        """One pair per demonstration: the demonstration against itself spoiled by a flaw drawn from FLAWS.

        `flaw_weights` (default: all equal) says how often each flaw is drawn, e.g. in proportion
        to how often a model misses each part of the requests.
        Example: `task.preference_pairs(demos, seed=1, flaw_weights={"speaker": 1, "length": 8, "word": 2})`.
        """
        weights = [max(0.0, (flaw_weights or {}).get(flaw, 1.0 if flaw_weights is None else 0.0)) for flaw in FLAWS]
        if not sum(weights):
            raise ValueError(f"flaw_weights {flaw_weights} give every flaw of {FLAWS} a weight of zero")
        rng = random.Random(seed)
        spare_lines = speech_lines(demos)
        pairs = []
        for request, answer in demos:
            flaw = rng.choices(FLAWS, weights)[0]
            rejected = self._spoil(request, answer, flaw, rng, spare_lines)
            assert check(request, answer).met and not check(request, rejected).met, (request, answer, rejected)
            pairs.append(PreferencePair(request, answer, rejected, flaw))
        return pairs

    def _spoil(self, request: Request, answer: str, flaw: str, rng: random.Random, spare_lines: list[str]) -> str:
        head, *lines = answer.split("\n")
        if flaw == "speaker":
            return answer_text(rng.choice([s for s in self.speakers if s != request.speaker]), lines)
        if flaw == "length":
            if len(lines) > 1 and rng.random() < 0.5:  # one line too few, keeping the first
                del lines[rng.randrange(1, len(lines))]
            else:  # one line too many
                lines.insert(rng.randrange(1, len(lines) + 1), rng.choice(spare_lines))
            return "\n".join([head, *lines])
        other = rng.choice([w for w in self.words if w != request.word])  # the first word swapped
        return "\n".join([head, other + lines[0][len(request.word):], *lines[1:]])


def speech_lines(demos: list[tuple[Request, str]]) -> list[str]:
    """Every line of speech in the demonstrations' answers (not their name lines), to draw spare lines from.

    Example: `speech_lines([(request, "ROMEO:\nO, she doth teach")])` is `['O, she doth teach']`.
    """
    return [line for _, answer in demos for line in answer.split("\n")[1:]]


def repair(request: Request, answer: str, rng: random.Random, spare_lines: list[str]) -> str:
    """`answer` changed as little as it takes to meet `request`.

    The name line is rewritten; a line that is blank or longer than any spare line (one that ran
    on) becomes a spare line; lines past the requested count are cut and missing ones drawn from
    the spare lines; the first word is set. Example: `repair(Request("ROMEO", 1, "Ay"),
    "JULIET:\nNo, sir.\nGo.", random.Random(0), ["Peace, ho!"])` is "ROMEO:\nAy, sir.".
    """
    longest = max(map(len, spare_lines))
    _, *lines = answer.split("\n")
    lines = [line if line.strip() and len(line) <= longest else rng.choice(spare_lines) for line in lines]
    lines = lines[:request.n_lines] + [rng.choice(spare_lines) for _ in range(request.n_lines - len(lines))]
    word = first_word(lines[0])  # replaced; a line that starts with no word ("'Tis ...") gets one in front
    lines[0] = request.word + (lines[0][len(word):] if word else " " + lines[0].lstrip())
    return answer_text(request.speaker, lines)


def pairs_from_answers(requests: list[Request], answers: list[str], spare_lines: list[str],
                       seed: int) -> list[PreferencePair]:
    """A pair for each answer that misses its request: the answer itself (rejected) against its repair
    (chosen), so the pair shows the model's own mistake. Its flaw is the first part it missed.

    Example: `pairs_from_answers(ev.requests, ev.answers, speech_lines(demos), seed=1)`.
    """
    rng = random.Random(seed)
    pairs = []
    for request, answer in zip(requests, answers):
        verdict = check(request, answer)
        if not verdict.met:
            flaw = next(part for part in FLAWS if not getattr(verdict, part))
            pairs.append(PreferencePair(request, repair(request, answer, rng, spare_lines), answer, flaw))
    return pairs
