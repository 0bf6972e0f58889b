"""The lessons run top to bottom, and every notebook matches its jupytext source.

Each ``lessons/NN_*.py`` (jupytext percent format, the source of truth) is converted to a
notebook and executed in a fresh kernel with ``lessons/`` as the working directory; a failing
cell fails the test with that cell's error. The paired ``.ipynb`` must have the same cells
(types and sources) and no outputs, so the two cannot drift apart.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

LESSONS = Path(__file__).resolve().parent.parent / "lessons"
SOURCES = sorted(LESSONS.glob("[0-9][0-9]_*.py"))
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _cells(nb) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in nb.cells]


def test_lessons_exist():
    assert SOURCES, f"no lessons found in {LESSONS}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_lesson_runs(path: Path):
    nb = jupytext.read(path)
    client = nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(LESSONS)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{path.name}: a cell failed\n{ANSI.sub('', str(err))}", pytrace=False)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_notebook_matches_source(path: Path):
    ipynb = path.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} is missing: run `jupytext --to ipynb {path.name}`"
    notebook = nbformat.read(ipynb, as_version=4)
    assert _cells(notebook) == _cells(jupytext.read(path)), (
        f"{ipynb.name} differs from {path.name}: run `jupytext --sync lessons/{path.name}`")
    with_output = [i for i, c in enumerate(notebook.cells)
                   if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not with_output, f"{ipynb.name}: cells {with_output} carry outputs; clear them"


def test_every_notebook_has_a_source():
    orphans = [p.name for p in LESSONS.glob("[0-9][0-9]_*.ipynb") if not p.with_suffix(".py").exists()]
    assert not orphans, f"notebooks without a .py source: {orphans}"
