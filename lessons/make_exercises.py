"""Generate the exercise notebooks ``lessons/exercises/NN_*.ipynb`` from the lessons' sources.

A lesson's jupytext source (``lessons/NN_*.py``) is its own solution. Code that the exercise
version leaves for the student sits between two marker comments (nbgrader's convention)::

    ### BEGIN SOLUTION
    ...the solution...
    ### END SOLUTION

and the cells that grade it start with a ``### CHECK`` comment line. The generator copies the
lesson cell by cell and replaces every solution region by a stub, at the region's
indentation:

* a region at the **top level** of a cell becomes one line ``name = ...  # your code`` for
  every name the region assigns (in the order of first assignment), so later cells can still
  refer to the names. ``...`` means "not written yet": ``me.compare`` prints such a row as
  "not done yet", and every check treats a name still bound to ``...`` as wrong
  (``assert x is not ... and <the test>``). A top-level region must assign at least one name
  and must not define a function (put the markers inside its body instead);
* an **indented** region (a function's or kernel's body) whose statements only assign names
  (a list of values to compute, returned by the code after the region) becomes the same
  ``name = ...`` lines, at its indentation, so a function can hand back one gradient per
  name and a check can grade each;
* any other indented region (loops, a ``return``) becomes
  ``raise NotImplementedError  # your code``.

**Hints.** A comment line ``# HINT: text`` inside a solution region is a hint; the comment
lines right after it whose text starts with two or more spaces (``#   more text``) continue
it. In the lesson the hints stay comments of the solution; in the exercise they leave with
the region and come back, in order, as a markdown cell right above the code cell: each hint
a ``<details><summary>Hint k of n</summary>`` block, which Jupyter shows collapsed until
clicked, so the first hint can be read without the last. Only one region of a cell may
carry hints (give each hinted exercise its own cell).

**Hidden derivations.** In a markdown cell, the lines between ``<!-- BEGIN ANSWER -->`` and
``<!-- END ANSWER -->`` (HTML comments, invisible in the lesson, which shows everything) are
replaced in the exercise by the line "*Derive this yourself — the checks below grade it.*"
(once for regions separated only by blank lines).
``<!-- BEGIN ANSWER: last column -->`` hides only the last column of the markdown table
between the markers (its header stays, its cells are left empty, the line follows the
table): a table of what to derive, to be filled in.

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
HINT = "# HINT:"
ANSWER_START = "<!-- BEGIN ANSWER"      # either of the two markers below
ANSWER = "<!-- BEGIN ANSWER -->"
ANSWER_COLUMN = "<!-- BEGIN ANSWER: last column -->"
ANSWER_END = "<!-- END ANSWER -->"
DERIVE = "*Derive this yourself — the checks below grade it.*"
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


def _regions(lines: list[str], begin: str, end: str, where: str) -> list[tuple[int, int]]:
    """(line of ``begin``, line of its ``end``) of every marked region, in order."""
    regions = []
    i = 0
    while i < len(lines):
        if lines[i].strip().startswith(end):
            raise ValueError(f"{where}: {end!r} without {begin!r} (line {i + 1})")
        if not lines[i].strip().startswith(begin):
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(end):
            if lines[j].strip().startswith(begin):
                raise ValueError(f"{where}: nested {begin!r} (line {j + 1})")
            j += 1
        if j == len(lines):
            raise ValueError(f"{where}: {begin!r} on line {i + 1} is never closed")
        regions.append((i, j))
        i = j + 1
    return regions


def _indent(line: str) -> str:
    return line[:len(line) - len(line.lstrip())]


def _names_only(region: str) -> list[str]:
    """The names an indented region assigns, if assigning names is all it does; else []."""
    try:
        body = ast.parse(region).body
    except SyntaxError:
        return []
    simple = all(isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)) for stmt in body)
    return _assigned_names(region) if body and simple else []


def stub_source(source: str, where: str = "cell") -> str:
    """``source`` with every solution region replaced by its stub (see the module docstring)."""
    lines = source.split("\n")
    out: list[str] = []
    last = 0
    for i, j in _regions(lines, BEGIN, END, where):
        indent = _indent(lines[i])
        if _indent(lines[j]) != indent:
            raise ValueError(f"{where}: {END!r} on line {j + 1} is not indented like its "
                             f"{BEGIN!r}")
        region = textwrap.dedent("\n".join(lines[i + 1:j]))
        out.extend(lines[last:i])
        last = j + 1
        if indent:
            names = _names_only(region)
            out.extend([indent + f"{name} = ...  # your code" for name in names]
                       or [indent + RAISE_STUB])
            continue
        try:
            names = _assigned_names(region)
        except (SyntaxError, ValueError) as err:
            raise ValueError(f"{where}, solution region at line {i + 1}: {err}") from None
        if not names:
            raise ValueError(f"{where}, solution region at line {i + 1}: a top-level "
                             f"region must assign a name (its stub is `name = ...`)")
        out.extend(f"{name} = ...  # your code" for name in names)
    out.extend(lines[last:])
    return "\n".join(out)


def solution_hints(source: str, where: str = "cell") -> list[str]:
    """The ``# HINT:`` comments of a code cell's solution region, in order, as markdown text
    (continuation lines joined to their hint)."""
    lines = source.split("\n")
    regions = _regions(lines, BEGIN, END, where)
    inside = {k for i, j in regions for k in range(i + 1, j)}
    stray = [k + 1 for k, line in enumerate(lines)
             if line.strip().startswith(HINT) and k not in inside]
    if stray:
        raise ValueError(f"{where}: {HINT!r} outside a solution region (line {stray[0]})")
    hinted = []
    for i, j in regions:
        hints: list[str] = []
        continuing = False                 # the last line was a hint or its continuation
        for line in (line.strip() for line in lines[i + 1:j]):
            if line.startswith(HINT):
                hints.append(line[len(HINT):].strip())
            elif continuing and line.startswith("#  "):
                hints[-1] += " " + line[1:].strip()
            else:
                continuing = False
                continue
            continuing = True
        if hints:
            hinted.append(hints)
    if len(hinted) > 1:
        raise ValueError(f"{where}: {len(hinted)} solution regions carry hints; give each "
                         f"hinted exercise its own cell")
    return hinted[0] if hinted else []


def hints_markdown(hints: list[str]) -> str:
    """The exercise's hints cell: one collapsed ``<details>`` block per hint."""
    return "\n\n".join(f"<details><summary>Hint {k} of {len(hints)}</summary>\n\n{hint}\n\n"
                        f"</details>" for k, hint in enumerate(hints, 1))


def _hide_last_column(rows: list[str], where: str) -> list[str]:
    """A markdown table's rows with the last cell of every body row emptied."""
    if len(rows) < 3 or not all(r.strip().startswith("|") and r.strip().endswith("|")
                                for r in rows) or not set(rows[1].strip()) <= set("|:- "):
        raise ValueError(f"{where}: {ANSWER_COLUMN!r} must hold a table (a header, a "
                         f"separator and rows, each `| ... |`) and nothing else")
    body = ["|" + "|".join(r.strip()[1:-1].split("|")[:-1]) + "|  |" for r in rows[2:]]
    return rows[:2] + body


def hide_answers(source: str, where: str = "cell") -> str:
    """A markdown cell's ``source`` with every answer region replaced (module docstring)."""
    lines = source.split("\n")
    out: list[str] = []
    last = 0
    for i, j in _regions(lines, ANSWER_START, ANSWER_END, where):
        marker = lines[i].strip()
        if marker not in (ANSWER, ANSWER_COLUMN):
            raise ValueError(f"{where}: unknown answer marker {marker!r} (line {i + 1}); "
                             f"use {ANSWER!r} or {ANSWER_COLUMN!r}")
        out.extend(lines[last:i])
        last = j + 1
        if marker == ANSWER_COLUMN:
            rows = [row for row in lines[i + 1:j] if row.strip()]
            out.extend(_hide_last_column(rows, where) + [""])
        if [line for line in out if line.strip()][-1:] != [DERIVE]:   # once for adjacent ones
            out.append(DERIVE)
    out.extend(lines[last:])
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
        "Where the lesson derives what you are to derive, this notebook says *Derive this "
        "yourself*; the hints above a stub (*Hint 1 of n*, ...) are collapsed: open them one "
        "at a time, only as far as you need. "
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
        where = f"{path.name}, cell {k}"
        if cell.cell_type == "code":
            if ANSWER_START in cell.source or ANSWER_END in cell.source:
                raise ValueError(f"{where}: answer markers in a code cell")
            hints = solution_hints(cell.source, where)
            if hints:
                text = hints_markdown(hints)
                nb.cells.append(nbformat.v4.new_markdown_cell(text, id=_cell_id(text, taken)))
            source = stub_source(cell.source, where)
            new = nbformat.v4.new_code_cell(source, id=_cell_id(source, taken))
            new.metadata = _cell_metadata(cell)
            if is_check_cell(cell):
                tags = list(new.metadata.get("tags", []))
                if RAISES not in tags:
                    tags.append(RAISES)
                new.metadata["tags"] = tags
        else:
            if BEGIN in cell.source or END in cell.source:
                raise ValueError(f"{where}: solution markers outside a code cell")
            source = hide_answers(cell.source, where)
            new = nbformat.v4.new_markdown_cell(source, id=_cell_id(source, taken))
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
