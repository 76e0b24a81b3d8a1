"""The learning-rate schedule as a figure: linear warmup, then cosine decay to a floor."""

from __future__ import annotations

import plotly.graph_objects as go

from ..train.loop import TrainConfig


def schedule_figure(config: TrainConfig, title: str = "Learning rate against step") -> go.Figure:
    """`config.lr_at(step)` for every step of the run, with the warmup shaded and the floor (`min_lr`) marked.

    Example: `schedule_figure(NANOGPT_SCHEDULE)` draws nanoGPT's shakespeare-char schedule.
    """
    steps = list(range(config.max_iters + 1))
    fig = go.Figure(go.Scatter(x=steps, y=[config.lr_at(s) for s in steps], mode="lines", name="learning rate",
                               hovertemplate="step %{x}: %{y:.3e}<extra></extra>"))
    if config.warmup_iters:
        fig.add_vrect(x0=0, x1=config.warmup_iters, fillcolor="orange", opacity=0.2, line_width=0)
        fig.add_annotation(x=config.warmup_iters, y=config.learning_rate, text=f"end of warmup: step {config.warmup_iters}",
                           ax=70, ay=40, xanchor="left")
    if config.decay_lr:
        min_lr = config.learning_rate / 10 if config.min_lr is None else config.min_lr
        fig.add_hline(y=min_lr, line_dash="dot", line_color="grey",
                      annotation_text=f"cosine decay to min_lr = {min_lr:g}", annotation_position="top right")
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="learning rate", height=380,
                      xaxis=dict(range=[0, config.max_iters]), yaxis=dict(rangemode="tozero"), showlegend=False)
    return fig
