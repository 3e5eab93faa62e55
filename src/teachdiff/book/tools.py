"""Tools for instructors: a student version of the course notebooks, without the solutions.

    python -m teachdiff.cli.book student notebooks _student      # what `make student` runs

Every exercise solution in the book is a code cell tagged ``solution`` (and ``hide-cell``, so the
HTML shows it collapsed). The student version removes those cells, puts one empty code cell
"write your solution here" in place of each run of removed cells, and clears all outputs, so
nothing of the answer is left. Both the ``.ipynb`` twins (for Colab) and the MyST ``.md``
sources are converted. Existing files are never overwritten unless ``--overwrite`` is given.
"""

from __future__ import annotations

import copy
from pathlib import Path

__all__ = ["SOLUTION_TAG", "is_solution", "strip_solutions", "make_student_version"]

SOLUTION_TAG = "solution"
PLACEHOLDER = "# Your solution here (the instructor's version has one).\n"


def is_solution(cell) -> bool:
    """True for a cell tagged ``solution``."""
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def strip_solutions(nb):
    """A copy of ``nb`` without solution cells and without outputs.

    Each run of consecutive solution cells becomes one empty placeholder code cell, so the
    student sees where to write the answer.
    """
    import nbformat  # a dependency of jupytext (book extras)

    out = copy.deepcopy(nb)
    cells = []
    previous_was_solution = False
    for cell in out.cells:
        if is_solution(cell):
            if not previous_was_solution:
                cells.append(nbformat.v4.new_code_cell(PLACEHOLDER))
            previous_was_solution = True
            continue
        previous_was_solution = False
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    out.cells = cells
    return out


def _jupytext():
    try:
        import jupytext
    except ImportError:
        raise ImportError(
            "teachdiff.book.tools needs jupytext to read the notebooks; install the book extras: "
            "pip install -e '.[book]'"
        ) from None
    return jupytext


def make_student_version(src: str | Path, dst: str | Path, overwrite: bool = False) -> list[Path]:
    """Write solution-free copies of every ``*.ipynb`` and MyST ``*.md`` notebook in ``src`` to ``dst``.

    Returns the written paths. Raises ``FileNotFoundError`` when ``src`` has no notebooks and
    ``FileExistsError`` (before writing anything) when a target exists and ``overwrite`` is False.
    """
    jupytext = _jupytext()
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"notebook folder {src} does not exist; pass the folder that holds the chapters.")
    sources = sorted(src.glob("*.ipynb")) + sorted(p for p in src.glob("*.md") if _is_notebook_md(p))
    if not sources:
        raise FileNotFoundError(f"no notebooks (*.ipynb or MyST *.md) found in {src}.")
    targets = [dst / p.name for p in sources]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{len(existing)} file(s) already exist, e.g. {existing[0]}; nothing was written. "
            f"Delete {dst} (make clean) or pass --overwrite."
        )
    dst.mkdir(parents=True, exist_ok=True)
    for source, target in zip(sources, targets):
        nb = jupytext.read(source)
        fmt = "ipynb" if source.suffix == ".ipynb" else "md:myst"
        jupytext.write(strip_solutions(nb), target, fmt=fmt)
    return targets


def _is_notebook_md(path: Path) -> bool:
    """A MyST notebook has a jupytext header with a kernelspec (plain pages do not)."""
    head = path.read_text(encoding="utf-8")[:2000]
    return head.startswith("---") and "kernelspec" in head
