"""Showing the package's own source in the book: the real lines, captioned with where they live."""

from __future__ import annotations

import pytest

from buildgpt.nn import attention
from buildgpt.tokenizers import chars
from buildgpt.train.loop import History
from buildgpt.utils import show
from buildgpt.viz import figures


def lines_of(location: str) -> str:
    """The text a `file:first-last` location names, read from the file itself."""
    file, span = location.rsplit(":", 1)
    first, last = map(int, span.split("-"))
    text = (show.PACKAGE_ROOT.parent / file).read_text().splitlines(keepends=True)
    return "".join(text[first - 1:last])


def test_show_source_is_the_real_source():
    src = show.source(chars.CharTokenizer)
    assert src.startswith("class CharTokenizer")
    assert "def encode" in src
    assert show.source(show.source).startswith("def source(obj)")
    assert '"""Show the package' in show.source(show)


@pytest.mark.parametrize("obj", [chars.CharTokenizer, attention.scaled_dot_product_attention, figures.char_label,
                                 show.location, chars.CharTokenizer.vocab_size, History.final_val])
def test_location_names_the_lines_the_source_comes_from(obj):
    where = show.location(obj)
    assert where.startswith("buildgpt/")
    assert lines_of(where) == show.source(obj)


def test_a_property_is_shown_as_its_getter_decorator_and_all():
    assert show.source(chars.CharTokenizer.vocab_size).lstrip().startswith("@property\n    def vocab_size")


def test_location_of_a_module_starts_at_line_one():
    where = show.location(show)
    assert where.startswith("buildgpt/utils/show.py:1-")
    assert lines_of(where) == show.source(show)


def test_show_source_markdown():
    pytest.importorskip("IPython")
    md = show.show_source(figures.char_label)
    assert md.data.startswith(f"`code/{show.location(figures.char_label)}`\n\n```python\ndef char_label")
    assert md.data.endswith("\n```")
