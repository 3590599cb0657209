"""Sphinx extension of the lossbook site: launch buttons only for a known repository, and
each chapter's MyST source in its download menu.

The launch buttons (Colab, Binder) and the repository button link to the repository named
by ``repository.url`` in ``_config.yml``. While that is empty they are left out, instead of
pointing at a repository that does not exist.

A chapter's page is built from its ``.ipynb`` (which holds the outputs), so the theme's
download menu offers that notebook and a PDF. The chapter's source is the ``.md`` beside
it (a jupytext MyST notebook, the file authors edit and ``make lab`` opens): this copies
it next to the notebook under ``_sources/`` and adds it to the menu.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx

MENU_LABEL = "download-buttons"  # sphinx-book-theme's download dropdown


def hide_buttons_without_a_repository(app: Sphinx, config) -> None:
    """No launch or repository button when no repository is configured (they would be dead links)."""
    options = config.html_theme_options
    if str(options.get("repository_url") or "").strip():
        options["use_repository_button"] = True  # _config.yml cannot ask for it without a URL
    else:
        options["repository_url"] = ""
        options["use_repository_button"] = False
        options["use_issues_button"] = False
        options["use_edit_page_button"] = False
        options["launch_buttons"] = {}


def add_markdown_download(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    if pagename not in app.env.all_docs:
        return
    source = Path(app.env.doc2path(pagename))
    markdown = source.with_suffix(".md")
    if source.suffix != ".ipynb" or not markdown.exists():
        return
    copy = Path(app.outdir, "_sources", pagename).with_suffix(".md")
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(markdown, copy)
    for button in context.get("header_buttons", []):
        if button.get("label") == MENU_LABEL:
            button["buttons"].insert(1, {
                "type": "link",
                "url": f"{context['pathto']('_sources', 1)}/{pagename}.md",
                "text": ".md",
                "tooltip": "Download the chapter's source (MyST Markdown notebook, opens in Jupyter with jupytext)",
                "icon": "fas fa-file-lines",
                "label": "download-myst-button",
            })


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", hide_buttons_without_a_repository)
    # After sphinx-book-theme builds its header buttons (priority 501).
    app.connect("html-page-context", add_markdown_download, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
