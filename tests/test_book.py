"""The book's structure: notebook pairs in sync, everything in the table of contents, the chapter
conventions (Colab badge, solutions, no .cuda()), and the student-version tool."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
yaml = pytest.importorskip("yaml")
nbformat = pytest.importorskip("nbformat")

from teachdiff.book import tools as book_tools  # noqa: E402
from teachdiff.cli import book as book_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.md"))
COLAB = "https://colab.research.google.com/github/teachdiff/teachdiff/blob/main/notebooks/{}.ipynb"


def _cells(path: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    """(type, source, tags) of every cell, as jupytext reads the file (.md or .ipynb)."""
    nb = jupytext.read(path)
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", []))) for c in nb.cells]


def _toc_files() -> set[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = {toc["root"]}

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                files.add(entry["file"])
            walk(entry.get("sections", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    walk(toc.get("chapters", []))
    return {str(Path(f).with_suffix("")) for f in files}


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 4, "expected the chapter sources notebooks/*.md"


@pytest.mark.parametrize("md", NOTEBOOKS, ids=lambda p: p.stem)
def test_md_and_ipynb_twins_have_the_same_cells(md: Path):
    twin = md.with_suffix(".ipynb")
    assert twin.exists(), f"{twin.name} is missing: run `make sync` (jupytext --sync notebooks/*.md)"
    assert _cells(md) == _cells(twin), f"{md.name} and {twin.name} differ: run `make sync`"


@pytest.mark.parametrize("md", NOTEBOOKS, ids=lambda p: p.stem)
def test_ipynb_twin_is_committed_without_outputs(md: Path):
    nb = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
    with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("outputs")]
    assert not with_outputs, f"{md.stem}.ipynb has outputs in cells {with_outputs}; clear them"


def test_every_notebook_and_book_page_is_in_the_toc():
    toc = _toc_files()
    pages = [p for p in NOTEBOOKS] + sorted((ROOT / "book").glob("*.md"))
    missing = [str(p.relative_to(ROOT).with_suffix("")) for p in pages if str(p.relative_to(ROOT).with_suffix("")) not in toc]
    assert not missing, f"not in _toc.yml: {missing}"
    dangling = [f for f in toc if not (ROOT / f).with_suffix(".md").exists()]
    assert not dangling, f"_toc.yml names files that do not exist: {dangling}"


MAX_CODE_LINE = 88  # longer code lines scroll sideways in the HTML book


@pytest.mark.parametrize("md", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_cell_lines_fit_the_page(md: Path):
    too_long, in_code = [], False
    for number, line in enumerate(md.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("```"):
            in_code = line.startswith("```{code-cell}")
        elif in_code and len(line) > MAX_CODE_LINE:
            too_long.append(f"{md.name}:{number}: {len(line)} characters")
    assert not too_long, (
        f"code lines longer than {MAX_CODE_LINE} characters (wrap them):\n" + "\n".join(too_long)
    )


@pytest.mark.parametrize("md", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_conventions(md: Path):
    text = md.read_text(encoding="utf-8")
    cells = _cells(md)
    code = "\n".join(src for kind, src, _ in cells if kind == "code")
    assert COLAB.format(md.stem) in text, "the Colab badge must link to this chapter's .ipynb on main"
    assert not re.search(r"\.cuda\(", code), "use teachdiff.device(), never .cuda()"
    solutions = [tags for kind, _, tags in cells if "solution" in tags]
    assert solutions, "each chapter needs at least one exercise solution (a cell tagged 'solution')"
    assert all("hide-cell" in tags for tags in solutions), "solutions must render collapsed (tag 'hide-cell')"
    assert "seed_everything(" in code, "seed the chapter's random numbers"
    assert not re.search(r"^\s*class \w+\(.*nn\.Module", code, re.M), "no nn.Module classes in notebooks"
    setup = next(src for kind, src, _ in cells if kind == "code")
    assert setup.startswith("try:\n    import teachdiff") and "%pip install" in setup, (
        "the first code cell installs teachdiff only when it is missing"
    )


def _notebook_with_solutions():
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("**Exercise 1.** Add one."),
        nbformat.v4.new_code_cell("x = 1", outputs=[nbformat.v4.new_output("stream", text="done\n")]),
        nbformat.v4.new_code_cell("# answer part 1\nx + 1", metadata={"tags": ["hide-cell", "solution"]}),
        nbformat.v4.new_code_cell("# answer part 2", metadata={"tags": ["solution"]}),
        nbformat.v4.new_markdown_cell("**Exercise 2.**"),
        nbformat.v4.new_code_cell("secret = 42", metadata={"tags": ["solution"]}),
        nbformat.v4.new_code_cell("print('kept')", metadata={"tags": ["hide-input"]}),
    ]
    return nb


def test_strip_solutions_removes_every_solution_and_all_outputs():
    stripped = book_tools.strip_solutions(_notebook_with_solutions())
    sources = [c.source for c in stripped.cells]
    assert not any("answer" in s or "secret" in s for s in sources)
    # one placeholder per run of consecutive solution cells: two runs -> two placeholders
    assert sources.count(book_tools.PLACEHOLDER) == 2
    assert sources == ["**Exercise 1.** Add one.", "x = 1", book_tools.PLACEHOLDER, "**Exercise 2.**",
                       book_tools.PLACEHOLDER, "print('kept')"]
    assert all(not c.get("outputs") for c in stripped.cells if c.cell_type == "code")


def test_make_student_version_writes_ipynb_and_myst_without_solutions(tmp_path):
    src, dst = tmp_path / "notebooks", tmp_path / "student"
    src.mkdir()
    nb = _notebook_with_solutions()
    nbformat.write(nb, src / "01_demo.ipynb")
    jupytext.write(nb, src / "01_demo.md", fmt="md:myst")
    (src / "notes.md").write_text("# Not a notebook\n", encoding="utf-8")

    written = book_tools.make_student_version(src, dst)

    assert sorted(p.name for p in written) == ["01_demo.ipynb", "01_demo.md"]
    for path in written:
        cells = jupytext.read(path).cells
        assert len(cells) == 6
        assert not any("solution" in c.metadata.get("tags", []) for c in cells)
        assert not any("secret" in c.source for c in cells)
    with pytest.raises(FileExistsError, match="--overwrite"):
        book_tools.make_student_version(src, dst)
    assert book_tools.make_student_version(src, dst, overwrite=True) == written


def test_student_cli_on_the_real_chapters(tmp_path, capsys):
    assert book_cli.main(["student", str(ROOT / "notebooks"), str(tmp_path / "out")]) == 0
    for md in NOTEBOOKS:
        original = [t for _, _, t in _cells(md)]
        student = [t for _, _, t in _cells(tmp_path / "out" / md.name)]
        assert sum("solution" in t for t in original) > 0
        assert not any("solution" in t for t in student)
        assert (tmp_path / "out" / md.with_suffix(".ipynb").name).exists()
    assert book_cli.main(["student", str(tmp_path / "nowhere"), str(tmp_path / "x")]) == 1
    assert "does not exist" in capsys.readouterr().err
