"""Check the built book in a real browser (headless Chromium), fully offline.

What it checks, on the HTML that `make book` wrote to `_build/html` (or to the directory
named by the environment variable BUILDGPT_HTML_DIR):

- every page (every *.html file of the build, and the search page with a query) loads
  with HTTP status 200 and raises no JavaScript error (uncaught exceptions, console errors);
- no page requests anything but our own local server: every other request is aborted and
  reported, so a CDN reference (fonts, Plotly, MathJax, ...) fails the check;
- every Plotly figure renders (its SVG is drawn); on the bigram chapter the figures are
  interactive (modebar, hover labels) and `plotly.min.js` comes from our own `_static/`;
- MathJax is loaded from our own `_static/` and typesets the bigram chapter's math;
- at a 1400 px wide window no code listing or output scrolls sideways (they wrap at the column);
- the ALiBi heads of chapter 4's menu render in different colours (one shared colour range);
- the offline search page finds the bigram chapter;
- each notebook chapter offers its executed `.ipynb` for download, and that file is a valid
  notebook whose code cells carry their outputs (Plotly figures included).

Run it after `make book` with `make check-html`, i.e.

    .venv/bin/python -m pytest -q -m browser tests/test_browser.py

It needs Debian's Chromium at /usr/bin/chromium (Playwright's own browser is not used).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import nbformat
import pytest
from playwright.sync_api import Locator, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
# Running as root needs --no-sandbox; the rest keep Chromium from calling Google's services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
BIGRAM_PAGE = "book/01-bigram.html"
POSITIONS_PAGE = "book/04-positions.html"
ALIBI_TITLE = "ALiBi bias"
VIEWPORT = {"width": 1400, "height": 900}  # a laptop's browser window, as the learner's review read it
SEARCH_PAGE = "search.html?q=bigram"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
RENDER_TIMEOUT_MS = 15_000
IDLE_TIMEOUT_MS = 5_000


# ----------------------------------------------------------------------------- helpers


@dataclass
class Visit:
    """One page opened in its own browser context, and what happened while it was open."""

    page: Page
    status: int | None = None
    errors: list[str] = field(default_factory=list)  # uncaught exceptions, console errors
    blocked: list[str] = field(default_factory=list)  # aborted non-local requests
    responses: dict[str, int] = field(default_factory=dict)  # url -> status


@dataclass
class PageResult:
    """What the page-level tests check, recorded once per page by the `crawl` fixture."""

    status: int | None
    errors: list[str]
    blocked: list[str]
    unrendered: list[str]  # ids of Plotly divs that drew nothing
    sideways: list[str]  # code blocks wider than their box: the start of each one's longest line
    empty_wrappers: int  # .buildgpt-plotly wrappers without a Plotly div
    is_notebook: bool  # the page shows notebook cells


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob") or parts.hostname in LOCAL_HOSTS


@contextlib.contextmanager
def open_page(browser, url: str):
    """Open `url` in a fresh context that aborts (and records) every non-local request."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    visit = Visit(page)

    def route(route):
        if _is_local(route.request.url):
            route.continue_()
        else:
            visit.blocked.append(route.request.url)
            route.abort()

    def console(message):
        if message.type == "error":
            visit.errors.append(f"console: {message.text} ({message.location.get('url', '?')})")

    def response(response):
        visit.responses[response.url] = response.status

    context.route("**/*", route)
    page.on("pageerror", lambda exc: visit.errors.append(f"uncaught: {exc}"))
    page.on("console", console)
    page.on("response", response)
    try:
        main = page.goto(url, wait_until="load")
        visit.status = main.status if main else None
        with contextlib.suppress(PlaywrightTimeoutError):
            page.wait_for_load_state("networkidle", timeout=IDLE_TIMEOUT_MS)
        yield visit
    finally:
        context.close()


def unrendered_figures(page: Page) -> list[str]:
    """Ids of the page's Plotly divs that did not draw their SVG within the timeout."""
    missing = []
    for graph in page.locator(".plotly-graph-div").all():
        try:
            graph.locator("svg.main-svg").first.wait_for(state="attached", timeout=RENDER_TIMEOUT_MS)
        except PlaywrightTimeoutError:
            missing.append(graph.get_attribute("id") or "<no id>")
    return missing


def sideways_blocks(page: Page) -> list[str]:
    """The code blocks (listings and outputs) that scroll sideways: the start of each one's longest line."""
    return page.evaluate("""() => [...document.querySelectorAll("pre")]
        .filter(pre => pre.scrollWidth > pre.clientWidth + 1)
        .map(pre => pre.innerText.split("\\n").reduce((a, b) => (b.length > a.length ? b : a), "").slice(0, 60))""")


def empty_wrappers(page: Page) -> int:
    """How many of our extension's figure wrappers hold no Plotly div."""
    return page.locator(".buildgpt-plotly:not(:has(.plotly-graph-div))").count()


def hover_shows_label(page: Page, graph: Locator) -> bool:
    """Move the mouse to the centre of the figure's plot area; does a hover label appear?"""
    area = graph.locator(".nsewdrag").first
    area.scroll_into_view_if_needed()
    box = area.bounding_box() or graph.bounding_box()
    page.mouse.move(0, 0)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    try:  # a label per trace (.hovertext) or, in "x unified" mode, one box (.legend)
        graph.locator(".hoverlayer > *").first.wait_for(state="attached", timeout=3_000)
    except PlaywrightTimeoutError:
        return False
    return True


def served_locally(visit: Visit, base_url: str, path: str) -> bool:
    """Was `path` (relative to the site root) served with status 200 by our own server?"""
    wanted = urljoin(base_url, path)
    return any(url.split("?")[0] == wanted and status == 200 for url, status in visit.responses.items())


def report(problems: dict[str, list[str]]) -> str:
    """Problems grouped by page, for a failure message."""
    return "\n".join(f"{page}:\n  " + "\n  ".join(items) for page, items in problems.items())


# ---------------------------------------------------------------------------- fixtures


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def book_dir() -> Path:
    root = Path(os.environ.get("BUILDGPT_HTML_DIR", REPO / "_build" / "html"))
    if not (root / "index.html").is_file():
        pytest.fail(f"No built book at {root} (index.html missing): run `make book` first.")
    return root


@pytest.fixture(scope="module")
def pages(book_dir) -> list[str]:
    """Every HTML page of the build, as paths relative to the site root."""
    paths = (p.relative_to(book_dir) for p in book_dir.rglob("*.html"))
    # _static/ holds the themes' Jinja macro files, which are not pages.
    return sorted(p.as_posix() for p in paths if p.parts[0] != "_static")


@pytest.fixture(scope="module")
def base_url(book_dir):
    handler = functools.partial(QuietHandler, directory=str(book_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def crawl(browser, base_url, pages) -> dict[str, PageResult]:
    """Open every page once (and the search page with a query) and record what the
    page-level tests check."""
    results = {}
    for path in [*pages, SEARCH_PAGE]:
        with open_page(browser, urljoin(base_url, path)) as visit:
            unrendered = unrendered_figures(visit.page)
            landed = visit.page.url.removeprefix(base_url).split("?")[0]
            label = path if landed == path.split("?")[0] else f"{path} (redirected to {landed})"
            results[label] = PageResult(
                status=visit.status,
                errors=list(visit.errors),
                blocked=list(visit.blocked),
                unrendered=unrendered,
                sideways=sideways_blocks(visit.page),
                empty_wrappers=empty_wrappers(visit.page),
                is_notebook=visit.page.locator("div.cell").count() > 0,
            )
    return results


# ------------------------------------------------------------------------ page checks


def test_pages_found(pages):
    for expected in ("index.html", "search.html", "genindex.html", BIGRAM_PAGE):
        assert expected in pages, f"{expected} missing from the build; pages found: {pages}"


def test_every_page_loads(crawl):
    bad = {page: r.status for page, r in crawl.items() if r.status != 200}
    assert not bad, f"pages not served with status 200: {bad}"


def test_no_javascript_errors(crawl):
    problems = {page: r.errors for page, r in crawl.items() if r.errors}
    assert not problems, "JavaScript errors:\n" + report(problems)


def test_no_external_requests(crawl):
    problems = {page: r.blocked for page, r in crawl.items() if r.blocked}
    assert not problems, "requests to other hosts than the local server (blocked):\n" + report(problems)


def test_every_plotly_figure_renders(crawl):
    problems = {}
    for page, r in crawl.items():
        items = [f"figure #{fig} drew no svg.main-svg" for fig in r.unrendered]
        if r.empty_wrappers:
            items.append(f"{r.empty_wrappers} .buildgpt-plotly wrapper(s) without a .plotly-graph-div")
        if items:
            problems[page] = items
    assert not problems, "Plotly figures not rendered:\n" + report(problems)


def test_no_code_block_scrolls_sideways(crawl):
    problems = {page: [f"scrolls: {line!r}" for line in r.sideways] for page, r in crawl.items() if r.sideways}
    assert not problems, f"code blocks wider than the page at {VIEWPORT['width']} px:\n" + report(problems)


# ----------------------------------------------------------------- bigram chapter checks


def test_bigram_figures_are_interactive(browser, base_url):
    with open_page(browser, urljoin(base_url, BIGRAM_PAGE)) as visit:
        page = visit.page
        assert served_locally(visit, base_url, "_static/plotly.min.js"), (
            f"plotly.min.js not served from our _static/; responses: {sorted(visit.responses)}")
        assert page.evaluate("typeof window.Plotly") == "object", "window.Plotly is not defined"
        graphs = page.locator(".buildgpt-plotly .plotly-graph-div").all()
        assert len(graphs) >= 2, f"expected at least 2 Plotly figures on {BIGRAM_PAGE}, found {len(graphs)}"
        assert not unrendered_figures(page), f"figures on {BIGRAM_PAGE} did not render"
        for graph in graphs:
            assert graph.locator(".modebar").count() > 0, f"figure #{graph.get_attribute('id')} has no modebar"
        assert any(hover_shows_label(page, graph) for graph in graphs), (
            f"hovering over the plot area of each of the {len(graphs)} figures showed no hover label")
        assert not visit.blocked, f"blocked external requests: {visit.blocked}"


def test_math_is_typeset_with_local_mathjax(browser, base_url):
    with open_page(browser, urljoin(base_url, BIGRAM_PAGE)) as visit:
        page = visit.page
        assert page.locator('script[src*="_static/mathjax/tex-chtml.js"]').count() == 1, (
            "the page does not include _static/mathjax/tex-chtml.js")
        assert served_locally(visit, base_url, "_static/mathjax/tex-chtml.js"), (
            "MathJax was not served from our _static/")
        try:
            page.locator("mjx-container").first.wait_for(state="attached", timeout=RENDER_TIMEOUT_MS)
        except PlaywrightTimeoutError:
            raw = page.locator(".math").all_inner_texts()
            pytest.fail(f"MathJax typeset nothing on {BIGRAM_PAGE}; untypeset math: {raw}")
        assert not visit.blocked, f"blocked external requests: {visit.blocked}"


def test_search_finds_bigram_chapter(browser, base_url):
    with open_page(browser, urljoin(base_url, SEARCH_PAGE)) as visit:
        results = visit.page.locator("#search-results li, ul.search li")
        try:
            results.first.wait_for(state="attached", timeout=RENDER_TIMEOUT_MS)
        except PlaywrightTimeoutError:
            pytest.fail("searching for 'bigram' gave no results; errors: "
                        f"{visit.errors}, page text: {visit.page.inner_text('body')[:500]!r}")
        links = results.locator("a").evaluate_all("links => links.map(a => a.href)")
        assert any("01-bigram" in link for link in links), f"no search result links to the bigram chapter: {links}"


def test_alibi_heads_render_differently(browser, base_url):
    """Each entry of the ALiBi figure's menu, applied as its button would, draws a different heatmap."""
    with open_page(browser, urljoin(base_url, POSITIONS_PAGE)) as visit:
        assert not unrendered_figures(visit.page), f"figures on {POSITIONS_PAGE} did not render"
        drawn = visit.page.evaluate("""async (title) => {
            const gd = [...document.querySelectorAll(".plotly-graph-div")]
                .find(g => (g.layout.title.text || "").includes(title));
            if (!gd) return null;
            const images = [];
            for (const button of gd.layout.updatemenus[0].buttons) {
                await Plotly.update(gd, ...button.args);
                const shown = [...gd.querySelectorAll(".hm image")].filter(i => i.getBoundingClientRect().width > 0);
                images.push([button.label, shown.map(i => i.getAttribute("href")).join("|")]);
            }
            return images;
        }""", ALIBI_TITLE)
    assert drawn, f"no figure titled {ALIBI_TITLE!r} with a menu on {POSITIONS_PAGE}"
    pictures = {picture for _, picture in drawn}
    assert "" not in pictures, f"a menu entry drew no heatmap: {[label for label, p in drawn if not p]}"
    assert len(pictures) == len(drawn), f"heads drawn alike: {len(pictures)} pictures for {[label for label, _ in drawn]}"


# -------------------------------------------------------------------- notebook download


def check_notebook(text: str, path: str) -> list[str]:
    """Problems with a downloaded chapter notebook (empty list when it is fine)."""
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except (nbformat.reader.NotJSONError, nbformat.ValidationError) as exc:
        return [f"not a valid notebook: {str(exc)[:500]}"]
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    if not any(cell.outputs for cell in code):
        return [f"none of its {len(code)} code cells has an output"]
    if path == BIGRAM_PAGE:
        outputs = [out for cell in code for out in cell.outputs]
        if not any(PLOTLY_MIME in out.get("data", {}) for out in outputs):
            return [f"no output holds {PLOTLY_MIME} data"]
    return []


def test_notebook_chapters_offer_their_executed_notebook(browser, base_url, crawl):
    chapters = [page for page, r in crawl.items() if page.startswith("book/") and r.is_notebook]
    assert BIGRAM_PAGE in chapters, f"{BIGRAM_PAGE} was not recognised as a notebook page: {chapters}"
    problems = {}
    for path in chapters:
        with open_page(browser, urljoin(base_url, path)) as visit:
            links = visit.page.locator('a[href$=".ipynb"]')
            if links.count() == 0:
                problems[path] = ["no download link ending in .ipynb"]
                continue
            url = links.first.evaluate("a => a.href")
            response = visit.page.request.get(url)
            if response.status != 200:
                problems[path] = [f"{url} answered {response.status}"]
                continue
            if issues := check_notebook(response.text(), path):
                problems[path] = [f"{url}: {issue}" for issue in issues]
    assert not problems, "notebook downloads:\n" + report(problems)
