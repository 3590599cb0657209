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
    assert "agree with torch.nn.functional, scikit-learn and equation (1)" in page  # a printed output
    assert "data:image/png;base64" in page or (html / "_images").exists()  # a figure


def test_equation_numbers_are_typeset(html):
    """MathJax refuses \\tag inside the split environment Sphinx wraps multi-line $$ math in."""
    for page in html.rglob("*.html"):
        for block in re.findall(r'<div class="math[^"]*"[^>]*>(.*?)</div>', page.read_text(), re.S):
            assert not ("\\begin{split}" in block and "\\tag" in block), f"{page.name}: {block[:120]}"


def repository() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]


def chapter_pages() -> list[str]:
    """Toc entries that are chapters: a .md source paired with the .ipynb the page is built from."""
    return [name for name in toc_files() if (ROOT / f"{name}.ipynb").exists()]


def test_launch_buttons_only_for_a_configured_repository(html):
    """With a repository in _config.yml each chapter links Colab and Binder to its own .ipynb
    there; without one no page links Colab, Binder or a repository (no dead links)."""
    url, branch = repository()["url"], repository()["branch"]
    for name in chapter_pages():
        page = (html / f"{name}.html").read_text()
        notebook = f"{name}.ipynb"
        if url:
            org_repo = url.removeprefix("https://github.com/")
            assert f'href="https://colab.research.google.com/github/{org_repo}/blob/{branch}/{notebook}"' in page, name
            assert f'href="https://mybinder.org/v2/gh/{org_repo}/{branch}?urlpath=lab/tree/{notebook}"' in page, name
        else:
            for dead in ("colab.research.google.com", "mybinder.org", 'href="https://github.com/'):
                assert dead not in page, (name, dead)


def test_buttons_follow_the_configured_repository():
    """The Sphinx extension keeps the theme's buttons for a configured repository only."""
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("sphinx_lossbook", ROOT / "tools" / "sphinx_lossbook.py")
    extension = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extension)
    buttons = {"use_repository_button": False, "launch_buttons": {"colab_url": "https://colab.research.google.com"}}
    empty = SimpleNamespace(html_theme_options={"repository_url": "", **buttons})
    extension.hide_buttons_without_a_repository(None, empty)
    assert empty.html_theme_options["launch_buttons"] == {} and not empty.html_theme_options["use_repository_button"]
    known = SimpleNamespace(html_theme_options={"repository_url": "https://github.com/org/book", **buttons})
    extension.hide_buttons_without_a_repository(None, known)
    assert known.html_theme_options["launch_buttons"] and known.html_theme_options["use_repository_button"]


def test_chapters_offer_their_notebook_and_markdown_source(html):
    for name in chapter_pages():
        page = (html / f"{name}.html").read_text()
        depth = "../" * name.count("/")
        for suffix in (".ipynb", ".md"):
            assert f'href="{depth}_sources/{name}{suffix}"' in page, (name, suffix)
        assert (html / "_sources" / f"{name}.md").read_bytes() == (ROOT / f"{name}.md").read_bytes()
        assert (html / "_sources" / f"{name}.ipynb").read_bytes() == (ROOT / f"{name}.ipynb").read_bytes()


def test_chapter_summaries_link_the_api_reference(html):
    """Every public function or class a chapter defines, and its nn module, links to its API
    entry: losses and metrics as ``lossbook.<name>``, modules as ``lossbook.nn.<Name>``,
    helpers under their chapter's module (``lossbook.conventions.anatomy.<name>``)."""
    import importlib
    import inspect

    import lossbook
    import lossbook.nn

    api = (html / "book" / "api.html").read_text()
    for name in chapter_pages():
        part, chapter = name.split("/")[1:]
        if not (ROOT / "lossbook" / part / f"{chapter}.py").exists():
            continue  # a chapter without export cells defines nothing
        module = importlib.import_module(f"lossbook.{part}.{chapter}")
        page = (html / f"{name}.html").read_text()
        for public in module.__all__:
            obj = getattr(module, public)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if public in lossbook.__all__:
                target = f"lossbook.{public}"
            elif public in lossbook.nn.__all__:
                target = f"lossbook.nn.{public}"
            else:
                target = f"lossbook.{part}.{chapter}.{public}"
            assert f'href="../api.html#{target}"' in page, (name, public)
            assert f'id="{target}"' in api, target
            if hasattr(obj, "nn_module_name"):
                assert f'href="../api.html#lossbook.nn.{obj.nn_module_name}"' in page, (name, obj.nn_module_name)
