"""The chapter contract (DESIGN section 3) where a machine can check it, on every chapter.

Every chapter ends with exercises and their worked solutions; every figure is drawn by a
cell whose code is hidden, with a numbered caption and alt text; and the sources carry no
markup accidents (control characters, a prose line that Markdown turns into a list).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import export  # noqa: E402

CHAPTERS = export.chapters()
chapters = pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.relative_to(export.BOOK).with_suffix("").as_posix())
LIST_MARKER = re.compile(r"^\s{0,3}([-+*]|\d{1,2}[.)])\s")
FENCE = re.compile(r"^\s*(`{3,}|:{3,}|~{3,})")


def cells(source: Path):
    return jupytext.read(source).cells


@chapters
def test_no_control_characters(source):
    """Control characters are LaTeX eaten by Python strings (\\r in \\rho, \\t in \\tag)."""
    bad = [
        f"line {number}: {line!r}"
        for number, line in enumerate(source.read_text().split("\n"), 1)
        if re.search(r"[\x00-\x08\x0b-\x1f\x7f]", line)
    ]
    assert not bad, "\n".join(bad)


TAGGED_SPLIT = re.compile(r"^\$\$\n(.*?)\n\$\$", re.S | re.M)


@chapters
def test_no_numbered_multiline_dollar_math(source):
    """Sphinx wraps a `$$` block holding `\\\\` in a split environment, where MathJax refuses
    `\\tag` (the page then shows an error): write such an equation as
    `\\begin{equation*} ... \\tag{n} \\end{equation*}`. Static, so it fails before the book build."""
    bad = [block[:80] for block in TAGGED_SPLIT.findall(source.read_text()) if "\\\\" in block and "\\tag" in block]
    assert not bad, bad


def accidental_lists(text: str) -> list[str]:
    """Prose lines that start a list in the middle of a paragraph (Markdown makes them list items)."""
    found, fenced, math, previous, in_list = [], None, False, "", False
    for number, line in enumerate(text.split("\n"), 1):
        fence = FENCE.match(line)
        if fenced:
            if fence and fence.group(1)[0] == fenced[0] and len(fence.group(1)) >= len(fenced):
                fenced = None
            previous = ""
            continue
        if fence:
            fenced, previous = fence.group(1), ""
            continue
        if line.strip() == "$$":
            math, previous = not math, ""
            continue
        if math:
            continue
        if not line.strip():
            previous = ""
            continue
        if LIST_MARKER.match(line):
            prose = previous and not previous.lstrip().startswith(("|", "#", ">", "<!--", "(", ":")) and not in_list
            if prose:
                found.append(f"line {number}: {line.strip()[:70]!r} after {previous.strip()[-40:]!r}")
            in_list = True
        elif not previous:  # a new paragraph: lists end unless it is an indented continuation
            in_list = in_list and line.startswith(("  ", "\t"))
        previous = line
    return found


@chapters
def test_no_prose_line_turns_into_a_list(source):
    text = "\n\n".join(cell.source for cell in cells(source) if cell.cell_type == "markdown")
    assert not accidental_lists(text), "\n".join(accidental_lists(text))


def test_the_list_check_catches_the_known_accidents():
    assert accidental_lists("which makes the bound\n- \\dots$ hold, and\n") != []
    assert accidental_lists("is used by Faster R-CNN\n1) and by its ports\n") != []
    assert accidental_lists("A list:\n\n- one\n- two\n  continued\n- three\n") == []
    assert accidental_lists("```python\nx = 1\n- 2\n```\n") == []


@chapters
def test_figures_are_hidden_numbered_captioned_and_described(source):
    """Every cell whose stored output holds an image (the run readers see)."""
    notebook = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    problems = []
    for index, cell in enumerate(notebook.cells):
        images = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        if cell.cell_type != "code" or not images:
            continue
        where = f"cell {index} ({cell.source.strip().splitlines()[0][:50]!r})"
        tags = cell.metadata.get("tags", [])
        if not {"hide-input", "hide-cell", "remove-input"} & set(tags):
            problems.append(f"{where}: plotting code is not hidden (tag hide-input)")
        figure = cell.metadata.get("mystnb", {}).get("figure", {})
        image = cell.metadata.get("mystnb", {}).get("image", {})
        if not figure.get("name") or len(str(figure.get("caption", "")).split()) < 8:
            problems.append(f"{where}: no figure name or no caption saying what to look at (mystnb.figure)")
        if len(str(image.get("alt", "")).split()) < 8:
            problems.append(f"{where}: no alt text describing the figure (mystnb.image.alt)")
        if len(images) > 1:
            problems.append(f"{where}: draws {len(images)} figures; one cell, one numbered figure")
    assert not problems, "\n".join(problems)


@chapters
def test_chapter_ends_with_exercises_and_solutions(source):
    text = "\n".join(cell.source for cell in cells(source) if cell.cell_type == "markdown")
    assert "\n## Exercises" in "\n" + text, "no '## Exercises' section"
    exercises = text[text.index("## Exercises"):]
    questions = exercises.split("{dropdown}")[0]
    numbered = re.findall(r"^\d+\. ", questions, re.M)
    assert 4 <= len(numbered) <= 8, f"{len(numbered)} exercises; the contract asks for 4 to 8"
    assert re.search(r"`{3,4}\{dropdown\} Solutions", exercises), "no collapsed 'Solutions' dropdown"
