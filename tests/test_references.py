"""book/references.bib: every entry is complete for its type, and the book cites exactly what the file holds.

The .bib file is read with a small parser written here (no bibtex library), which
understands what this file uses: ``@type{key, field = {braced value} | "quoted" | bare,}``
with nested braces inside values.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIB = ROOT / "book" / "references.bib"
BOOK = ROOT / "book"

# The fields each entry type needs. A tuple inside the list means "one of these". A paper
# in proceedings that the venue publishes without page numbers (CVF open access, for
# instance) is located by its eprint or url instead.
REQUIRED = {
    "article": ["author", "title", "journal", "year", "volume", "pages"],
    "inproceedings": ["author", "title", "booktitle", "year", ("pages", "eprint", "url")],
    "book": [("author", "editor"), "title", "publisher", "year"],
    "misc": [("author", "howpublished"), "title", "year", ("url", "eprint")],
}


class BibError(ValueError):
    """The .bib file is not in the form this parser reads."""


def _closing(text: str, j: int, quoted: bool) -> int:
    """Index of the ``}`` (braced value) or ``"`` (quoted value) that closes a value whose
    content starts at ``j``, skipping nested braces and backslash escapes; -1 if none."""
    depth = 0 if quoted else 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if not quoted and depth == 0:
                return j
        elif text[j] == '"' and quoted and depth == 0:
            return j
        j += 1
    return -1


def _read_value(text: str, i: int) -> tuple[str, int]:
    """The field value starting at text[i] (braced, quoted or bare) and the index after it."""
    if text[i] in '{"':
        quoted = text[i] == '"'
        close = _closing(text, i + 1, quoted)
        if close < 0:
            raise BibError(f"{'unterminated quoted' if quoted else 'unbalanced braces in'} value at offset {i}")
        return text[i + 1 : close], close + 1
    m = re.compile(r"[A-Za-z0-9_.:+-]+").match(text, i)
    if not m:
        raise BibError(f"cannot read a value at offset {i}: {text[i:i + 30]!r}")
    return m.group(0), m.end()


def parse_bib(text: str) -> list[dict]:
    """Entries as dicts with 'type', 'key', 'fields' (lower-cased names), in file order."""
    entries = []
    i = 0
    head = re.compile(r"@\s*([A-Za-z]+)\s*\{\s*([^,\s]+)\s*,")
    field = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*")
    while True:
        at = text.find("@", i)
        if at < 0:
            return entries
        if text[i:at].strip():
            raise BibError(f"text outside an entry before offset {at}: {text[i:at].strip()[:40]!r}")
        m = head.match(text, at)
        if not m:
            raise BibError(f"cannot read the entry head at offset {at}: {text[at:at + 40]!r}")
        kind, key = m.group(1).lower(), m.group(2)
        fields: dict[str, str] = {}
        j = m.end()
        while True:
            while j < len(text) and text[j].isspace():
                j += 1
            if j < len(text) and text[j] == "}":
                j += 1
                break
            fm = field.match(text, j)
            if not fm:
                raise BibError(f"{key}: cannot read a field at offset {j}: {text[j:j + 40]!r}")
            name = fm.group(1).lower()
            if name in fields:
                raise BibError(f"{key}: field {name!r} given twice")
            value, j = _read_value(text, fm.end())
            fields[name] = " ".join(value.split())
            while j < len(text) and text[j].isspace():
                j += 1
            if j < len(text) and text[j] == ",":
                j += 1
            elif j < len(text) and text[j] == "}":
                continue
            else:
                raise BibError(f"{key}: expected ',' or '}}' after field {name!r} at offset {j}")
        entries.append({"type": kind, "key": key, "fields": fields})
        i = j


CITE = re.compile(r"\{cite(?::[A-Za-z]+)?\}`([^`]*)`")


def cited_keys() -> dict[str, list[str]]:
    """Every key cited by a {cite} role (any {cite:x} variant) in book/**/*.md, with where it is cited."""
    where: dict[str, list[str]] = {}
    for path in sorted(BOOK.rglob("*.md")):
        if any(part.startswith((".", "_")) for part in path.relative_to(BOOK).parts):
            continue
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in CITE.finditer(line):
                for key in m.group(1).split(","):
                    key = key.strip()
                    if key:
                        where.setdefault(key, []).append(f"{path.relative_to(ROOT)}:{lineno}")
    return where


@pytest.fixture(scope="module")
def entries() -> list[dict]:
    return parse_bib(BIB.read_text(encoding="utf-8"))


def test_parser_reads_nested_braces_and_quotes():
    text = """
    @article{a1,
      author = {M{\\"u}ller, Rafael and Doll{\\'a}r, Piotr},
      title  = "A {Q}uoted {T}itle",
      year   = 2019,
      pages  = {1--2}
    }
    @misc{b2, title = {x}}
    """
    got = parse_bib(text)
    assert [e["key"] for e in got] == ["a1", "b2"]
    assert got[0]["fields"]["author"] == 'M{\\"u}ller, Rafael and Doll{\\\'a}r, Piotr'
    assert got[0]["fields"]["title"] == "A {Q}uoted {T}itle"
    assert got[0]["fields"]["year"] == "2019"
    with pytest.raises(BibError):
        parse_bib("@article{broken, title = {unbalanced}")


def test_cite_pattern_reads_every_role_form():
    line = "a {cite}`x` b {cite:p}`y, z` c {cite:t}`w`"
    assert [k.strip() for m in CITE.finditer(line) for k in m.group(1).split(",")] == ["x", "y", "z", "w"]


def test_the_file_parses_and_has_entries(entries):
    assert len(entries) >= 30


def test_keys_are_unique(entries):
    seen, dupes = set(), []
    for e in entries:
        key = e["key"].lower()  # BibTeX keys are case-insensitive
        if key in seen:
            dupes.append(e["key"])
        seen.add(key)
    assert not dupes, f"duplicate keys: {dupes}"


def test_every_entry_has_the_fields_its_type_needs(entries):
    problems = []
    for e in entries:
        needed = REQUIRED.get(e["type"])
        if needed is None:
            problems.append(f"{e['key']}: entry type @{e['type']} is not one this book uses {sorted(REQUIRED)}")
            continue
        for want in needed:
            names = want if isinstance(want, tuple) else (want,)
            if not any(e["fields"].get(n, "").strip() for n in names):
                problems.append(f"{e['key']} (@{e['type']}): missing {' or '.join(names)}")
    assert not problems, "\n".join(problems)


FIELD_FORMS = {
    "year": (r"\d{4}", True, "a year is four digits"),
    "doi": (r"10\.\d{4,9}/\S+", False, "write DOIs as '10.xxxx/...', without https://doi.org/"),
}


@pytest.mark.parametrize("field", sorted(FIELD_FORMS))
def test_fields_have_their_form(entries, field):
    pattern, required, rule = FIELD_FORMS[field]
    bad = [
        f"{e['key']}: {e['fields'].get(field)!r}"
        for e in entries
        if (required or field in e["fields"]) and not re.fullmatch(pattern, e["fields"].get(field, ""))
    ]
    assert not bad, f"{rule}: {bad}"


def test_page_ranges_use_double_dash_and_run_forward(entries):
    problems = []
    for e in entries:
        pages = e["fields"].get("pages")
        if pages is None:
            continue
        if re.fullmatch(r"\d+", pages):
            continue  # a single page
        m = re.fullmatch(r"(\d+)--(\d+)", pages)
        if not m:
            problems.append(f"{e['key']}: pages {pages!r} is not 'first--last'")
        elif int(m.group(1)) > int(m.group(2)):
            problems.append(f"{e['key']}: pages {pages!r} run backwards")
    assert not problems, "\n".join(problems)


def test_every_cited_key_is_in_the_bib(entries):
    keys = {e["key"] for e in entries}
    missing = {k: v for k, v in cited_keys().items() if k not in keys}
    lines = [f"{k}: {', '.join(v)}" for k, v in sorted(missing.items())]
    assert not missing, "cited but not in book/references.bib:\n" + "\n".join(lines)


def test_every_entry_is_cited(entries):
    cited = cited_keys()
    assert cited, "no {cite} role found in book/**/*.md: the pattern or the path is wrong"
    unused = [e["key"] for e in entries if e["key"] not in cited]
    assert not unused, f"in book/references.bib but cited nowhere in book/**/*.md: {unused}"
