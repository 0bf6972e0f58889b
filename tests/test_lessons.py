"""The lessons run top to bottom, and every notebook matches its jupytext source.

Each ``lessons/NN_*.py`` (jupytext percent format, the source of truth) is converted to a
notebook and executed in a fresh kernel with ``lessons/`` as the working directory; a failing
cell fails the test with that cell's error. The paired ``.ipynb`` must have the same cells
(types and sources) and no outputs, so the two cannot drift apart.

The exercise notebooks ``lessons/exercises/NN_*.ipynb`` are generated from the same sources by
``lessons/make_exercises.py`` (solution regions become stubs). Each must equal what the
generator writes now, and executing it once must make **every** ``### CHECK`` cell fail with
``NotImplementedError`` or ``AssertionError`` while every other cell runs: the checks are not
vacuous. (Running the lesson itself, above, is the proof that they pass on the solutions.)
The derivations the exercises hide must be absent from them, and a check that names a common
mistake must name it when a lesson's solution is given that mistake.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

LESSONS = Path(__file__).resolve().parent.parent / "lessons"
SOURCES = sorted(LESSONS.glob("[0-9][0-9]_*.py"))
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_exercises", LESSONS / "make_exercises.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mx = _load_generator()
EXERCISED = mx.exercised_lessons()
STUB_FAILURES = ("NotImplementedError", "AssertionError")


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


# ---------------------------------------------------------------------------------------------
# Exercise notebooks


def _exercise_cells(nb) -> list[tuple[str, str, list]]:
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


def test_exercises_exist():
    assert EXERCISED, "no lesson marks a solution region"
    for path in EXERCISED:
        assert any(mx.is_check_cell(c) for c in jupytext.read(path).cells), (
            f"{path.name} has solution regions but no `### CHECK` cell")


@pytest.mark.parametrize("path", EXERCISED, ids=lambda p: p.stem)
def test_exercise_notebook_matches_source(path: Path):
    target = mx.exercise_path(path)
    assert target.exists(), f"{target.name} is missing: run `python lessons/make_exercises.py`"
    committed = nbformat.read(target, as_version=4)
    generated = mx.exercise_notebook(path)
    assert _exercise_cells(committed) == _exercise_cells(generated), (
        f"exercises/{target.name} differs from {path.name}: run `python lessons/make_exercises.py`")
    assert committed.metadata == generated.metadata
    with_output = [i for i, c in enumerate(committed.cells)
                   if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not with_output, f"exercises/{target.name}: cells {with_output} carry outputs"


def test_every_exercise_notebook_has_a_lesson():
    expected = {mx.exercise_path(p).name for p in EXERCISED}
    orphans = sorted(p.name for p in mx.EXERCISES.glob("*.ipynb") if p.name not in expected)
    assert not orphans, f"exercise notebooks without a lesson that marks solutions: {orphans}"


@pytest.mark.parametrize("path", EXERCISED, ids=lambda p: p.stem)
def test_exercise_checks_fail_on_the_stubs(path: Path):
    """One execution of the stubbed notebook: each check cell must fail, everything else run.

    The check cells carry the ``raises-exception`` tag, so nbclient runs past them; any other
    cell that fails aborts the run (a stub broke a cell that is not a check).
    """
    nb = mx.exercise_notebook(path)
    client = nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(mx.EXERCISES)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"exercises/{path.stem}: a cell that is not a check failed on the stubs\n"
                    f"{ANSI.sub('', str(err))}", pytrace=False)
    checks = [(i, c) for i, c in enumerate(nb.cells) if mx.is_check_cell(c)]
    assert checks
    for i, cell in checks:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        first_line = cell.source.splitlines()[0]
        assert errors, f"exercises/{path.stem}, cell {i} ({first_line!r}) passed on the stubs"
        assert errors[0].ename in STUB_FAILURES, (
            f"exercises/{path.stem}, cell {i} ({first_line!r}) failed with {errors[0].ename}: "
            f"{errors[0].evalue} (expected one of {STUB_FAILURES})")


def test_stub_conventions():
    source = "\n".join([
        "a = 1",
        "### BEGIN SOLUTION",
        "b, c = 2, 3",
        "b += a",
        "d = [b]",
        "### END SOLUTION",
        "def f(x):",
        "    y = x",
        "    ### BEGIN SOLUTION",
        "    y = 2 * x",
        "    return y",
        "    ### END SOLUTION",
    ])
    assert mx.stub_source(source).split("\n") == [
        "a = 1",
        "b = ...  # your code", "c = ...  # your code", "d = ...  # your code",
        "def f(x):",
        "    y = x",
        "    raise NotImplementedError  # your code",
    ]
    for bad in ("### BEGIN SOLUTION\nx = 1",                        # never closed
                "x = 1\n### END SOLUTION",                           # never opened
                "### BEGIN SOLUTION\nprint(1)\n### END SOLUTION",    # assigns nothing
                "### BEGIN SOLUTION\ndef g():\n    pass\n### END SOLUTION",
                "if 1:\n    ### BEGIN SOLUTION\n    x = 1\n### END SOLUTION"):
        with pytest.raises(ValueError):
            mx.stub_source(bad)


def test_indented_stubs_hints_and_answers():
    """Name stubs inside functions; hints become collapsed markdown; answers are hidden."""
    source = "\n".join([
        "def grads(dy):",
        "    m = 2",
        "    ### BEGIN SOLUTION",
        "    # HINT: first, which",
        "    #   continues here",
        "    # an ordinary comment",
        "    # HINT: second",
        "    da = dy * m",
        "    db, dc = da, -da",
        "    ### END SOLUTION",
        "    return da, db, dc",
    ])
    assert mx.stub_source(source).split("\n") == [
        "def grads(dy):", "    m = 2",
        "    da = ...  # your code", "    db = ...  # your code", "    dc = ...  # your code",
        "    return da, db, dc",
    ]
    assert mx.solution_hints(source) == ["first, which continues here", "second"]
    cell = mx.hints_markdown(["first", "second"])
    assert cell.count("<details>") == 2 and "<summary>Hint 2 of 2</summary>" in cell
    for bad in ("# HINT: outside\nx = 1",
                "### BEGIN SOLUTION\n# HINT: a\nx = 1\n### END SOLUTION\n"
                "### BEGIN SOLUTION\n# HINT: b\ny = 1\n### END SOLUTION"):
        with pytest.raises(ValueError):
            mx.solution_hints(bad)

    markdown = "\n".join([
        "Derive the table:", "", mx.ANSWER_COLUMN, "| node | forward | backward |",
        "|---|---|---|", "| out | $y = 2x$ | $dx = 2\\,dy$ |", mx.ANSWER_END, "",
        mx.ANSWER, "Only one consumer.", mx.ANSWER_END, "", "After.",
    ])
    hidden = mx.hide_answers(markdown)
    assert "dx = 2" not in hidden and "one consumer" not in hidden
    assert "| out | $y = 2x$ |  |" in hidden and "| node | forward | backward |" in hidden
    assert hidden.count(mx.DERIVE) == 1 and hidden.endswith("After.")
    for bad in (mx.ANSWER + "\nnever closed", mx.ANSWER_END,
                mx.ANSWER_COLUMN + "\nnot a table\n" + mx.ANSWER_END,
                "<!-- BEGIN ANSWER: first column -->\n" + mx.ANSWER_END):
        with pytest.raises(ValueError):
            mx.hide_answers(bad)


def _text(path: Path) -> str:
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)


def _hidden_snippets(source: str) -> list[str]:
    """The text a lesson's markdown cell hides between answer markers (the last column's
    cells for a table), each piece long enough to be distinctive."""
    snippets, region, row = [], None, 0
    for line in source.splitlines():
        text = line.strip()
        if text.startswith(mx.ANSWER_START):
            region, row = text, 0
        elif text == mx.ANSWER_END:
            region = None
        elif region == mx.ANSWER:
            snippets.append(text)
        elif region == mx.ANSWER_COLUMN and text.startswith("|"):
            row += 1
            if row > 2:                           # the header and separator rows stay
                snippets.append(text.rstrip("|").rsplit("|", 1)[1].strip())
    return [s for s in snippets if len(s) >= 20]


@pytest.mark.parametrize("path", EXERCISED, ids=lambda p: p.stem)
def test_exercises_hide_the_derivations(path: Path):
    lesson_text = _text(path.with_suffix(".ipynb"))
    exercise_text = "\n".join(c.source for c in mx.exercise_notebook(path).cells)
    snippets = [s for c in jupytext.read(path).cells if c.cell_type == "markdown"
                for s in _hidden_snippets(c.source)]
    for snippet in snippets:
        assert snippet in lesson_text, f"{path.name}: the lesson lost {snippet!r}"
        assert snippet not in exercise_text, f"exercises/{path.stem} shows {snippet!r}"
    if snippets:
        assert mx.DERIVE in exercise_text


def test_batchnorm_exercise_leaves_the_backward_column_out():
    lesson = _text(LESSONS / "02_batchnorm.ipynb")
    exercise = _text(mx.EXERCISES / "02_batchnorm.ipynb")
    for phrase in (r"$d\mu = -\sum dx_c$", r"$dx \mathrel{+}= \tfrac1m\, d\mu$",
                   r"m\,dy - d\beta - \hat x\, d\gamma"):
        assert phrase in lesson and phrase not in exercise, phrase
    assert r"| mean | $\mu = \tfrac1m\sum x$ |  |" in exercise


# (lesson, the check's first line, a line of its solution, the same line with a common
# mistake, what the check must say about it)
MISTAKES = [
    ("02_batchnorm", "### CHECK: every node's gradient",
     "    dxc = dxc + 2.0 / m * xc * dvar         # path 2: through var",
     "    dxc = dxc + 0 * dvar", "your dxc has the x̂ path only"),
    ("02_batchnorm", "### CHECK: the compact formula",
     "    return pc(gamma) * istd / m * (m * dy - S(dy) - xhat * S(dy * xhat))",
     "    return pc(gamma) * istd / m * (m * dy - S(dy))",
     "leaves out the path through the variance"),
    ("04_squeeze_excite", "### CHECK: every intermediate",
     "    dx = dout * g[:, :, None, None] + ds[:, :, None, None] / (H * W)",
     "    dx = dout * g[:, :, None, None]", "your dx has the direct path only"),
    ("01_swish", "### CHECK: your Swish backward",
     "    return dout * s * (1 + x * (1 - s))", "    return dout * s", "σ(x) only"),
    ("05_mbconv", "### CHECK: the block's backward",
     "    return dout + d\n", "    return d\n", "the branch's term only"),
    ("07_compound_scaling", "### CHECK: the receptive field",
     "        r, j = r + (b.kernel - 1) * j, j * b.stride",
     "        r, j = r + (b.kernel - 1), j * b.stride", "each layer adds k − 1 pixels"),
    ("10_scaling_strategies", "### CHECK: your FLOPs by layer kind",
     "        kinds[\"depthwise\"] += b.kernel ** 2 * e * h * h",
     "        kinds[\"depthwise\"] += b.kernel ** 2 * e * e * h * h", "counted like a dense conv"),
]


@pytest.mark.parametrize("lesson, check, line, mistake, message", MISTAKES,
                         ids=[f"{m[0]}-{m[4]}" for m in MISTAKES])
def test_checks_name_common_mistakes(lesson, check, line, mistake, message):
    """The lesson run up to the check, with the mistake in its solution: the check names it."""
    source = (LESSONS / f"{lesson}.py").read_text()
    assert source.count(line) == 1, f"{lesson}.py: {line!r} is not there once"
    nb = jupytext.reads(source.replace(line, mistake), fmt="py:percent")
    last = next(i for i, c in enumerate(nb.cells) if c.source.startswith(check))
    nb.cells = nb.cells[:last + 1]
    nb.cells[last].metadata["tags"] = [mx.RAISES]
    client = nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(LESSONS)}})
    client.execute()
    errors = [o for o in nb.cells[last].outputs if o.output_type == "error"]
    assert errors and errors[0].ename == "AssertionError", f"{check!r} passed the mistake"
    assert message in errors[0].evalue, f"{check!r} says {errors[0].evalue!r}"


def test_compare_columns_stay_aligned():
    """``me.compare``'s rows: labels longer than the column move to a line of their own."""
    import numpy as np

    import minieffnet as me

    a = np.ones((2, 3))
    rows = [me.compare(name, a, a + 1e-9) for name in ("dx", "x" * 16, "a much longer label")]
    column = [row.splitlines()[-1].index("exact:") for row in rows]
    assert column == [17, 17, 17], rows
    assert rows[2].splitlines()[0] == "a much longer label"
    assert "not done yet" in me.compare("dx", ..., a)
    assert "not done yet" in me.compare("dx", a, ...)
    assert "shape mismatch" in me.compare("dx", a, np.ones(3))
