"""The book's interactive figures (Plotly): loss curves, heatmaps, bar charts.

Each function returns a `plotly.graph_objects.Figure`: in Jupyter it is an ordinary
interactive figure; in the HTML book the `buildgpt_book` extension renders it offline.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ..train.loop import History

_SPECIAL = {"\n": "\\n", " ": "␣", "\t": "\\t"}


def char_label(c: str) -> str:
    """A visible label for a character: newline, space and tab would be invisible on an axis.

    Example: `char_label(" ")` is "␣", and `char_label("a")` is "a".
    """
    return _SPECIAL.get(c, c)


def loss_curves(runs: History | Mapping[str, History], title: str = "Loss during training",
                splits: Sequence[str] = ("train", "val"), lines: Mapping[str, dict] | None = None) -> go.Figure:
    """Train (dashed) and val (solid) loss against step, for one run or several overlaid.

    `lines` may give a run its line style, e.g. one colour per variant and a dash per seed.
    Example: `loss_curves({"a": history_a, "b": history_b})` draws four lines: a train, a val, b train, b val.
    """
    runs = {"": runs} if isinstance(runs, History) else runs
    fig = go.Figure()
    for name, history in runs.items():
        prefix = f"{name} " if name else ""
        for split in splits:
            style = {"dash": "dash" if split == "train" else None, **(lines or {}).get(name, {})}
            fig.add_scatter(x=history.steps, y=getattr(history, split), mode="lines+markers",
                            name=f"{prefix}{split}", line=style, hovertemplate="%{y:.3f}")
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="cross-entropy loss (nats)",
                      hovermode="x unified", height=420)
    return fig


def char_frequencies(text: str, title: str = "How often each character occurs") -> go.Figure:
    """A bar for each character of `text`, most frequent first.

    Example: `char_frequencies("hello")`'s first bar is "l", 2 times.
    """
    counts = Counter(text).most_common()
    fig = go.Figure(go.Bar(x=[char_label(c) for c, _ in counts], y=[n for _, n in counts],
                           hovertemplate="%{x}: %{y:,} times<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="character", yaxis_title="count", height=380,
                      xaxis=dict(type="category"))
    return fig


def heatmap(matrix, x_labels: Sequence[str], y_labels: Sequence[str], title: str,
            x_title: str = "", y_title: str = "", colorbar_title: str = "",
            hover: str = "%{y} → %{x}: %{z:.3f}", log_colour: bool = False, height: int = 650) -> go.Figure:
    """A matrix as a heatmap with labelled axes, first row at the top.

    `log_colour` colours by log10 of the (positive) values, so that small probabilities are told
    apart; the hover and the colour bar still read the values themselves.
    Example: `heatmap(probs, chars, chars, "P(next | current)", log_colour=True)`.
    """
    matrix = np.asarray(matrix, dtype=float)
    colour, colorbar, values = matrix, dict(title=colorbar_title), None
    if log_colour:
        colour, values = np.log10(np.maximum(matrix, 1e-12)), matrix
        decades = range(math.floor(np.nanmin(colour)), math.ceil(np.nanmax(colour)) + 1)  # NaN: a cell left blank
        colorbar.update(tickvals=list(decades), ticktext=[f"{10.0 ** d:g}" for d in decades])
        hover = hover.replace("%{z", "%{customdata")
    fig = go.Figure(go.Heatmap(z=colour, customdata=values, x=list(x_labels), y=list(y_labels),
                               colorscale="Viridis", colorbar=colorbar, hovertemplate=hover + "<extra></extra>"))
    axis = dict(type="category", dtick=1, tickfont=dict(size=10))  # every label, however many
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=height,
                      xaxis=dict(axis, tickangle=0), yaxis=dict(axis, autorange="reversed"))
    return fig


def lines(x: Sequence, series: Mapping[str, Sequence[float]], title: str, x_title: str = "", y_title: str = "",
          log_x: bool = False, log_y: bool = False) -> go.Figure:
    """Several named curves over the same x values (`curves` with one x for all), hovered together.

    Example: `lines([1, 2, 3], {"train": [3, 2, 1], "val": [3, 2.5, 2]}, "loss")` draws two curves.
    """
    fig = curves({name: (x, ys) for name, ys in series.items()}, title, x_title, y_title, log_x)
    fig.update_layout(hovermode="x unified", yaxis_type="log" if log_y else None)
    return fig


def curves(series: Mapping[str, tuple[Sequence, Sequence]], title: str, x_title: str = "", y_title: str = "",
           log_x: bool = False) -> go.Figure:
    """Several named curves, each with its own x values: `{"name": (xs, ys)}`.

    Example: `curves({"small": ([1, 2], [3, 2]), "big": ([1, 2, 4], [3, 1.5, 1])}, "loss")` draws two curves.
    """
    fig = go.Figure()
    for name, (xs, ys) in series.items():
        fig.add_scatter(x=list(xs), y=list(ys), mode="lines+markers", name=name, hovertemplate="%{y:,.3~f}")
    # Full trace names in hover labels (Plotly cuts them at 15 characters by default).
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=420, hoverlabel_namelength=-1,
                      xaxis_type="log" if log_x else None)
    measured = sorted({x for xs, _ in series.values() for x in xs})
    if log_x and len(measured) <= 12:  # a log axis's own ticks (1, 2, 5, 10) miss most measured points
        fig.update_xaxes(tickvals=measured, ticktext=[f"{x:g}" for x in measured])
    return fig


def dots_and_intervals(points: Mapping[str, Sequence[float]], intervals: Mapping[str, tuple[float, float]],
                       title: str, y_title: str = "") -> go.Figure:
    """Every measurement as a dot, with each group's interval as a bar around its mean: the spread in view,
    on an axis that shows all of it. Example: `dots_and_intervals({"a": [1.0, 1.2, 1.1]}, {"a": (0.9, 1.3)}, "loss")`.
    """
    fig = go.Figure()
    for name, values in points.items():
        low, high = intervals[name]
        mean = sum(values) / len(values)
        fig.add_scatter(x=[name], y=[mean], mode="markers", marker=dict(symbol="line-ew-open", size=24),
                        error_y=dict(type="data", symmetric=False, array=[high - mean], arrayminus=[mean - low]),
                        name=name, hovertemplate=f"{name}: mean %{{y:.3f}}, interval {low:.3f} to {high:.3f}<extra></extra>")
        fig.add_scatter(x=[name] * len(values), y=list(values), mode="markers", marker=dict(color="black", size=7),
                        showlegend=False, hovertemplate=f"{name}: %{{y:.3f}}<extra></extra>")
    fig.update_layout(title=title, yaxis_title=y_title, showlegend=False, height=450)
    return fig


def bars(names: Sequence[str], values: Sequence[float], title: str, y_title: str = "",
         text_format: str = "{:.3g}") -> go.Figure:
    """A bar per name, labelled with its value in `text_format`.

    Example: `bars(["a", "b"], [1.0, 2.5], "speed")` labels its bars "1" and "2.5".
    """
    fig = go.Figure(go.Bar(x=list(names), y=list(values), text=[text_format.format(v) for v in values],
                           textposition="outside", hovertemplate="%{x}: %{y:.4g}<extra></extra>"))
    fig.update_layout(title=title, yaxis_title=y_title, height=420)
    return fig


def matrix_selector(matrices: Mapping[str, object], x_labels: Sequence[str], y_labels: Sequence[str], title: str,
                    x_title: str = "", y_title: str = "", colorbar_title: str = "", hover: str = "%{z:.3f}",
                    zmin: float | None = None) -> go.Figure:
    """Several matrices on shared axes, one shown at a time, chosen from a menu.

    All share one colour range (from `zmin`, or the smallest value of any, to the largest), so
    a colour means the same number whichever matrix is shown.
    Example: `matrix_selector({"x": np.eye(2), "y": np.ones((2, 2))}, "ab", "ab", "m")` shows "x" first.
    """
    names = list(matrices)
    values = np.concatenate([np.asarray(m, dtype=float).ravel() for m in matrices.values()])
    values = values[np.isfinite(values)]
    low = zmin if zmin is not None else (float(values.min()) if values.size else None)
    high = float(values.max()) if values.size else None
    fig = go.Figure()
    for i, name in enumerate(names):
        fig.add_trace(go.Heatmap(z=matrices[name], x=list(x_labels), y=list(y_labels), colorscale="Viridis",
                                 zmin=low, zmax=high, visible=i == 0, colorbar=dict(title=colorbar_title),
                                 hovertemplate=hover + "<extra></extra>"))
    buttons = [dict(label=name, method="update", args=[{"visible": [j == i for j in range(len(names))]}])
               for i, name in enumerate(names)]
    axis = dict(type="category", dtick=1, tickfont=dict(size=9))
    fig.update_layout(title=title, height=700, xaxis=dict(axis, title=x_title),
                      yaxis=dict(axis, title=y_title, autorange="reversed"),
                      updatemenus=[dict(buttons=buttons, direction="down", x=1.0, xanchor="right", y=1.12,
                                        yanchor="top", showactive=True)])
    return fig


def attention_explorer(maps, labels: Sequence[str], title: str = "Attention weights") -> go.Figure:
    """Attention maps (n_layer, n_head, T, T) with a selector over layers and heads.

    Row i shows how much the token at position i (a query) takes from each earlier token (keys).
    Example: `attention_explorer(torch.rand(2, 4, 3, 3), "abc")` offers 8 maps, "layer 1, head 1" first.
    """
    n_layer, n_head = maps.shape[:2]
    labels = [f"{i}:{char_label(c)}" for i, c in enumerate(labels)]  # positions keep repeated characters apart
    matrices = {f"layer {layer + 1}, head {head + 1}": maps[layer, head]
                for layer in range(n_layer) for head in range(n_head)}
    return matrix_selector(matrices, labels, labels, title, x_title="key (attended to)",
                           y_title="query (attending)", colorbar_title="weight",
                           hover="query %{y} ← key %{x}: %{z:.3f}", zmin=0)
