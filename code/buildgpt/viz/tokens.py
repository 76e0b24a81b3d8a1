"""Figures for the tokenizer chapter: text coloured by token, compression, the order of merges.

`tokens_html` returns HTML with inline styles only (no external resources), for
`IPython.display.HTML`; the other functions return Plotly figures, which the HTML book renders
offline like every other figure.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from ..tokenizers.base import Tokenizer, render_token
from ..tokenizers.textbook import Pair

# Light backgrounds in turn, so neighbouring tokens always differ.
_PALETTE = ("#fde2a7", "#bfe3f5", "#d3f0c2", "#f6cadc", "#ddd3f7", "#f8cfae", "#c2ece4")


def token_pieces(tokenizer, text: str) -> list[tuple[int, bytes]]:
    """(id, bytes) of each token of `text`, for one of our tokenizers or a tiktoken encoding.

    Example: `token_pieces(BasicTokenizer(), "hi")` is `[(104, b"h"), (105, b"i")]`.
    """
    ids = tokenizer.encode(text, allowed_special="all")
    if isinstance(tokenizer, Tokenizer):
        return [(i, tokenizer.vocab[i]) for i in ids]
    return [(i, tokenizer.decode_single_token_bytes(i)) for i in ids]


def _token_span(i: int, token: bytes, colour: str) -> str:
    # A token that holds only part of a character shows U+FFFD, which is what it is on its own.
    text = token.decode("utf-8", errors="replace").replace("\n", "↵\n").replace("\t", "→")
    hover = f"id {i}: {render_token(token)!r} ({len(token)} bytes: {token.hex(' ')})"
    return (f'<span title="{html.escape(hover)}" style="background:{colour};border-radius:3px;'
            f'padding:1px 0;margin-right:1px">{html.escape(text)}</span>')


def tokens_html(rows: Mapping[str, Sequence[tuple[int, bytes]]], title: str = "") -> str:
    """One block per tokenizer: its tokens as coloured boxes (hover for the id and the bytes).

    Example: `tokens_html({"bytes": token_pieces(BasicTokenizer(), "hi")})` shows "bytes · 2 tokens", two boxes.
    """
    blocks = [f'<div style="font:600 0.95em sans-serif;margin-top:0.8em">{html.escape(title)}</div>'] if title else []
    for name, pieces in rows.items():
        spans = "".join(_token_span(i, token, _PALETTE[k % len(_PALETTE)]) for k, (i, token) in enumerate(pieces))
        blocks.append(
            f'<div style="margin:0.4em 0"><div style="font:600 0.8em sans-serif;color:#555">'
            f'{html.escape(name)} · {len(pieces)} token{"" if len(pieces) == 1 else "s"}</div>'
            f'<div style="font-family:monospace;white-space:pre-wrap;line-height:1.9;color:#222">{spans}</div></div>')
    return '<div class="token-colours">' + "".join(blocks) + "</div>"


def bytes_per_token_bars(table: Mapping[str, Mapping[str, float]],
                         title: str = "Bytes per token: higher is better compression") -> go.Figure:
    """Grouped bars: for each tokenizer (one colour) the bytes per token on each passage.

    Example: `bytes_per_token_bars({"bytes": {"en": 1.0, "fr": 1.0}, "GPT-4": {"en": 4.3, "fr": 3.1}})`.
    """
    fig = go.Figure()
    for tokenizer, per_passage in table.items():
        fig.add_bar(name=tokenizer, x=list(per_passage), y=list(per_passage.values()),
                    hovertemplate=f"{tokenizer}<br>%{{x}}: %{{y:.2f}} bytes per token<extra></extra>")
    fig.update_layout(title=title, barmode="group", xaxis_title="passage", yaxis_title="UTF-8 bytes per token",
                      height=420)
    return fig


def compression_curve(vocab_sizes: Sequence[int], curves: Mapping[str, Sequence[float]],
                      references: Mapping[str, tuple[int, float]] | None = None,
                      title: str = "Compression against vocabulary size") -> go.Figure:
    """Bytes per token against vocabulary size (log scale), one line per evaluation text; the
    `references` (name -> (vocab size, bytes per token)) are single markers, e.g. GPT-4.
    Example: `compression_curve([512, 1024], {"novels": [2.9, 3.3]}, {"GPT-4": (100277, 4.2)})`: a line, a marker.
    """
    fig = go.Figure()
    for name, values in curves.items():
        fig.add_scatter(x=list(vocab_sizes), y=list(values), mode="lines+markers", name=name,
                        hovertemplate=f"{name}<br>%{{x:,}} tokens: %{{y:.2f}} bytes per token<extra></extra>")
    for name, (size, value) in (references or {}).items():
        fig.add_scatter(x=[size], y=[value], mode="markers+text", name=name, text=[name],
                        textposition="top center", marker=dict(size=11, symbol="diamond"),
                        hovertemplate=f"{name}<br>%{{x:,}} tokens: %{{y:.2f}} bytes per token<extra></extra>")
    ticks = sorted({*vocab_sizes, *(size for size, _ in (references or {}).values())})
    fig.update_layout(title=title, xaxis=dict(type="log", title="vocabulary size (tokens)", tickvals=ticks,
                                              ticktext=[f"{size:,}" for size in ticks]),
                      yaxis_title="UTF-8 bytes per token", height=440)
    return fig


def merge_order(learned: Sequence[tuple[Pair, int]], vocab: Mapping[int, bytes], max_points: int = 1500,
                title: str = "The order of merges") -> go.Figure:
    """Each merge in the order learned (log scale): how often its pair occurred then (log scale),
    coloured by the length of the new token; hover to read the token. Of many merges, a sample
    spread evenly on the log axis is shown: every early merge, fewer and fewer later ones.
    Example: `merge_order(train_fast(["aaabdaaabac"], 3), vocab)`, `vocab` of those merges, plots the counts 4, 2, 2.
    """
    n = len(learned)
    shown = range(n) if n <= max_points else sorted({round(n ** (k / max_points)) - 1 for k in range(max_points + 1)})
    ids = [256 + i for i in shown]
    fig = go.Figure(go.Scatter(
        x=[i + 1 for i in shown], y=[learned[i][1] for i in shown], mode="markers",
        marker=dict(size=6, color=[len(vocab[i]) for i in ids], colorscale="Viridis", cmin=1, cmax=12,
                    showscale=True, colorbar=dict(title="bytes")),
        customdata=[[i, render_token(vocab[i]), render_token(vocab[a]), render_token(vocab[b])]
                    for i, ((a, b), _) in zip(ids, (learned[k] for k in shown))],
        hovertemplate="merge %{x:,}, token %{customdata[0]}: [%{customdata[1]}] = [%{customdata[2]}] + "
                      "[%{customdata[3]}]<br>pair seen %{y:,} times<extra></extra>"))
    fig.update_layout(title=title, xaxis=dict(type="log", title="merge number (in the order learned)"),
                      yaxis=dict(type="log", title="count of the pair when merged"), height=440)
    return fig
