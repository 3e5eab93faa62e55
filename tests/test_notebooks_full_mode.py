"""Every chapter notebook -- the .ipynb itself, cell by cell -- in full mode, with the counts capped.

``TEACHDIFF_CAPPED=1`` (:func:`teachdiff.capped_mode`) keeps full mode's sizes and splits (256²
patches, the paper's networks, the colab presets, the full synthetic splits) and caps only
training steps, sampler steps, samples and network evaluations, so a cell that indexes past the
end of a split, or passes a wrong shape, fails here as it would on Colab. About ten minutes for
all chapters on two CPU cores; not part of the default run (``-m "not full_notebooks"`` in
pyproject.toml): ``make test-full-mode``, which CI runs, selects it.

The chapters run in order and share one runs folder, so chapters 5, 6 and 13 load the model
chapter 4 trained, as they do for a reader who runs the book in order.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.full_notebooks


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The runs folder and the kernels' TMPDIR: checkpoints of the paper's networks, about 20 GB
    by the end, removed when the module is done rather than kept with pytest's last three runs."""
    folder = tmp_path_factory.mktemp("runs")
    (folder / "tmp").mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_there_is_a_notebook_per_chapter():
    assert len(NOTEBOOKS) >= 13


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_runs_to_the_end_in_capped_full_mode(notebook: Path, runs: Path, monkeypatch):
    monkeypatch.delenv("TEACHDIFF_QUICK", raising=False)
    monkeypatch.setenv("TEACHDIFF_CAPPED", "1")
    monkeypatch.setenv("TEACHDIFF_RUNS", str(runs))
    monkeypatch.setenv("TMPDIR", str(runs / "tmp"))  # chapter 13 works in a temporary folder
    nb = nbformat.read(notebook, as_version=4)
    # as in the book build (myst-nb): cells tagged skip-execution run only in Colab and Jupyter
    nb.cells = [c for c in nb.cells if "skip-execution" not in c.metadata.get("tags", [])]
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(notebook.parent)}})
    client.execute()  # a failing cell raises CellExecutionError with the cell and its traceback
