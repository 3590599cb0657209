"""A chapter's .md and its stored .ipynb are twins, not a jupytext pair: nothing rewrites one from the other.

Paired through jupytext (``formats: ipynb,md:myst``), ``jupytext --sync`` copied the newer
file's cells into the older one: after ``make sync`` that put the notebook's hidden Colab
setup cell into the .md (and the next ``make sync`` added a second one), and a save in
``make lab`` rewrote the stored notebook without it. These tests run jupytext 1.19 on
temporary copies of a chapter (the files under book/ are only read).
"""

import os
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.cli import jupytext as jupytext_cli

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import notebooks  # noqa: E402

CHAPTER = ROOT / "book" / "regression" / "huber.md"
OLD_PAIRING = "  formats: ipynb,md:myst\n"


def unpaired(text: str) -> str:
    """The chapter's text with the header the chapters have once unpaired (no ``formats:`` line)."""
    return re.sub(r"(?m)^  formats: .*\n", "", text, count=1)


def paired(text: str) -> str:
    """The chapter's text with the old header, which paired it with its .ipynb."""
    return unpaired(text).replace("jupytext:\n", "jupytext:\n" + OLD_PAIRING, 1)


def store(source: Path, *, pairing: str | None = None) -> Path:
    """Write the stored notebook of ``source`` as ``make sync`` does, with made-up outputs
    instead of a kernel run; ``pairing`` writes the old (paired) metadata instead."""
    notebook = notebooks.stored_notebook(source)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for count, cell in enumerate(code, start=1):
        cell.execution_count = count
        cell.outputs = [nbformat.v4.new_output("stream", text=f"output {count}\n")]
    if pairing is None:
        notebooks.write_stored(notebook, source)
    else:
        notebook.metadata.setdefault("jupytext", {})["formats"] = pairing
        jupytext.write(notebook, notebooks.twin(source), fmt="ipynb")
    return notebooks.twin(source)


def make_newer(path: Path) -> None:
    later = max(p.stat().st_mtime for p in path.parent.iterdir()) + 10
    os.utime(path, (later, later))


def contents(*paths: Path) -> list[bytes]:
    return [path.read_bytes() for path in paths]


def setup_cells(path: Path) -> int:
    return sum(map(notebooks.is_setup, jupytext.read(path).cells))


@pytest.fixture
def twins(tmp_path) -> tuple[Path, Path]:
    """A chapter (unpaired header) and its stored notebook, as ``make sync`` leaves them."""
    source = tmp_path / CHAPTER.name
    source.write_text(unpaired(CHAPTER.read_text()))
    notebook = store(source)
    assert notebooks.check_chapter(source) == []
    return source, notebook


def test_the_stored_notebook_is_plain_and_starts_with_the_hidden_setup_cell(twins):
    source, notebook = twins
    stored = nbformat.read(notebook, 4)
    assert notebooks.pairing(stored) is None
    first = stored.cells[0]
    assert first.cell_type == "code" and first.metadata.tags == ["remove-cell", "lossbook-setup"]
    assert 'importlib.util.find_spec("lossbook") is None' in first.source
    assert setup_cells(notebook) == 1 and setup_cells(source) == 0


@pytest.mark.parametrize("newer", ["md", "ipynb"])
@pytest.mark.parametrize("synced", ["md", "ipynb"])
def test_jupytext_sync_rewrites_neither_file(twins, synced, newer, capsys):
    """``jupytext --sync`` on either twin, whichever is newer, finds no pair and writes nothing."""
    source, notebook = twins
    make_newer(notebook if newer == "ipynb" else source)
    before = contents(source, notebook)
    assert jupytext_cli(["--sync", str(notebook if synced == "ipynb" else source)]) in (None, 0)
    assert "is not a paired notebook" in capsys.readouterr().err
    assert contents(source, notebook) == before
    assert notebooks.check_chapter(source) == []


def test_make_sync_after_jupytext_sync_keeps_one_setup_cell(twins):
    source, notebook = twins
    for _ in range(2):
        jupytext_cli(["--sync", str(notebook)])
        jupytext_cli(["--sync", str(source)])
        store(source)
    assert setup_cells(source) == 0 and setup_cells(notebook) == 1
    assert notebooks.check_chapter(source) == []


def test_lab_saves_the_md_alone_and_the_ipynb_alone(twins):
    """``make lab``'s contents manager: a saved .md never rewrites the stored notebook, and the
    other way round; the .md opens without the setup cell and saves without it."""
    from jupytext import TextFileContentsManager

    source, notebook = twins
    make_newer(notebook)  # as after `make sync`
    manager = TextFileContentsManager(root_dir=str(source.parent))

    model = manager.get(source.name)
    assert not any(map(notebooks.is_setup, model["content"].cells))
    model["content"].cells[-1].source += "\n# edited in JupyterLab"
    stored = contents(notebook)
    manager.save(model, source.name)
    assert contents(notebook) == stored
    assert "# edited in JupyterLab" in source.read_text()
    assert setup_cells(source) == 0 and notebooks.pairing(jupytext.read(source)) is None

    model = manager.get(notebook.name)
    model["content"].cells[-1].source += "\n# edited in the stored notebook"
    text = contents(source)
    manager.save(model, notebook.name)
    assert contents(source) == text
    assert notebooks.is_setup(nbformat.read(notebook, 4).cells[0])
    # Editing the stored notebook by hand is drift that the check reports.
    assert notebooks.check_chapter(source) == [f"{source}: its .ipynb holds other cells (run `make sync`)"]


def test_old_and_new_headers_give_the_same_stored_notebook(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old, new = tmp_path / "old" / CHAPTER.name, tmp_path / "new" / CHAPTER.name
    old.write_text(paired(CHAPTER.read_text()))
    new.write_text(unpaired(CHAPTER.read_text()))
    assert notebooks.pairing(jupytext.read(old)) == "ipynb,md:myst"
    assert notebooks.pairing(jupytext.read(new)) is None
    assert notebooks.stored_notebook(old) == notebooks.stored_notebook(new)
    assert notebooks.pairing(notebooks.stored_notebook(old)) is None
    store(old)
    assert notebooks.check_chapter(old) == [
        f"{old}: its header pairs it with the notebook (`formats: ipynb,md:myst` under `jupytext:`), "
        "so `jupytext --sync` and `make lab` would rewrite one from the other: delete that line"
    ]


def test_the_old_pairing_corrupted_the_md_and_the_check_says_so(tmp_path):
    """Why the pairing went: with the old header and metadata, ``jupytext --sync`` after
    ``make sync`` copies the setup cell into the .md. The check names every cause, and
    ``make sync`` refuses such a .md instead of adding a second setup cell."""
    source = tmp_path / CHAPTER.name
    source.write_text(paired(CHAPTER.read_text()))
    notebook = store(source, pairing="ipynb,md:myst")
    make_newer(notebook)
    jupytext_cli(["--sync", str(notebook)])
    assert setup_cells(source) == 1
    problems = notebooks.check_chapter(source)
    assert any("its header pairs it with the notebook" in p for p in problems)
    assert f"{source}: holds the notebook's setup cell (tag lossbook-setup): delete that cell" in problems
    assert f"{notebook}: paired through its metadata (`jupytext.formats`) (run `make sync`)" in problems
    with pytest.raises(ValueError, match="holds the notebook's setup cell"):
        notebooks.stored_notebook(source)


def test_a_paired_stored_notebook_is_refused(twins):
    source, notebook = twins
    stored = nbformat.read(notebook, 4)
    stored.metadata["jupytext"] = {"formats": "ipynb,md:myst"}
    with pytest.raises(ValueError, match="must not be paired"):
        notebooks.write_stored(stored, source)
    nbformat.write(stored, notebook)
    assert notebooks.check_chapter(source) == [
        f"{notebook}: paired through its metadata (`jupytext.formats`) (run `make sync`)"
    ]
