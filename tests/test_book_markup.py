"""Two markup slips that build without an error but break a page.

- A glue role inside inline code (`` `{glue:text}`x`%` ``) renders as literal text, not the value.
- `show_source(...)` returns the listing to display; a code cell shows it only as its last expression,
  so a cell that calls it and then does something else shows nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.md"))
CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```", re.S | re.M)
ROLE_IN_CODE = re.compile(r"(?<!`)`\{glue:")  # one backtick, then a role: ```{glue:md} fences are fine


def roles_in_inline_code(markdown: str) -> list[int]:
    """Line numbers where a glue role sits inside inline code."""
    return [markdown[:m.start()].count("\n") + 1 for m in ROLE_IN_CODE.finditer(markdown)]


def hidden_listings(markdown: str) -> list[int]:
    """Line numbers of code cells that call show_source but end with another statement."""
    found = []
    for cell in CODE_CELL.finditer(markdown):
        lines = [line for line in cell.group(1).split("\n") if line.strip() and not line.startswith(":")]
        if any("show_source(" in line for line in lines) and not lines[-1].lstrip().startswith(
                ("show_source(", "display(")):
            found.append(markdown[:cell.start()].count("\n") + 1)
    return found


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_no_glue_role_inside_inline_code(chapter):
    lines = roles_in_inline_code(chapter.read_text(encoding="utf-8"))
    assert not lines, f"book/{chapter.name}: a glue role inside backticks prints as text, at lines {lines}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_every_listing_is_displayed(chapter):
    lines = hidden_listings(chapter.read_text(encoding="utf-8"))
    assert not lines, (f"book/{chapter.name}: cells at lines {lines} call show_source but end with another "
                       "statement, so the listing is not shown; make show_source(...) the last line")


def test_the_scanners_catch_both_slips_and_pass_the_right_forms():
    assert roles_in_inline_code("a\n(the `{glue:text}`bar:.0f`%` bar)") == [2]
    assert roles_in_inline_code("{glue:text}`bar:.0f`%\n```{glue:md} table\n```") == []
    hidden = "```{code-cell} ipython3\nshow_source(f)\nglue(\"x\", 1, display=False)\n```\n"
    shown = "```{code-cell} ipython3\n:tags: [hide-input]\nglue(\"x\", 1, display=False)\nshow_source(f)\n```\n"
    assert hidden_listings("text\n" + hidden) == [2]
    assert hidden_listings(shown) == []
