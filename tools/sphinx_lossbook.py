"""Sphinx extension of the lossbook site: each chapter's MyST source in its download menu.

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
    # After sphinx-book-theme builds its header buttons (priority 501).
    app.connect("html-page-context", add_markdown_download, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
