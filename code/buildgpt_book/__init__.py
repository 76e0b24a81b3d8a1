"""The Sphinx extension the book needs on top of Jupyter Book.

- Plotly offline: copies `plotly.min.js` from the installed plotly package into `_static/`
  and loads it only on pages that hold a figure (the figures themselves are rendered by
  `plotly_mime`). No CDN is ever referenced.
- A download button for each chapter's executed notebook, outputs included.
- No thebe assets (live code is off; its script would name a CDN).
- The cell timeout follows the run profile (`buildgpt.profiles.CELL_TIMEOUT`); pages are light.
- The package as a wheel (`wheel.py`) in `_build/wheel/`, which the intro offers: a downloaded chapter's
  first cell installs it when `buildgpt` is missing.
- `static/buildgpt.css`: code listings and outputs wrap at the column's width instead of scrolling.
- The learner's takeaway, `_build/gpt/gpt.py` and `gpt.ipynb` (`takeaway.py`), which the intro and
  chapter 3 offer for download; the notebook is executed whenever the chapters are.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .plotly_mime import DIV_CLASS

PLOTLY_JS = "plotly.min.js"
STATIC = Path(__file__).parent / "static"
STYLESHEET = "buildgpt.css"


def notebook_chapters(book: Path) -> list[Path]:
    """The pages of `book` (a folder of MyST files) that run as notebooks: those with a jupytext header
    naming a kernel. Plain pages, such as the references, have no code. Example: `notebook_chapters(Path("book"))`."""
    return sorted(page for page in book.glob("*.md") if "kernelspec:" in page.read_text())


def _plotly_js_source() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / PLOTLY_JS


def _configure(app, config):
    from buildgpt.settings.profiles import CELL_TIMEOUT, profile_name

    config.nb_execution_timeout = CELL_TIMEOUT[profile_name()]
    # Plotly's figures are drawn for a light page; an unset mode also logs a JavaScript error.
    config.html_context.setdefault("default_mode", "light")
    config.html_static_path.append(str(STATIC))


def _takeaway(app):
    """Assemble gpt.py and gpt.ipynb where the downloads of the intro and chapter 3 point
    (`/_build/gpt/`, under the source folder), and run the notebook if the book runs its chapters."""
    if not list(Path(app.srcdir).glob("book/03-gpt.*")):
        return  # a book without chapter 3 (the tests' small books) offers no takeaway
    from buildgpt.settings.profiles import CELL_TIMEOUT, profile_name

    from .takeaway import write

    write(Path(app.srcdir) / "_build" / "gpt", execute=app.config.nb_execution_mode != "off",
          timeout=CELL_TIMEOUT[profile_name()])


def _wheel(app):
    """Build the package's wheel where the intro's download points (`/_build/wheel/`)."""
    if not (Path(app.srcdir) / "pyproject.toml").is_file():
        return  # the tests' small books are not the repository
    from .wheel import build_wheel

    folder = Path(app.srcdir) / "_build" / "wheel"
    shutil.rmtree(folder, ignore_errors=True)
    build_wheel(Path(app.srcdir), folder)


def _executed_notebook(app, docname: str) -> Path:
    return Path(app.outdir).parent / "jupyter_execute" / f"{docname}.ipynb"


def _drop_thebe(app, pagename, templatename, context, doctree) -> None:
    """Remove sphinx-thebe's assets: launch buttons are off, and its inline script is added twice
    (a JavaScript error) and names a CDN. Jupyter Book always loads the extension."""
    def is_thebe(asset) -> bool:
        body = getattr(asset, "attributes", {}).get("body", "")
        return "thebe" in str(getattr(asset, "filename", asset) or "") or "THEBE_JS_URL" in body

    # In place: Sphinx keeps appending page-specific assets to these very lists.
    for key in ("script_files", "css_files"):
        if key in context:
            context[key][:] = [asset for asset in context[key] if not is_thebe(asset)]


def _page_context(app, pagename, templatename, context, doctree):
    if DIV_CLASS in context.get("body", ""):
        app.add_js_file(PLOTLY_JS, priority=200)
    notebook = _executed_notebook(app, pagename)
    if doctree is not None and notebook.is_file():
        # sphinx-book-theme turns `ipynb_source` into a ".ipynb" entry of the download menu.
        target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(notebook, target)
        context["ipynb_source"] = f"{pagename}.ipynb"


def _copy_plotly_js(app, exception):
    if exception is None and app.builder.format == "html":
        static = Path(app.outdir) / "_static"
        static.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_plotly_js_source(), static / PLOTLY_JS)


def setup(app):
    app.connect("config-inited", _configure)
    app.add_css_file(STYLESHEET)
    app.connect("builder-inited", _takeaway)
    app.connect("builder-inited", _wheel)
    app.connect("html-page-context", _page_context, priority=400)  # before the theme's buttons (501)
    app.connect("html-page-context", _drop_thebe, priority=900)  # after every extension has added its assets
    app.connect("build-finished", _copy_plotly_js)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
