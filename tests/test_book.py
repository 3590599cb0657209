"""The book builds with warnings as errors, and the HTML needs no network."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


# The `html` fixture (the book built once per run) is in conftest.py.


def test_every_toc_entry_has_a_page(html):
    for name in toc_files():
        assert (html / f"{name}.html").exists(), name


def test_no_asset_is_loaded_from_the_network(html):
    remote = re.compile(r"<(script|img|iframe)[^>]*\bsrc=\"(https?:)?//|<link[^>]*\bhref=\"(https?:)?//[^\"]*\"[^>]*\brel=\"(stylesheet|preload)", re.I)
    remote_after = re.compile(r"<link[^>]*\brel=\"(stylesheet|preload)\"[^>]*\bhref=\"(https?:)?//", re.I)
    for page in html.rglob("*.html"):
        text = page.read_text()
        assert not remote.search(text) and not remote_after.search(text), f"{page.name} loads a remote asset"


def test_mathjax_is_served_locally(html):
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
    page = (html / "book" / "regression" / "l1_l2.html").read_text()
    assert re.search(r'<script[^>]*src="(\.\./)*_static/mathjax/tex-chtml\.js', page)


def test_chapters_show_their_stored_outputs(html):
    page = (html / "book" / "regression" / "l1_l2.html").read_text()
    assert "agree with torch.nn.functional and scikit-learn" in page  # a printed output
    assert "data:image/png;base64" in page or (html / "_images").exists()  # a figure


def test_equation_numbers_are_typeset(html):
    """MathJax refuses \\tag inside the split environment Sphinx wraps multi-line $$ math in."""
    for page in html.rglob("*.html"):
        for block in re.findall(r'<div class="math[^"]*"[^>]*>(.*?)</div>', page.read_text(), re.S):
            assert not ("\\begin{split}" in block and "\\tag" in block), f"{page.name}: {block[:120]}"
