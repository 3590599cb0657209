"""Keep every chapter's ``.ipynb`` twin in step with its ``.md`` source.

    python tools/notebooks.py execute [CHAPTER.md ...]  # run chapters, store outputs in .ipynb
    python tools/notebooks.py check                     # exit 1 if a twin's cells differ from its .md

The ``.md`` is what authors edit; the ``.ipynb`` holds the outputs of one execution,
which nbval re-checks and Jupyter Book publishes. ``check`` compares the cells (type,
source and tags) of both, so an edit to a chapter that was not re-executed fails CI.

The ``.ipynb`` also starts with one cell the ``.md`` does not have: the launch buttons
open the notebook in Colab, where lossbook is not installed, so this cell installs it
from the repository named in ``_config.yml`` when (and only when) it is missing (while
``_config.yml`` names none, it says how to install it). The
page hides it (``remove-cell``).

The two files are twins, not a jupytext pair: neither the ``.md`` header nor the stored
notebook's metadata names the other format (``jupytext.formats``). Paired, ``jupytext
--sync`` (and a save in ``make lab``, whose contents manager writes every paired file)
would copy the newer file's cells into the older one: the setup cell into the ``.md``, or
the ``.md``'s cells, without the setup cell, into the stored notebook. Unpaired, each
file is written by one hand only: the ``.md`` by its author, the ``.ipynb`` by
``execute``. ``check`` refuses a pairing in either file and a setup cell in a ``.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import yaml
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export import BOOK, ROOT, chapters  # noqa: E402

TIMEOUT_PER_CELL = 300
SETUP_TAG = "lossbook-setup"


def setup_cell() -> nbformat.NotebookNode:
    """The first cell of every stored notebook: installs lossbook where it is missing, from
    the repository ``_config.yml`` names (or says how to, while it names none)."""
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    if repository.get("url"):
        install = [
            "# Colab (or any kernel without lossbook): install it from the book's repository.",
            "import importlib.util",
            "",
            'if importlib.util.find_spec("lossbook") is None:',
            f'    get_ipython().run_line_magic("pip", "install --quiet \'lossbook @ git+{repository["url"]}@{repository["branch"]}\'")',
        ]
    else:
        install = [
            "# A kernel without lossbook: install it from a checkout of the book (pip install .).",
            "import importlib.util",
            "",
            'if importlib.util.find_spec("lossbook") is None:',
            '    print("lossbook is not installed: run `pip install .` in a checkout of the book\'s repository")',
        ]
    cell = nbformat.v4.new_code_cell("\n".join(install), metadata={"tags": ["remove-cell", SETUP_TAG]})
    cell.id = "setup"
    return cell


def is_setup(cell) -> bool:
    return SETUP_TAG in cell.metadata.get("tags", [])


def without_setup(cells: list) -> list:
    return [cell for cell in cells if not is_setup(cell)]


def twin(source: Path) -> Path:
    return source.with_suffix(".ipynb")


def pairing(notebook: nbformat.NotebookNode) -> str | None:
    """The jupytext pairing a notebook (or a ``.md``'s header) declares, e.g. ``ipynb,md:myst``."""
    return notebook.metadata.get("jupytext", {}).get("formats")


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def stored_notebook(source: Path) -> nbformat.NotebookNode:
    """The notebook ``execute`` runs and stores for ``source``: the chapter's cells with
    stable ids, after the setup cell, without any jupytext pairing (old ``.md`` headers
    still carry ``formats: ipynb,md:myst``; the stored notebook never does)."""
    notebook = jupytext.read(source)
    if any(is_setup(cell) for cell in notebook.cells):
        raise ValueError(f"{shown(source)} holds the notebook's setup cell (tag {SETUP_TAG}): delete it from the .md")
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index}"  # stable ids: re-executing changes only what changed
    notebook.cells.insert(0, setup_cell())
    metadata = notebook.metadata.get("jupytext", {})
    metadata.pop("formats", None)
    if not metadata:
        notebook.metadata.pop("jupytext", None)
    return notebook


def cell_signature(cells) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(cell.cell_type, cell.source.strip("\n"), tuple(cell.metadata.get("tags", []))) for cell in cells]


def execute(source: Path) -> float:
    """Run one chapter top to bottom on the CPU and write its twin; returns seconds."""
    notebook = stored_notebook(source)
    client = NotebookClient(
        notebook,
        timeout=TIMEOUT_PER_CELL,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(source.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    write_stored(notebook, source)
    return seconds


def write_stored(notebook: nbformat.NotebookNode, source: Path) -> None:
    """Write the stored notebook of ``source`` (a plain ``.ipynb``: no jupytext pairing)."""
    if pairing(notebook):
        raise ValueError(f"the stored notebook of {shown(source)} must not be paired: {pairing(notebook)}")
    jupytext.write(notebook, twin(source), fmt="ipynb")


def check_chapter(source: Path) -> list[str]:
    """What is wrong with one chapter and its stored notebook (nothing: ``[]``)."""
    notebook = twin(source)
    if not notebook.exists():
        return [f"{shown(source)}: no .ipynb (run `make sync`)"]
    chapter = jupytext.read(source)
    stored = nbformat.read(notebook, 4)
    problems = []
    if pairing(chapter):
        problems.append(
            f"{shown(source)}: its header pairs it with the notebook (`formats: {pairing(chapter)}` under "
            "`jupytext:`), so `jupytext --sync` and `make lab` would rewrite one from the other: delete that line"
        )
    if any(is_setup(cell) for cell in chapter.cells):
        problems.append(f"{shown(source)}: holds the notebook's setup cell (tag {SETUP_TAG}): delete that cell")
    if pairing(stored):
        problems.append(f"{shown(notebook)}: paired through its metadata (`jupytext.formats`) (run `make sync`)")
    if cell_signature(without_setup(chapter.cells)) != cell_signature(without_setup(stored.cells)):
        problems.append(f"{shown(source)}: its .ipynb holds other cells (run `make sync`)")
    elif cell_signature(stored.cells[:1]) != cell_signature([setup_cell()]) or sum(map(is_setup, stored.cells)) != 1:
        problems.append(f"{shown(source)}: its .ipynb does not start with the current setup cell (run `make sync`)")
    elif any(cell.cell_type == "code" and cell.source.strip() and cell.execution_count is None for cell in stored.cells):
        problems.append(f"{shown(source)}: its .ipynb was not executed (run `make sync`)")
    return problems


def check() -> list[str]:
    problems = []
    sources = chapters()
    for source in sources:
        problems += check_chapter(source)
    for notebook in sorted(BOOK.glob("*/*.ipynb")):
        if notebook.with_suffix(".md") not in sources:
            problems.append(f"{shown(notebook)}: no .md chapter for this notebook")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("execute", help="execute chapters and store their outputs")
    run.add_argument("chapters", nargs="*", type=Path)
    sub.add_parser("check", help="check every .ipynb against its .md")
    args = parser.parse_args(argv)

    if args.command == "check":
        problems = check()
        print("\n".join(problems) or f"{len(chapters())} chapters in step with their notebooks")
        return 1 if problems else 0
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # stored outputs come from a CPU run
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the same digits whatever the core count
    for source in [p.resolve() for p in args.chapters] or chapters():
        seconds = execute(source)
        print(f"executed {source.relative_to(ROOT)} in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
