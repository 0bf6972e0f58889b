"""Generate the exercise notebooks ``lessons/exercises/NN_*.ipynb`` from the lessons' sources.

A lesson's jupytext source (``lessons/NN_*.py``) is its own solution. Code that the exercise
version leaves for the student sits between two marker comments (nbgrader's convention)::

    ### BEGIN SOLUTION
    ...the solution...
    ### END SOLUTION

and the cells that grade it start with a ``### CHECK`` comment line. The generator copies the
lesson cell by cell and replaces every solution region by a stub, at the region's
indentation:

* an **indented** region (a function's or kernel's body) becomes
  ``raise NotImplementedError  # your code``;
* a region at the **top level** of a cell becomes one line ``name = ...  # your code`` for
  every name the region assigns (in the order of first assignment), so later cells can still
  refer to the names. ``...`` means "not written yet": ``me.compare`` prints such a row as
  "not done yet", and every check treats a name still bound to ``...`` as wrong
  (``assert x is not ... and <the test>``). A top-level region must assign at least one name
  and must not define a function (put the markers inside its body instead).

Everything else is kept, the markers themselves are dropped, every ``### CHECK`` cell gets
Jupyter's ``raises-exception`` tag (so that running the whole notebook carries on past a check
that still fails), a first cell says what the notebook is, and the outputs are empty.
``tests/test_lessons.py`` executes each exercise notebook and requires every check cell to
fail (``NotImplementedError`` or ``AssertionError``) and every other cell to run, and it
requires the committed notebooks to equal what this script generates.

Usage (from anywhere)::

    python lessons/make_exercises.py            # (re)write lessons/exercises/*.ipynb
    python lessons/make_exercises.py --check    # exit status 1 if any is out of date
"""
from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import sys
import textwrap
from pathlib import Path

import jupytext
import nbformat

LESSONS = Path(__file__).resolve().parent
EXERCISES = LESSONS / "exercises"
BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
CHECK = "### CHECK"
RAISES = "raises-exception"          # Jupyter's tag for a cell that is allowed to fail
RAISE_STUB = "raise NotImplementedError  # your code"
# jupytext keeps the blank lines between cells of the .py in these: meaningless here
TEXT_ONLY_KEYS = ("lines_to_next_cell", "lines_to_end_of_cell_marker", "cell_marker")


def lesson_sources() -> list[Path]:
    """Every ``lessons/NN_*.py``, sorted."""
    return sorted(LESSONS.glob("[0-9][0-9]_*.py"))


def has_solutions(path: Path) -> bool:
    """Whether a lesson source marks any solution region."""
    return any(line.strip().startswith(BEGIN) for line in path.read_text().splitlines())


def exercised_lessons() -> list[Path]:
    """The lessons that have an exercise version."""
    return [p for p in lesson_sources() if has_solutions(p)]


def is_check_cell(cell) -> bool:
    """A code cell whose first line starts with ``### CHECK``."""
    return cell.cell_type == "code" and cell.source.lstrip().startswith(CHECK)


def _assigned_names(region: str) -> list[str]:
    """Names bound by the top-level statements of ``region``, in order of first binding."""
    names: list[str] = []

    def add(target):
        if isinstance(target, ast.Name):
            if target.id not in names:
                names.append(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for t in target.elts:
                add(t)
        elif isinstance(target, ast.Starred):
            add(target.value)

    for stmt in ast.parse(region).body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            raise ValueError(f"a top-level solution region defines {stmt.name!r}: put the "
                             f"markers inside its body, so the signature stays")
        if isinstance(stmt, ast.Assign):
            for t in stmt.targets:
                add(t)
        elif isinstance(stmt, (ast.AugAssign, ast.AnnAssign)):
            add(stmt.target)
    return names


def stub_source(source: str, where: str = "cell") -> str:
    """``source`` with every solution region replaced by its stub (see the module docstring)."""
    out: list[str] = []
    lines = source.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith(END):
            raise ValueError(f"{where}: {END!r} without {BEGIN!r} (line {i + 1})")
        if not line.strip().startswith(BEGIN):
            out.append(line)
            i += 1
            continue
        indent = line[:len(line) - len(line.lstrip())]
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(END):
            if lines[j].strip().startswith(BEGIN):
                raise ValueError(f"{where}: nested {BEGIN!r} (line {j + 1})")
            j += 1
        if j == len(lines):
            raise ValueError(f"{where}: {BEGIN!r} on line {i + 1} is never closed")
        if lines[j][:len(lines[j]) - len(lines[j].lstrip())] != indent:
            raise ValueError(f"{where}: {END!r} on line {j + 1} is not indented like its "
                             f"{BEGIN!r}")
        region = "\n".join(lines[i + 1:j])
        if indent:
            out.append(indent + RAISE_STUB)
        else:
            try:
                names = _assigned_names(textwrap.dedent(region))
            except (SyntaxError, ValueError) as err:
                raise ValueError(f"{where}, solution region at line {i + 1}: {err}") from None
            if not names:
                raise ValueError(f"{where}, solution region at line {i + 1}: a top-level "
                                 f"region must assign a name (its stub is `name = ...`)")
            out.extend(f"{name} = ...  # your code" for name in names)
        i = j + 1
    return "\n".join(out)


def _header(path: Path) -> str:
    return (
        f"# Exercises: `{path.stem}`\n"
        "\n"
        f"The exercise version of lesson [`{path.stem}`](../{path.stem}.ipynb), whose solutions "
        "it leaves for you: replace every `...` and every `raise NotImplementedError  # your "
        "code` with your own code, and run the cells in order. Each cell that starts with "
        "`### CHECK` grades the code above it: it fails until that code is right (it carries "
        "the `raises-exception` tag, so running the whole notebook carries on past it). "
        "`me.compare` prints a gradient you have not written yet as *not done yet*. "
        "The lesson itself holds the solutions and the explanations.\n"
        "\n"
        f"*Generated from `lessons/{path.name}` by `python lessons/make_exercises.py`, which "
        "overwrites this file: to keep your answers, work in a copy outside the repository "
        "(the lessons import the installed package, so they run from anywhere).*")


def _cell_id(source: str, taken: set[str]) -> str:
    """A deterministic id from the cell's content (stable across regenerations)."""
    base = hashlib.sha1(source.encode()).hexdigest()[:8]
    cid, n = base, 1
    while cid in taken:
        cid, n = f"{base}-{n}", n + 1
    taken.add(cid)
    return cid


def _cell_metadata(cell):
    meta = copy.deepcopy(cell.metadata)
    for key in TEXT_ONLY_KEYS:
        meta.pop(key, None)
    return meta


def exercise_notebook(path: Path):
    """The exercise notebook of one lesson source, without outputs."""
    lesson = jupytext.read(path)
    nb = nbformat.v4.new_notebook()
    nb.metadata = copy.deepcopy(lesson.metadata)
    nb.metadata.pop("jupytext", None)          # not paired with any text file
    taken: set[str] = set()
    header = _header(path)
    nb.cells.append(nbformat.v4.new_markdown_cell(header, id=_cell_id(header, taken)))
    for k, cell in enumerate(lesson.cells):
        if cell.cell_type == "code":
            source = stub_source(cell.source, f"{path.name}, cell {k}")
            new = nbformat.v4.new_code_cell(source, id=_cell_id(source, taken))
            new.metadata = _cell_metadata(cell)
            if is_check_cell(cell):
                tags = list(new.metadata.get("tags", []))
                if RAISES not in tags:
                    tags.append(RAISES)
                new.metadata["tags"] = tags
        else:
            if BEGIN in cell.source or END in cell.source:
                raise ValueError(f"{path.name}, cell {k}: solution markers outside a code cell")
            new = nbformat.v4.new_markdown_cell(cell.source, id=_cell_id(cell.source, taken))
            new.cell_type = cell.cell_type
            new.metadata = _cell_metadata(cell)
        nb.cells.append(new)
    return nb


def exercise_path(path: Path) -> Path:
    """Where the exercise notebook of a lesson source lives."""
    return EXERCISES / f"{path.stem}.ipynb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a notebook is missing or out of date")
    args = parser.parse_args(argv)
    stale = []
    for path in exercised_lessons():
        target = exercise_path(path)
        text = nbformat.writes(exercise_notebook(path)) + "\n"
        if target.exists() and target.read_text() == text:
            continue
        stale.append(target)
        if not args.check:
            target.parent.mkdir(exist_ok=True)
            target.write_text(text)
            print(f"wrote {target.relative_to(LESSONS.parent)}")
    expected = {exercise_path(p) for p in exercised_lessons()}
    orphans = sorted(set(EXERCISES.glob("*.ipynb")) - expected)
    for orphan in orphans:               # tests/test_lessons.py fails on these
        print(f"warning: {orphan.relative_to(LESSONS.parent)} has no lesson with solution "
              f"markers", file=sys.stderr)
    if args.check and stale:
        print("out of date: " + ", ".join(str(p.relative_to(LESSONS.parent)) for p in stale)
              + "\nrun `python lessons/make_exercises.py`", file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
