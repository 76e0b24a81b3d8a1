"""No hand-typed numbers in the chapters' prose: every figure comes from the run (myst-nb `glue`).

The scanner reads each book/*.md chapter as MyST text and looks only at prose. It skips the YAML
front matter, fenced blocks that hold code (``` or ~~~ fences, `{code-cell}`, `{math}`, `{glue:md}`
and other code directives; the bodies of prose directives such as `{note}` are scanned, their
`:option:` lines are not), HTML comments, inline code, math (`$...$`, `$$...$$`), roles with their
content (`{glue:text}`...``, `{doc}`...``, `{math}`...``), link and image targets, bare URLs, HTML
tags, footnote and reference labels, ordered-list markers ("1. "), and MyST labels `(name)=`.

In what remains, any word with a digit is an offence unless it is one of a few names that contain
digits (`ALLOWED_NAMES`) or a reference (`ALLOWED_REFERENCES`: "chapter 3", "Exercise 1:", "section
3.5", a citation's year). Number words ("three seeds") are not digits and are not flagged, nor are
superscripts and subscripts (C², log₂).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.md"))

# Names that contain digits. Masked before words are checked, so "GPT-2's" and "UTF-8-encoded" pass.
ALLOWED_NAMES = [
    r"GPT-[234]o?",  # model families
    r"OLMo 2|Gemma 3",  # model generations named in citations
    r"UTF-(?:8|16|32)",  # encodings
    r"(?:cl100k|o200k|r50k|p50k)_base",  # tiktoken encodings
    r"U\+[0-9A-F]{4,6}",  # Unicode code points
    r"(?:b?float(?:16|32|64)|int[48]|bf16|fp(?:16|32))",  # number formats
    r"Q[48]_0",  # llama.cpp quantisation formats
    r"SHA-256",  # the checksum the data registry verifies
    r"FSDP2",  # PyTorch's fully sharded data parallel, second version
    r"[AH]100|H200",  # GPUs
    r"Llama 2",  # the model family whose tokenizer settings chapter 5 shows
]
# References, not measurements: chapter, exercise and section numbers, and citation years.
ALLOWED_REFERENCES = [
    # "chapter 3", "Exercise 1:", "chapters 3 and 4", "section 3.5"
    r"\b(?:[Cc]hapter|[Ee]xercise|[Ss]ection)s?\s+\d+(?:\.\d+)*(?:\s*(?:,|and|or|to|–)\s*\d+(?:\.\d+)*)*",
    # "Vaswani et al. 2017", "Press et al., (2022)"
    r"\b[A-Z][\w'’-]+\s+et\s+al\.?,?\s+\(?(?:19|20)\d\d[a-z]?\)?",
    # "Radford (2019)", "Hoffmann and Borgeaud (2022)"
    r"\b[A-Z][\w'’-]+(?:\s+(?:and|&)\s+[A-Z][\w'’-]+)?\s+\((?:19|20)\d\d[a-z]?\)",
    # "(Author et al. 2024)", "(Author, 2019)"
    r"\([A-Z][^()\n]*?,?\s(?:19|20)\d\d[a-z]?\)",
]

# Fenced directives whose bodies are prose (scanned); every other fence holds code or data.
PROSE_DIRECTIVES = {
    "admonition", "attention", "caution", "danger", "dropdown", "epigraph", "error", "figure", "hint",
    "important", "margin", "note", "seealso", "sidebar", "table", "tip", "topic", "warning",
}
FENCE = re.compile(r"^\s*(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
OPTION = re.compile(r"^\s*:[\w-]+:(?:\s|$)")

# Inline things that are not prose, masked in this order over the prose text (they may wrap lines).
NOT_PROSE = [
    r"<!--[\s\S]*?-->",  # HTML comments
    r"\{[^{}\s`]+\}(?P<rt>`+)[\s\S]+?(?P=rt)",  # roles with their content: {glue:text}`x:.3f`, {doc}`...`
    r"(?P<ct>`+)[\s\S]+?(?P=ct)",  # inline code
    r"\$\$[\s\S]+?\$\$",  # display math
    r"(?<![\\$])\$(?!\s)[^$\n]+?(?<!\s)\$",  # inline math
    r"(?m)^\s*\([^()\s]+\)=\s*$",  # MyST labels: (my-label)=
    r"(?m)^\s*\[[^\]\n]+\]:\s*\S.*$",  # link reference definitions
    r"\]\([^)\s]*(?:\s+\"[^\"]*\")?\)",  # link and image targets: [text](target)
    r"\]\[[^\]\n]*\]",  # reference links: [text][label]
    r"\[\^[^\]\n]+\]",  # footnote references
    r"<[a-zA-Z/][^>\n]*>",  # HTML tags and autolinks
    r"\bhttps?://\S+",  # bare URLs
    r"(?m)^[ \t>]*\d+[.)](?=[ \t])",  # ordered-list markers: "1. **Text repeats.**"
    *ALLOWED_REFERENCES,
    r"\b(?:" + "|".join(ALLOWED_NAMES) + r")(?![\w+])",
]
NOT_PROSE_RE = [re.compile(p) for p in NOT_PROSE]
WORD = re.compile(r"\S+")
EDGE = "\"'“”‘’.,;:!?()[]{}*_"


def _blank(text: str) -> str:
    """`text` with every character but newlines turned into a space (keeps line numbers and columns)."""
    return re.sub(r"[^\n]", " ", text)


def prose_only(markdown: str) -> str:
    """The chapter with everything but prose blanked out, line for line."""
    lines = markdown.split("\n")
    out = []
    stack: list[tuple[str, int, bool]] = []  # open fences: (character, length, body is prose)
    in_front_matter = bool(lines) and lines[0].strip() == "---"
    for i, line in enumerate(lines):
        if in_front_matter:
            out.append("")
            if i > 0 and line.strip() == "---":
                in_front_matter = False
            continue
        fence = FENCE.match(line)
        if fence and stack and fence["fence"][0] == stack[-1][0] and len(fence["fence"]) >= stack[-1][1] \
                and not fence["info"].strip():
            stack.pop()  # closes the innermost fence
            out.append("")
            continue
        if fence and (not stack or stack[-1][2]):  # fences open only where we are in prose
            directive = re.match(r"\s*\{([^}]+)\}", fence["info"])
            stack.append((fence["fence"][0], len(fence["fence"]),
                          bool(directive) and directive[1] in PROSE_DIRECTIVES))
            out.append("")  # the fence line itself: info string, directive name and argument
            continue
        if stack and (not stack[-1][2] or OPTION.match(line)):
            out.append("")  # code, or a directive's :option: line
            continue
        out.append(line)
    text = "\n".join(out)
    for pattern in NOT_PROSE_RE:
        text = pattern.sub(lambda m: _blank(m.group(0)), text)
    return text


def typed_numbers(markdown: str) -> list[tuple[int, str]]:
    """(line number, word) for each word of prose that contains a digit."""
    found = []
    for number, line in enumerate(prose_only(markdown).split("\n"), start=1):
        for word in WORD.findall(line):
            if any(ch.isdecimal() for ch in word):  # not ² or ₂: exponents and bases are notation
                found.append((number, word.strip(EDGE)))
    return found


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_no_hand_typed_numbers_in_prose(chapter):
    cases = typed_numbers(chapter.read_text(encoding="utf-8"))
    listing = "\n".join(f"  book/{chapter.name}:{line}: {word}" for line, word in cases)
    assert not cases, (
        f"{len(cases)} hand-typed number(s) in the prose of book/{chapter.name}; glue them from a code cell "
        f"(glue(\"name\", value, display=False), then {{glue:text}}`name`), or, for a name or reference, "
        f"extend ALLOWED_NAMES / ALLOWED_REFERENCES in tests/test_prose.py:\n{listing}")


# ---------------------------------------------------------------- the scanner itself


def words(markdown: str) -> list[str]:
    return [word for _, word in typed_numbers(markdown)]


def test_typed_measurement_is_caught():
    assert words("The model has 10.8M parameters.") == ["10.8M"]
    assert words("It reaches a loss of 1.47 after 5000 steps.") == ["1.47", "5000"]
    assert words("the 10.8M-parameter model") == ["10.8M-parameter"]


def test_number_words_are_not_digits():
    assert words("We train with three seeds for a few hundred steps.") == []


def test_code_and_math_are_ignored():
    text = "\n".join([
        "Shapes `(B, T, 3C)` and $d_k = 64$, and",
        "$$",
        "\\sqrt{512}",
        "$$",
        "```{code-cell} ipython3",
        "x = 10.8e6",
        "```",
        "~~~",
        "42",
        "~~~",
        "```{math}",
        "e^{2}",
        "```",
        "and {math}`2^8` too.",
    ])
    assert words(text) == []


def test_glue_and_references_are_ignored():
    text = ("Loss {glue:text}`val_loss:.3f` after {glue:text}`steps` steps, see {doc}`03-gpt` and "
            "{ref}`fig-2`; [the paper](https://arxiv.org/abs/1706.03762) and <https://x.org/v2>.\n"
            "<!-- TODO: 3 more -->\n(sec-2)=\n## Heading\n```{glue:md} verdict_2\n:format: myst\n```\n")
    assert words(text) == []


def test_front_matter_is_ignored_and_line_numbers_count_it():
    text = "---\njupytext:\n  version: 1.16\n---\n\nWe ran 12 steps.\n"
    assert typed_numbers(text) == [(6, "12")]


def test_allowed_names_and_references():
    text = ("GPT-2's tokenizer, GPT-4o, UTF-8-encoded bytes, cl100k_base and o200k_base, U+00E9, bfloat16 and "
            "float32, Q4_0, SHA-256, OLMo 2, log₂ V and C². As in chapter 3, Exercise 1: heads; chapters 3 and 4; section 3.5 of "
            "Vaswani et al. (2017), Press et al. 2022, Radford (2019), (Hoffmann et al., 2022).")
    assert words(text) == []


def test_near_misses_of_the_allowlist_are_caught():
    assert words("GPT-5 and UTF-7 and float8 and 2 chapters") == ["GPT-5", "UTF-7", "float8", "2"]
    assert words("In 2024 we ran it.") == ["2024"]


def test_prose_directives_are_scanned_code_directives_not():
    text = "```{note}\n:class: dropdown\nIt took 3 hours.\n```\n```{glue:md} x\n:format: myst\n```\n"
    assert typed_numbers(text) == [(3, "3")]


def test_nested_fences_in_a_prose_directive():
    text = "::::{tip}\nRun this:\n```bash\nbuildgpt train --iters 500\n```\nabout 2 minutes\n::::\n"
    assert typed_numbers(text) == [(6, "2")]


def test_ordered_list_markers_are_not_numbers():
    text = "1. **First.** Some words.\n2. Then 3 more.\n   10) nested\n"
    assert typed_numbers(text) == [(2, "3")]
