"""Text read from files, made safe to print: :func:`printable`.

A checkpoint, a data set's folder names or a config may come from anywhere, and the strings
in them (class names, a network's name, a path) end up on a terminal. Printed raw, an escape
sequence there recolours or clears the screen, rewrites the window title or hides what
follows, and a newline forges a line of output (a fake ``98.00 %  cat``). So every such
string is printed through :func:`printable`, which leaves ordinary text alone.

    >>> printable("golden retriever"), printable("chat noir é")
    ('golden retriever', 'chat noir é')
    >>> printable("cat\\n  99.00 %  dog"), printable("\\x1b[2Jcat")
    ('cat\\\\n  99.00 %  dog', '\\\\x1b[2Jcat')

Nothing here imports the rest of the package, so every module can use it.
"""
from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with every non-printable character (``str.isprintable``: control characters,
    line and paragraph separators, bidirectional overrides, lone surrogates) written as its
    Python escape (``\\n``, ``\\x1b``, ``\\u202e``); printable text, spaces and letters of any
    script included, is returned unchanged."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)
