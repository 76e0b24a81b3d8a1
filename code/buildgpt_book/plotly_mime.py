"""Render Plotly's JSON output (`application/vnd.plotly.v1+json`) as an interactive div.

Plotly in a Jupyter kernel emits only this mime type, which myst-nb would drop. This
renderer is registered through the `myst_nb.mime_renderers` entry point (pyproject.toml).
"""

from __future__ import annotations

import json

from docutils import nodes

PLOTLY_MIME = "application/vnd.plotly.v1+json"
DIV_CLASS = "buildgpt-plotly"


class PlotlyMimeRenderer:
    # HTML builders prefer our mime type over the text/plain fallback.
    mime_priority_overrides = [("html", PLOTLY_MIME, 5), ("dirhtml", PLOTLY_MIME, 5)]

    @staticmethod
    def handle_mime(renderer, data, inline):
        if data.mime_type != PLOTLY_MIME or inline:
            return None
        import plotly.io as pio

        figure = pio.from_json(json.dumps(data.content), skip_invalid=True)
        html = pio.to_html(figure, include_plotlyjs=False, full_html=False,
                           config={"responsive": True, "displaylogo": False})
        return [nodes.raw("", f'<div class="{DIV_CLASS}">{html}</div>', format="html")]
