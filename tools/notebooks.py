"""Keep every chapter's ``.ipynb`` twin in step with its ``.md`` source.

    python tools/notebooks.py execute [CHAPTER.md ...]  # run chapters, store outputs in .ipynb
    python tools/notebooks.py check                     # exit 1 if a twin's cells differ from its .md

The ``.md`` is what authors edit; the ``.ipynb`` holds the outputs of one execution,
which nbval re-checks and Jupyter Book publishes. ``check`` compares the cells (type,
source and tags) of both, so an edit to a chapter that was not re-executed fails CI.

The ``.ipynb`` also starts with one cell the ``.md`` does not have: the launch buttons
open the notebook in Colab, where lossbook is not installed, so this cell installs it
from the repository named in ``_config.yml`` when (and only when) it is missing. The
page hides it (``remove-cell``).
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
    """The first cell of every stored notebook: installs lossbook where it is missing."""
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    requirement = f"lossbook @ git+{repository['url']}@{repository['branch']}"
    source = "\n".join([
        "# Colab (or any kernel without lossbook): install it from the book's repository.",
        "import importlib.util",
        "",
        'if importlib.util.find_spec("lossbook") is None:',
        f'    get_ipython().run_line_magic("pip", "install --quiet \'{requirement}\'")',
    ])
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["remove-cell", SETUP_TAG]})
    cell.id = "setup"
    return cell


def without_setup(cells: list) -> list:
    return [cell for cell in cells if SETUP_TAG not in cell.metadata.get("tags", [])]


def twin(source: Path) -> Path:
    return source.with_suffix(".ipynb")


def cell_signature(cells) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(cell.cell_type, cell.source.strip("\n"), tuple(cell.metadata.get("tags", []))) for cell in cells]


def execute(source: Path) -> float:
    """Run one chapter top to bottom on the CPU and write its twin; returns seconds."""
    notebook = jupytext.read(source)
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index}"  # stable ids: re-executing changes only what changed
    notebook.cells.insert(0, setup_cell())
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
    jupytext.write(notebook, twin(source), fmt="ipynb")
    return seconds


def check() -> list[str]:
    problems = []
    sources = chapters()
    for source in sources:
        notebook = twin(source)
        name = source.relative_to(ROOT)
        if not notebook.exists():
            problems.append(f"{name}: no paired .ipynb (run `make sync`)")
            continue
        stored = nbformat.read(notebook, 4).cells
        if cell_signature(jupytext.read(source).cells) != cell_signature(without_setup(stored)):
            problems.append(f"{name}: its .ipynb holds other cells (run `make sync`)")
        elif cell_signature(stored[:1]) != cell_signature([setup_cell()]):
            problems.append(f"{name}: its .ipynb does not start with the current setup cell (run `make sync`)")
        elif any(
            cell.cell_type == "code" and cell.source.strip() and cell.execution_count is None
            for cell in nbformat.read(notebook, 4).cells
        ):
            problems.append(f"{name}: its .ipynb was not executed (run `make sync`)")
    for notebook in sorted(BOOK.glob("*/*.ipynb")):
        if notebook.with_suffix(".md") not in sources:
            problems.append(f"{notebook.relative_to(ROOT)}: no .md chapter for this notebook")
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
