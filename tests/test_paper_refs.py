"""Every reference to the paper in the book and the library names something the paper has.

The chapters (``notebooks/*.md``), the book's other pages (``book/*.md``) and the library
(``src/teachdiff/**/*.py``, docstrings and comments alike) cite Osuna-Vargas et al. by section,
equation, table and figure. ``tests/data/paper_refs.json`` lists what exists, read from the
paper's text (its ``source`` field says how); this test parses every reference and checks it.

The grammar, kept small on purpose:

- a reference is a KIND followed by a LIST of ITEMs;
- KIND is ``§`` or ``Sec.`` (sections), ``Eq.``/``Eqs.`` (equations), ``Table``/``Tables``,
  ``Fig.``/``Figs.``/``Figure``/``Figures``;
- ITEM is an optional ``S`` (supplement), a number with optional ``.N`` parts (sections only
  have those), and an optional figure-panel suffix (``Fig. 1C``, ``Fig. S2D``, ``Figs. 1C-D``),
  which is ignored;
- ``A–B`` or ``A-B`` (en dash or hyphen) between two undotted ITEMs of the same prefix is a range
  and names every number from A to B (``Eqs. 12–14``, ``Tables S3–S5``, ``Figs. 1A-4A``);
- a singular KIND takes one ITEM or one range; a plural KIND takes a list joined by ``, `` and
  ``and`` (``Eqs. 2, 6 and 7``, ``Tables 2–5, S3–S5``);
- a reference belongs to *another* work, and is not checked, when the words just before it name
  that work: ``Ho et al. 2020, Eq. 7``, ``Song et al.'s Eq. 12``, ``EDM2's Eq. 3`` (a capitalised
  name with ``'s``), or a MyST citation ``{cite:t}`key` Eq. 5``; or when the words just after it
  do: ``Eq. 12 of Song et al.`` / ``in {cite:t}`key```.

Inside the book, chapters and their sections are named in words ("chapter 6", "section 5.3"),
never with ``§``, which is the paper's. The project's internal specification is not part of the
course, so ``SPEC §`` must not appear either.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFS_FILE = ROOT / "tests" / "data" / "paper_refs.json"
PAPER_TEXT = ROOT.parent / "shared" / "seed" / "000_293d4d6f26da84bd.txt"  # the seed copy, if present

KINDS = {"§": "sections", "Sec.": "sections", "Eq.": "equations", "Eqs.": "equations",
         "Table": "tables", "Tables": "tables", "Fig.": "figures", "Figs.": "figures",
         "Figure": "figures", "Figures": "figures"}
PLURAL = {"Eqs.", "Tables", "Figs.", "Figures"}
_ITEM = r"S?\d+(?:\.\d+)*(?:[A-H](?:[–-][A-H](?![a-z]))?)?(?![\w.]\d)"
_RANGE = rf"{_ITEM}(?:\s?[–-]\s?{_ITEM})?"
_KIND = r"(?<![\w.])(?P<kind>§|Sec\.|Eqs?\.|Tables?|Figs?\.|Figures?)\s?"
REFERENCE = re.compile(
    _KIND + rf"(?P<items>{_RANGE}(?:(?:,\s|,?\s+and\s){_RANGE})*)")
FOREIGN_BEFORE = re.compile(r"(?:et al\.(?:'s|’s|,?\s\(?\d{4}\)?,?|,)?|[A-Z][\w-]*(?:'s|’s)|\{cite:[tp]\}`[^`]+`(?:'s|’s|,)?)\s$")
FOREIGN_AFTER = re.compile(r"^\s(?:of|in|from)\s(?:[A-Z][\w-]*\s(?:et al\.|and\s)|\{cite)")


def load_refs() -> dict[str, set[str]]:
    data = json.loads(REFS_FILE.read_text(encoding="utf-8"))
    return {kind: set(data[kind]) for kind in ("sections", "equations", "tables", "figures")}


def expand(kind: str, items: str) -> list[str]:
    """The ITEMs a LIST names: ``"12–14"`` → 12, 13, 14; ``"1A-4A"`` → 1..4; panels dropped."""
    names = []
    parts = re.split(r",\s|,?\s+and\s", items) if kind in PLURAL else [items]
    for part in parts:
        bounds = re.findall(r"(S?)(\d+(?:\.\d+)*)(?:[A-H](?:[–-][A-H](?![a-z]))?)?", part)
        if len(bounds) == 2 and "." not in bounds[0][1] + bounds[1][1] and bounds[0][0] == bounds[1][0]:
            (prefix, lo), (_, hi) = bounds
            names += [f"{prefix}{n}" for n in range(int(lo), int(hi) + 1)]
        else:
            names += [prefix + number for prefix, number in bounds]
    return names


def paper_references(text: str) -> list[tuple[str, str, str]]:
    """(what was written, kind, name) for every reference to the paper in ``text``."""
    found = []
    for match in REFERENCE.finditer(text):
        kind, items = match.group("kind"), match.group("items")
        if kind not in PLURAL:  # a singular KIND names one ITEM or one range
            items = re.match(_RANGE, items).group(0)
        end = match.start("items") + len(items)
        before, after = text[max(0, match.start() - 60):match.start()], text[end:end + 40]
        if FOREIGN_BEFORE.search(before) or FOREIGN_AFTER.match(after):
            continue
        for name in expand(kind, items):
            found.append((text[match.start():end], KINDS[kind], name))
    return found


def _sources() -> list[Path]:
    files = sorted((ROOT / "notebooks").glob("*.md")) + sorted((ROOT / "book").glob("*.md"))
    return files + sorted((ROOT / "src" / "teachdiff").rglob("*.py"))


# --- the parser itself ------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("see Eqs. 12–14.", [("equations", "12"), ("equations", "13"), ("equations", "14")]),
    ("(Tables 2–5, S3–S5)", [("tables", n) for n in ("2", "3", "4", "5", "S3", "S4", "S5")]),
    ("Tables S3 and S5", [("tables", "S3"), ("tables", "S5")]),
    ("Eqs. 2, 6 and 7", [("equations", "2"), ("equations", "6"), ("equations", "7")]),
    ("Fig. S4, and §3.6.", [("figures", "S4"), ("sections", "3.6")]),
    ("like Figs. 1C-D", [("figures", "1")]),
    ("Figs. 1A-4A", [("figures", n) for n in ("1", "2", "3", "4")]),
    ("the entropy maps of Fig. S2D", [("figures", "S2")]),
    ("§S5.1 and §3.1.1", [("sections", "S5.1"), ("sections", "3.1.1")]),
    ("(Eq. 3, in the training chapter)", [("equations", "3")]),
    ("Eq. 7 and Eq. 5", [("equations", "7"), ("equations", "5")]),
    ("Fig. 1, 20 epochs", [("figures", "1")]),
])
def test_parser_reads_lists_ranges_and_panels(text, expected):
    assert [(kind, name) for _, kind, name in paper_references(text)] == expected


@pytest.mark.parametrize("text", [
    "(Ho et al. 2020, Eq. 7)", "Song et al.'s Eq. 12", "EDM2's Eq. 3", "Eq. 12 of Song et al. (2021)",
    "{cite:t}`song2021ddim`'s Eq. 12", "Eq. 14 in {cite:t}`ho2020ddpm`", "Karras et al., Fig. 2",
])
def test_parser_skips_references_to_other_works(text):
    assert paper_references(text) == []


def test_parser_keeps_the_papers_own_possessive():
    assert [name for _, _, name in paper_references("the paper's Eq. 5 and Table S5")] == ["5", "S5"]


# --- the data file ----------------------------------------------------------------------------

def test_reference_list_has_the_papers_numbering():
    refs = load_refs()
    assert refs["equations"] == {str(n) for n in range(1, 18)}
    assert refs["tables"] == {"1", "2", "3", "4", "5", "S1", "S2", "S3", "S4", "S5"}
    assert refs["figures"] == {"1", "2", "3", "4", "S1", "S2", "S3", "S4"}
    assert {"3.6", "S5.1", "S6", "S7.1"} <= refs["sections"] and "S8" not in refs["sections"]
    assert "source" in json.loads(REFS_FILE.read_text(encoding="utf-8"))


@pytest.mark.skipif(not PAPER_TEXT.exists(), reason="the paper's text is not beside this checkout")
def test_reference_list_matches_the_paper_text():
    """Re-derive the list from the paper's text: headings, equation tags and captions."""
    text = PAPER_TEXT.read_text(encoding="utf-8")
    sections = {m.group(1) for m in re.finditer(r"^(S?\d{1,2}(?:\.\d+)*)\.? +[A-Z&]", text, re.M)}
    equations = set(re.findall(r"\\quad \((\d+)\)\$\$", text))
    tables = set(re.findall(r"^Table (S?\d+)\. ", text, re.M))
    figures = set(re.findall(r"^Figure (S?\d+)\. ", text, re.M))
    assert load_refs() == {"sections": sections, "equations": equations, "tables": tables, "figures": figures}


# --- the book and the library -----------------------------------------------------------------

def test_every_reference_names_one_the_paper_has():
    refs = load_refs()
    wrong = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        for written, kind, name in paper_references(text):
            if name not in refs[kind]:
                line = text[:text.find(written)].count("\n") + 1
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {written!r} ({kind[:-1]} {name} is not in the paper)")
    assert not wrong, "\n".join(wrong)


def test_no_pointer_to_the_internal_spec():
    hits = [f"{path.relative_to(ROOT)}:{i}" for path in _sources()
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if "SPEC §" in line]
    assert not hits, f"'SPEC §' points at a file students cannot see: {hits}"


# Places the paper has that earlier versions of the book cited for the wrong thing: a paragraph
# about the topic must not cite the wrong section.
MISATTRIBUTED = [
    ("uncertainty maps are §S5.1 (§S6 is 'Results on additional metrics')",
     re.compile(r"uncertainty map", re.I), re.compile(r"§S6(?!\.)")),
    ("the clip-and-rescale post-processing of benchmark outputs is §3.6",
     re.compile(r"rescal", re.I), re.compile(r"§S2|§4(?![.\d])")),
]


def test_known_misattributions_stay_fixed():
    wrong = []
    for path in _sources():
        for paragraph in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
            for fact, topic, bad in MISATTRIBUTED:
                if topic.search(paragraph) and bad.search(paragraph):
                    wrong.append(f"{path.relative_to(ROOT)}: {fact}: {paragraph.strip()[:120]!r}")
    assert not wrong, "\n".join(wrong)
