"""The built book in a real headless Chromium: pages load without script errors, math is
typeset, images load, internal links resolve, search works.

One browser visits every page once (the `visits` fixture); each test then reports its check
for all pages at once. Chromium is Debian's (`/usr/bin/chromium`), driven by Playwright with
no `playwright install`. Screenshots are written to `_build/browser/`.
"""

import functools
import html.parser
import http.server
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "_build" / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
# Pages that are checked on their own: the search page needs a query (test_search_finds_focal_loss).
SPECIAL = {"search.html"}
DESKTOP, PHONE = {"width": 1400, "height": 900}, {"width": 390, "height": 844}
SCREENSHOT_PAGES = {"book/intro.html": "intro.png", "book/regression/huber.html": "huber.png"}
TIMEOUT_MS = 30_000

# Third-party messages that are not the book's fault, matched exactly (anything else fails):
KNOWN_ERRORS = {
    # sphinx-thebe 0.3.1 (pulled in by Jupyter Book 1.x) writes its inline config script,
    # `const THEBE_JS_URL = ...; const thebe_selector = ...`, twice into every page's <head>;
    # the second copy throws. Harmless: thebe (live code) is not enabled and the first copy
    # already defined the same values.
    "pageerror: Identifier 'THEBE_JS_URL' has already been declared",
    # pydata-sphinx-theme 0.17 logs this on a reader's first page, when localStorage has no
    # colour mode yet; it then falls back to "auto" (the default) and stores it.
    "console: Got invalid theme mode: . Resetting to auto.",
}

# Resolves once MathJax has typeset the page (MathJax loads asynchronously: poll for startup).
WAIT_FOR_MATHJAX = """async () => {
    for (let i = 0; i < 300 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++)
        await new Promise(resolve => setTimeout(resolve, 50));
    if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) return false;
    await MathJax.startup.promise;
    return true;
}"""

# Make every image load now (lazy ones too), then report those that did not.
BROKEN_IMAGES = """async () => {
    const images = Array.from(document.images);
    images.forEach(img => { img.loading = "eager"; });
    await Promise.all(images.map(img => img.decode().catch(() => null)));
    return images.filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.getAttribute("src"));
}"""

# Display equations that a reader cannot see whole: a glyph left of the text column's box
# (no scrollbar reaches there), or right of it where neither the column nor the equation
# scrolls. Measured on the rendered glyphs, not on MathJax's boxes, which a theme can offset.
CLIPPED_EQUATIONS = """() => Array.from(document.querySelectorAll('mjx-container[display="true"]')).map(c => {
    const column = c.closest('div.math') || c.parentElement;
    const box = column.getBoundingClientRect();
    const glyphs = Array.from(c.querySelectorAll('mjx-c'), g => g.getBoundingClientRect()).filter(r => r.width > 0);
    if (!glyphs.length) return null;
    const left = Math.min(...glyphs.map(r => r.left)), right = Math.max(...glyphs.map(r => r.right));
    const scrolls = [column, c].some(e => e.scrollWidth > e.clientWidth
                                          && ['auto', 'scroll'].includes(getComputedStyle(e).overflowX));
    const cut = Math.max(box.left - left, scrolls ? 0 : right - box.right);
    return cut > 2 ? `${c.textContent.slice(0, 40)} (${Math.round(cut)} px)` : null;
}).filter(Boolean).slice(0, 5)"""

# A numbered figure is drawn at the width of the text column (conventions/experiments'
# figure()), so the page shows it at its own size: shrunk much below it, its tick labels
# and legends become unreadable. Checked at the desktop width (a phone must shrink).
SHRUNK_FIGURES = """() => Array.from(document.querySelectorAll('figure img'))
    .filter(img => img.naturalWidth > 0 && img.getBoundingClientRect().width < 0.85 * img.naturalWidth)
    .map(img => `${img.closest('figure').id}: shown at ${Math.round(img.getBoundingClientRect().width)} px of ${img.naturalWidth}`)"""

# The visible text, code excluded (docstrings in code cells legitimately show TeX).
MATH_STATE = """() => {
    const hide = document.createElement("style");
    hide.textContent = "pre, code { display: none !important; }";
    document.head.appendChild(hide);
    const text = document.body.innerText;
    hide.remove();
    return {
        math: document.querySelectorAll(".math").length,
        typeset: document.querySelectorAll("mjx-container").length,
        errors: Array.from(document.querySelectorAll("mjx-merror"), e => e.textContent).slice(0, 5),
        clipped: (""" + CLIPPED_EQUATIONS + """)(),
        text: text,
    };
}"""


@dataclass
class Visit:
    status: int | None = None
    errors: list[str] = field(default_factory=list)
    math: int = 0
    typeset: int = 0
    mathjax: bool = False
    mathjax_started: bool = False
    math_errors: list[str] = field(default_factory=list)
    raw_math: list[str] = field(default_factory=list)
    clipped_math: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    shrunk_figures: list[str] = field(default_factory=list)
    links: set[str] = field(default_factory=set)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def server(html):
    handler = functools.partial(QuietHandler, directory=str(html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if executable is None:
        pytest.fail("Chromium is not installed (expected `chromium` on PATH or /usr/bin/chromium): "
                    "apt-get install chromium (.ci/run does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def listen(page, record, server: str) -> None:
    """Record every console error, uncaught exception and failed request, bar KNOWN_ERRORS."""
    # The book declares no favicon; Chromium asks for /favicon.ico on its own on the first page.
    favicon = f"console: Failed to load resource: the server responded with a status of 404 (File not found) ({server}favicon.ico)"

    def keep(error: str) -> None:
        if error not in KNOWN_ERRORS and error != favicon:
            record(error)

    def console(message) -> None:
        if message.type == "error":
            url = message.location.get("url")
            keep(f"console: {message.text}" + (f" ({url})" if url and message.text.startswith("Failed to load") else ""))

    page.on("console", console)
    page.on("pageerror", lambda error: keep(f"pageerror: {error}"))
    page.on("requestfailed", lambda request: keep(f"request failed: {request.url} ({request.failure})"))


def pages_of(html: Path) -> list[str]:
    return sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                  if not p.relative_to(html).parts[0].startswith("_"))


@pytest.fixture(scope="module")
def visits(html, server, browser) -> dict[str, Visit]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    current: list[Visit] = []
    listen(page, lambda error: current[-1].errors.append(error), server)
    results = {}
    for name in pages_of(html):
        if name in SPECIAL:
            continue
        visit = Visit()
        current.append(visit)
        results[name] = visit
        response = page.goto(server + name, wait_until="load")
        visit.status = response.status if response else None
        if name == "index.html":  # a meta refresh to the intro: let it happen, check the target too
            page.wait_for_url("**/book/intro.html")
            page.wait_for_load_state("load")
        visit.mathjax = page.evaluate("() => !!document.querySelector('script[src*=\"mathjax\"]')")
        if page.evaluate("() => document.querySelectorAll('.math').length") and visit.mathjax:
            visit.mathjax_started = page.evaluate(WAIT_FOR_MATHJAX)
        state = page.evaluate(MATH_STATE)
        visit.math, visit.typeset, visit.math_errors = state["math"], state["typeset"], state["errors"]
        visit.clipped_math = state["clipped"]
        visit.raw_math = [token for token in ("$$", "\\(", "\\[", "\\begin{") if token in state["text"]]
        visit.broken_images = page.evaluate(BROKEN_IMAGES)
        visit.shrunk_figures = page.evaluate(SHRUNK_FIGURES)
        visit.links = set(page.evaluate("() => Array.from(document.querySelectorAll('a[href]'), a => a.href)"))
        if name in SCREENSHOT_PAGES:
            page.screenshot(path=str(SCREENSHOTS / SCREENSHOT_PAGES[name]), full_page=True)
    context.close()
    return results


def report(failures: list[str]) -> str:
    return f"{len(failures)} problem(s):\n" + "\n".join(failures)


def test_every_page_loads_without_script_errors(visits):
    assert "book/regression/huber.html" in visits and len(visits) >= 20
    failures = [f"{name}: HTTP {visit.status}" for name, visit in visits.items() if visit.status != 200]
    failures += [f"{name}: {error}" for name, visit in visits.items() for error in visit.errors]
    assert not failures, report(failures)


def test_math_is_typeset(visits):
    with_math = [name for name, visit in visits.items() if visit.math]
    assert len(with_math) >= 15, with_math  # the chapters are full of math
    failures = []
    for name in with_math:
        visit = visits[name]
        if not visit.mathjax:
            failures.append(f"{name}: has math but does not load MathJax")
        elif not visit.mathjax_started:
            failures.append(f"{name}: MathJax did not start within 15 s")
        if visit.typeset == 0:
            failures.append(f"{name}: {visit.math} math elements, no mjx-container")
        if visit.math_errors:
            failures.append(f"{name}: MathJax errors {visit.math_errors}")
        if visit.clipped_math:
            failures.append(f"{name}: display equations cut off at {DESKTOP['width']} px {visit.clipped_math}")
    for name, visit in visits.items():
        if visit.raw_math:
            failures.append(f"{name}: raw TeX delimiters in the visible text: {visit.raw_math}")
    assert not failures, report(failures)


def test_every_image_loads(visits):
    assert sum(1 for visit in visits.values() if visit.broken_images is not None) == len(visits)
    failures = [f"{name}: {src}" for name, visit in visits.items() for src in visit.broken_images]
    assert not failures, report(failures)


def test_figures_are_shown_at_their_own_size(visits):
    assert any(visit.shrunk_figures is not None for visit in visits.values())
    failures = [f"{name}: {figure}" for name, visit in visits.items() for figure in visit.shrunk_figures]
    assert not failures, report(failures)


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key == "id" or (key == "name" and tag == "a"):
                self.ids.add(value)


def test_internal_links_resolve(visits, server):
    targets: dict[str, set[str]] = {}  # page URL -> the fragments linked on it
    sources: dict[str, str] = {}  # link (URL or URL#fragment) -> a page that has it
    for name, visit in sorted(visits.items()):
        for link in visit.links:
            if not link.startswith(server):
                continue
            url, _, fragment = link.partition("#")
            targets.setdefault(url, set())
            sources.setdefault(url, name)
            if fragment:
                targets[url].add(urllib.parse.unquote(fragment))
                sources.setdefault(f"{url}#{urllib.parse.unquote(fragment)}", name)
    assert len(targets) >= 20, sorted(targets)
    failures = []
    for url, fragments in sorted(targets.items()):
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                status, body, kind = response.status, response.read(), response.headers.get_content_type()
        except urllib.error.HTTPError as error:
            status, body, kind = error.code, b"", ""
        if status != 200:
            failures.append(f"{url[len(server):]} (linked from {sources[url]}): HTTP {status}")
            continue
        if fragments and kind == "text/html":
            parser = _Ids()
            parser.feed(body.decode("utf-8", "replace"))
            for fragment in sorted(fragments - parser.ids):
                failures.append(f"{url[len(server):]}#{fragment} (linked from {sources[f'{url}#{fragment}']}): no such id")
    assert not failures, report(failures)


def test_search_finds_focal_loss(server, browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors = []
    listen(page, errors.append, server)
    response = page.goto(server + "search.html?q=focal", wait_until="load")
    assert response and response.status == 200
    page.wait_for_selector("#search-results a[href*='book/classification/focal.html']")
    hrefs = page.evaluate("() => Array.from(document.querySelectorAll('#search-results a[href]'), a => a.getAttribute('href'))")
    context.close()
    assert any(href.split("?")[0].split("#")[0] == "book/classification/focal.html" for href in hrefs), hrefs
    assert not errors, report(errors)


def test_screenshots_are_written(visits):
    for file in SCREENSHOT_PAGES.values():
        assert (SCREENSHOTS / file).stat().st_size > 10_000, file


def test_no_equation_is_cut_off_on_a_phone(html, server, browser):
    """At a phone's width every display equation starts inside the text column and the
    rest of it is a sideways scroll away (the desktop width is checked in test_math_is_typeset)."""
    context = browser.new_context(viewport=PHONE, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    failures = []
    for name in pages_of(html):
        if name in SPECIAL or name == "index.html":  # index.html only redirects to the intro
            continue
        page.goto(server + name, wait_until="load")
        if not page.evaluate("() => document.querySelectorAll('.math').length") or not page.evaluate(WAIT_FOR_MATHJAX):
            continue
        clipped = page.evaluate(CLIPPED_EQUATIONS)
        if clipped:
            failures.append(f"{name}: display equations cut off at {PHONE['width']} px {clipped}")
    page.screenshot(path=str(SCREENSHOTS / "phone-last-page.png"))
    context.close()
    assert not failures, report(failures)
