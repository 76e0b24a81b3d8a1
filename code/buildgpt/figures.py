"""The book's interactive figures (Plotly): loss curves, heatmaps, bar charts.

Each function returns a `plotly.graph_objects.Figure`: in Jupyter it is an ordinary
interactive figure; in the HTML book the `buildgpt_book` extension renders it offline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from .training import History

_SPECIAL = {"\n": "\\n", " ": "␣", "\t": "\\t"}


def char_label(c: str) -> str:
    """A visible label for a character: newline, space and tab would be invisible on an axis."""
    return _SPECIAL.get(c, c)


def loss_curves(runs: History | Mapping[str, History], title: str = "Loss during training") -> go.Figure:
    """Train (dashed) and val (solid) loss against step, for one run or several overlaid."""
    runs = {"": runs} if isinstance(runs, History) else runs
    fig = go.Figure()
    for name, history in runs.items():
        prefix = f"{name} " if name else ""
        fig.add_scatter(x=history.steps, y=history.train, mode="lines+markers", name=f"{prefix}train",
                        line=dict(dash="dash"))
        fig.add_scatter(x=history.steps, y=history.val, mode="lines+markers", name=f"{prefix}val")
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="cross-entropy loss (nats)",
                      hovermode="x unified", height=420)
    return fig


def char_frequencies(text: str, title: str = "How often each character occurs") -> go.Figure:
    counts = Counter(text).most_common()
    fig = go.Figure(go.Bar(x=[char_label(c) for c, _ in counts], y=[n for _, n in counts],
                           hovertemplate="%{x}: %{y:,} times<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="character", yaxis_title="count", height=380,
                      xaxis=dict(type="category"))
    return fig


def heatmap(matrix, x_labels: Sequence[str], y_labels: Sequence[str], title: str,
            x_title: str = "", y_title: str = "", colorbar_title: str = "",
            hover: str = "%{y} → %{x}: %{z:.3f}") -> go.Figure:
    """A matrix as a heatmap with labelled axes, first row at the top."""
    fig = go.Figure(go.Heatmap(z=matrix, x=list(x_labels), y=list(y_labels), colorscale="Viridis",
                               colorbar=dict(title=colorbar_title),
                               hovertemplate=hover + "<extra></extra>"))
    axis = dict(type="category", dtick=1, tickfont=dict(size=9))  # every label, however many
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=650,
                      xaxis=dict(axis, tickangle=0), yaxis=dict(axis, autorange="reversed"))
    return fig
