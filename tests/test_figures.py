"""The interactive figures, and showing the package's own source."""

from __future__ import annotations

import inspect

import plotly.graph_objects as go
import pytest

from buildgpt import chars, figures, show
from buildgpt.training import History


@pytest.fixture
def history() -> History:
    return History(steps=[0, 10, 20], train=[4.2, 3.0, 2.6], val=[4.3, 3.1, 2.7])


def test_loss_curves_one_run(history):
    fig = figures.loss_curves(history)
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["train", "val"]
    train, val = fig.data
    assert list(train.x) == list(val.x) == history.steps
    assert list(train.y) == history.train and list(val.y) == history.val
    assert train.line.dash == "dash"
    assert fig.layout.title.text == "Loss during training"


def test_loss_curves_several_runs(history):
    other = History(steps=[0, 5], train=[4.0, 3.5], val=[4.1, 3.6])
    fig = figures.loss_curves({"small": history, "big": other}, title="compare")
    assert len(fig.data) == 4
    assert [t.name for t in fig.data] == ["small train", "small val", "big train", "big val"]
    assert list(fig.data[3].y) == other.val
    assert fig.layout.title.text == "compare"


def test_char_frequencies_counts_sorted():
    text = "aaa bb\nc\n\n"
    fig = figures.char_frequencies(text)
    bar = fig.data[0]
    counts = dict(zip(bar.x, bar.y))
    assert counts == {"a": 3, "\\n": 3, "b": 2, "␣": 1, "c": 1}
    assert list(bar.y) == sorted(bar.y, reverse=True)
    assert sum(bar.y) == len(text)
    assert fig.layout.xaxis.type == "category"


def test_heatmap_keeps_labels():
    matrix = [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]
    fig = figures.heatmap(matrix, x_labels=["a", "b", "␣"], y_labels=["\\n", "z"], title="t",
                          x_title="next", y_title="current")
    hm = fig.data[0]
    assert list(hm.x) == ["a", "b", "␣"] and list(hm.y) == ["\\n", "z"]
    assert [list(row) for row in hm.z] == matrix
    assert fig.layout.yaxis.autorange == "reversed"
    assert fig.layout.xaxis.title.text == "next" and fig.layout.yaxis.title.text == "current"


def test_char_label():
    assert figures.char_label("\n") == "\\n"
    assert figures.char_label(" ") == "␣"
    assert figures.char_label("\t") == "\\t"
    assert figures.char_label("a") == "a"
    assert figures.char_label("é") == "é"


def test_figures_serialise(history):
    for fig in (figures.loss_curves(history), figures.char_frequencies("ab a"),
                figures.heatmap([[1]], ["x"], ["y"], "one")):
        assert fig.to_json().startswith("{")


def test_show_source_is_the_real_source():
    src = show.source(chars.CharTokenizer)
    assert "class CharTokenizer" in src
    assert src == inspect.getsource(chars.CharTokenizer)
    assert "def encode" in src
    assert show.source(show.source).startswith("def source(obj)")
    assert '"""Show the package' in show.source(show)


def test_show_source_markdown():
    pytest.importorskip("IPython")
    md = show.show_source(figures.char_label)
    assert md.data.startswith("```python\ndef char_label")
    assert md.data.endswith("\n```")
