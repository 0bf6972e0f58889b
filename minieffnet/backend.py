"""The one dispatch point that chooses how an op is computed.

Three backends sit behind the same public ops of :mod:`minieffnet.ops`:

* ``"numpy"``: the plain NumPy *reference* of every op (readable; what the lessons show);
* ``"numba"`` (default): Numba CPU kernels, where speed matters;
* ``"cuda"``: ``numba.cuda`` kernels for the ops that have them (the depthwise convolution's
  forward and backward). Every other op runs its Numba path under ``"cuda"``, which is what
  makes ``with use_backend("cuda"): model(x)`` work: the depthwise convolutions run on the
  GPU, everything else on the CPU cores.

Tests hold the backends equal. The public op functions ask :func:`pick` which one to run::

    >>> import minieffnet as me
    >>> me.get_backend()
    'numba'
    >>> with me.use_backend("numpy"):      # the reference, e.g. to compare in a lesson
    ...     out, cache = me.ops.swish_forward(x)

Caches are implementation-agnostic (plain NumPy arrays), so a forward run under one backend
can be followed by a backward under another.

``"cuda"`` needs ``numba-cuda`` and an NVIDIA GPU, or Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1`` set before numba is first imported; exact but slow, for tests
and lessons). Selecting it without them raises a RuntimeError that says which is missing.
``numba.cuda`` is imported only then: it takes about 0.2 s, as long as the rest of
``import minieffnet``.
"""
from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

BACKENDS = ("numpy", "numba", "cuda")
_current = "numba"

F = TypeVar("F", bound=Callable)


def get_backend() -> str:
    """Name of the active backend: ``"numpy"``, ``"numba"`` (default) or ``"cuda"``."""
    return _current


def unavailable_reason(name: str) -> str | None:
    """Why backend ``name`` cannot run on this machine, or None when it can.

    ``"numpy"`` and ``"numba"`` always can; ``"cuda"`` needs numba-cuda and a GPU, or the
    simulator. Importing numba.cuda to find out is deferred to this call.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    if name != "cuda":
        return None
    if importlib.util.find_spec("numba_cuda") is None:
        return ("numba-cuda is not installed (pip install numba-cuda, or minieffnet[cuda]; "
                "numba's built-in CUDA target is deprecated)")
    from numba import config, cuda

    if cuda.is_available():
        return None
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" and not config.ENABLE_CUDASIM:
        return ("NUMBA_ENABLE_CUDASIM=1 was set after numba was imported, so the CUDA "
                "simulator is off; set it before numba is first imported")
    return ("no CUDA GPU found (numba.cuda.is_available() is False); to run the kernels in "
            "Numba's CUDA simulator instead, set NUMBA_ENABLE_CUDASIM=1 before importing numba")


def set_backend(name: str) -> None:
    """Select the implementation used by every op from now on.

    Raises ValueError for an unknown name and RuntimeError, naming what is missing, for a
    backend this machine cannot run (see :func:`unavailable_reason`).
    """
    global _current
    if name not in BACKENDS:
        raise ValueError(f"set_backend: unknown backend {name!r}; choose one of {BACKENDS}")
    reason = unavailable_reason(name)
    if reason is not None:
        raise RuntimeError(f"set_backend({name!r}): {reason}")
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


def pick(reference: F, numba: F, cuda: F | None = None) -> F:
    """The implementation for the active backend.

    ``reference`` under numpy; ``numba`` under numba; under cuda, ``cuda`` when the op has a
    CUDA implementation and ``numba`` otherwise.
    """
    if _current == "numpy":
        return reference
    if _current == "cuda" and cuda is not None:
        return cuda
    return numba
