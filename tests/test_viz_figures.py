"""The interactive figures: loss curves, frequencies, heatmaps, the attention explorer."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from buildgpt.train.loop import History
from buildgpt.viz import figures


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


def test_a_log_coloured_heatmap_leaves_a_missing_cell_blank():
    fig = figures.heatmap([[0.01, float("nan")], [0.1, 1.0]], ["a", "b"], ["c", "d"], "t", log_colour=True)
    assert list(fig.data[0].colorbar.tickvals) == [-2, -1, 0]  # the decades of the values that are there


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


def test_lines_and_bars():
    fig = figures.lines([1, 2, 4], {"a": [3.0, 2.0, 1.5], "b": [3.1, 2.5, 2.0]}, "t", log_x=True)
    assert [t.name for t in fig.data] == ["a", "b"] and list(fig.data[1].y) == [3.1, 2.5, 2.0]
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type is None
    assert list(fig.layout.xaxis.tickvals) == [1, 2, 4], "a log axis is ticked at the measured points"
    assert fig.layout.hoverlabel.namelength == -1, "hover labels show whole trace names"
    bar = figures.bars(["x", "y"], [1.234, 5.0], "t", text_format="{:.1f}").data[0]
    assert list(bar.text) == ["1.2", "5.0"]


def test_curves_each_with_its_own_x():
    fig = figures.curves({"short": ([0, 10], [3.0, 2.0]), "long": ([0, 10, 20, 30], [3.0, 2.5, 2.2, 2.0])}, "t")
    assert [len(t.x) for t in fig.data] == [2, 4] and list(fig.data[1].y) == [3.0, 2.5, 2.2, 2.0]


def test_attention_explorer_one_matrix_per_layer_and_head():
    maps = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)).numpy()  # as the chapters pass it
    fig = figures.attention_explorer(maps, "ab a")
    assert len(fig.data) == 6
    assert [t.visible for t in fig.data] == [True] + [False] * 5  # one shown at a time
    assert list(fig.data[0].x) == ["0:a", "1:b", "2:␣", "3:a"]  # positions keep repeated characters apart
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons][:2] == ["layer 1, head 1", "layer 1, head 2"]
    assert buttons[4].args[0]["visible"] == [False] * 4 + [True, False]
    assert torch.equal(torch.tensor(fig.data[5].z), torch.from_numpy(maps[1, 2]))


def test_matrix_selector_shares_one_colour_range_across_the_menu():
    """Each matrix on its own range would make every ALiBi head look the same."""
    fig = figures.matrix_selector({"steep": [[0.0, -8.0], [float("nan"), 0.0]], "gentle": [[0.0, -1.0], [-1.0, 0.0]]},
                                  ["a", "b"], ["a", "b"], "t")
    assert {(t.zmin, t.zmax) for t in fig.data} == {(-8.0, 0.0)}
    assert figures.matrix_selector({"m": [[0.5, 1.0]]}, ["a", "b"], ["r"], "t", zmin=0).data[0].zmin == 0


def test_dots_and_intervals_show_every_value_and_the_interval():
    fig = figures.dots_and_intervals({"a": [1.0, 1.2, 1.1], "b": [2.0, 2.1]}, {"a": (0.9, 1.3), "b": (1.5, 2.6)}, "t")
    means, dots = fig.data[0::2], fig.data[1::2]
    assert [list(d.y) for d in dots] == [[1.0, 1.2, 1.1], [2.0, 2.1]]
    assert means[0].y[0] == pytest.approx(1.1) and means[0].error_y.array[0] == pytest.approx(0.2)
    assert means[1].error_y.arrayminus[0] == pytest.approx(0.55)


def test_loss_curves_take_a_line_style_per_run():
    h = History(steps=[0, 10], train=[3.0, 2.0], val=[3.1, 2.2])
    fig = figures.loss_curves({"a (seed 0)": h, "a (seed 1)": h}, splits=("val",),
                              lines={"a (seed 1)": dict(color="red", dash="dot")})
    assert fig.data[1].line.color == "red" and fig.data[1].line.dash == "dot" and fig.data[0].line.dash is None


def test_heatmap_log_colour_keeps_the_values_in_the_hover():
    probs = np.array([[0.9, 0.1], [0.001, 0.999]])
    trace = figures.heatmap(probs, ["a", "b"], ["a", "b"], "t", log_colour=True).data[0]
    assert np.allclose(trace.z, np.log10(probs)) and np.allclose(trace.customdata, probs)
    assert "customdata" in trace.hovertemplate and "%{z" not in trace.hovertemplate
    assert list(trace.colorbar.ticktext) == ["0.001", "0.01", "0.1", "1"]

