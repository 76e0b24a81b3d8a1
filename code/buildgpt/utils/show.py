"""Show the package's real source in the book, so prose and code can never drift apart."""

from __future__ import annotations

import inspect


def source(obj) -> str:
    """The source code of a function, class or module, exactly as the package has it."""
    return inspect.getsource(obj)


def show_source(obj):
    """Display `obj`'s source as highlighted Python, in the HTML book and in Jupyter alike."""
    from IPython.display import Markdown

    return Markdown(f"```python\n{source(obj).rstrip()}\n```")
