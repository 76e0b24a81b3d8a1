"""Show the package's real source in the book, captioned with where it lives, so prose and code never drift."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # code/buildgpt


def source(obj) -> str:
    """The source code of a function, class or module, exactly as the package has it.

    Example: `source(location).splitlines()[0]` is "def location(obj) -> str:".
    """
    return inspect.getsource(_defining(obj))


def _defining(obj):
    """The function behind a property (its getter) or a cached_property: what inspect can read."""
    if isinstance(obj, property):
        return obj.fget
    return obj.func if isinstance(obj, functools.cached_property) else obj


def location(obj) -> str:
    """Where `obj` is defined, as the repository shows it: `buildgpt/nn/attention.py:12-30`.

    Example: `location(show_source)` gives "buildgpt/utils/show.py:<first>-<last>".
    """
    obj = _defining(obj)
    file = Path(inspect.getsourcefile(inspect.unwrap(obj))).resolve()
    lines, first = inspect.getsourcelines(obj)
    first = max(first, 1)  # a module starts at line 0 for inspect
    try:
        shown = file.relative_to(PACKAGE_ROOT.parent).as_posix()
    except ValueError:  # not part of the package
        shown = file.name
    return f"{shown}:{first}-{first + len(lines) - 1}"


def show_source(obj):
    """Display `obj`'s source as highlighted Python with a file:lines caption, in the book and in Jupyter.

    Example: `show_source(location)` is Markdown captioned "`code/buildgpt/utils/show.py:<first>-<last>`".
    """
    from IPython.display import Markdown

    return Markdown(f"`code/{location(obj)}`\n\n```python\n{source(obj).rstrip()}\n```")
