"""Progress bars: widgets in Jupyter when ipywidgets is installed, text bars otherwise.

Without ipywidgets, tqdm.auto warns on import and falls back to text bars, which is fine
(the book's HTML drops stderr); the warning itself is silenced here, once.
"""

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

__all__ = ["tqdm"]
