"""The one dispatch point that chooses how an op is computed.

Every op in :mod:`minieffnet.ops` has a plain NumPy *reference* (readable; what the lessons
show) and, where speed matters, a *Numba* fast path. Tests hold the two equal. The public op
functions ask :func:`pick` which one to run::

    >>> import minieffnet as me
    >>> me.get_backend()
    'numba'
    >>> with me.use_backend("numpy"):      # the reference, e.g. to compare in a lesson
    ...     out, cache = me.ops.swish_forward(x)

Caches are implementation-agnostic (plain arrays), so a forward run under one backend can be
followed by a backward under the other.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

BACKENDS = ("numpy", "numba")
_current = "numba"

F = TypeVar("F", bound=Callable)


def get_backend() -> str:
    """Name of the active backend: ``"numpy"`` (reference) or ``"numba"`` (fast, default)."""
    return _current


def set_backend(name: str) -> None:
    """Select the implementation used by every op from now on."""
    global _current
    if name not in BACKENDS:
        raise ValueError(f"set_backend: unknown backend {name!r}; choose one of {BACKENDS}")
    _current = name


@contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Temporarily select a backend inside a ``with`` block."""
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def pick(reference: F, fast: F) -> F:
    """Return ``fast`` under the numba backend, ``reference`` under numpy."""
    return fast if _current == "numba" else reference
