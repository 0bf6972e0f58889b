"""minieffnet's own exceptions: one base class, one subclass per kind of bad input.

Every error the library raises on purpose is a :class:`MinieffnetError`, and that is a
``ValueError``, so code written against plain ``except ValueError`` keeps working. The command
line turns any of them into one line on stderr and exit status 2 (``--debug`` shows the
traceback).

====================  ===============================================================
``BadFileError``      a file read (checkpoint, image, data set, run file) is corrupt,
                      truncated, of another format, or holds a field it cannot; the
                      message starts with the file's path and names the field
``BadOptionError``    an option or argument value, or a combination of them, makes no
                      sense (``--cutout`` larger than the images, ``--top -3``)
``TooLargeError``     a network or batch whose estimated memory cannot fit this machine,
                      refused before anything is allocated
``NonFiniteError``    an array holds NaN or infinity (diverging activations, broken weights)
``NoForwardError``    ``backward`` without a successful ``forward`` to differentiate
====================  ===============================================================
"""
from __future__ import annotations


class MinieffnetError(ValueError):
    """Base of every error minieffnet raises on purpose (a ValueError)."""


class BadFileError(MinieffnetError):
    """A file minieffnet read is unusable; the message names the file and what is wrong."""


class BadOptionError(MinieffnetError):
    """An option value, or a combination of option values, makes no sense."""


class TooLargeError(MinieffnetError):
    """The estimated memory of a network or batch exceeds this machine's memory."""


class NonFiniteError(MinieffnetError):
    """An array holds NaN or infinity.

    Its own class lets the trainer tell diverging activations from other bad input.
    """


class NoForwardError(MinieffnetError):
    """``backward`` was called with no successful ``forward`` to differentiate."""
