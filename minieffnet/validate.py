"""What counts as an integer and as a finite number, and the argument checks built on them.

One definition for the whole package (the network builder, the training configuration and
the checkpoint readers): Python's and NumPy's numbers alike (``np.integer`` is a
``numbers.Integral``, ``np.floating`` a ``numbers.Real``), never a bool. Python counts
``True`` as the integer 1, but ``epochs=True`` or ``"width": true`` in a stored config is a
mistake, not a value.

    >>> import numpy as np
    >>> is_int(np.int64(3)), is_int(True), is_real(np.float32(0.5)), is_real(float("nan"))
    (True, False, True, False)
    >>> check_count("num_classes", 10)        # the value, or BadOptionError naming the argument
    10

The checks raise :class:`~minieffnet.errors.BadOptionError` (a ValueError). Nothing here
imports the rest of the package but :mod:`minieffnet.errors`, so every module can use it.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

from .errors import BadOptionError


def is_int(v: Any) -> bool:
    """Whether ``v`` is an integer (``int``, ``np.integer``), not a bool."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_real(v: Any) -> bool:
    """Whether ``v`` is a finite real number (``int``, ``float``, NumPy's), not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def check_real(name: str, value: Any) -> Any:
    """``value`` if it is a finite number (:func:`is_real`); else BadOptionError naming
    ``name``."""
    if not is_real(value):
        raise BadOptionError(f"{name} must be a finite number, got {value!r}")
    return value


def check_positive(name: str, value: Any) -> Any:
    """``value`` if it is a finite number > 0; else BadOptionError naming ``name``."""
    if check_real(name, value) <= 0:
        raise BadOptionError(f"{name} must be positive, got {value!r}")
    return value


def check_rate(name: str, value: Any) -> float:
    """``value`` as a float if it is a rate in [0, 1); else BadOptionError naming ``name``."""
    if not 0 <= check_real(name, value) < 1:
        raise BadOptionError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def check_count(name: str, value: Any) -> int:
    """``value`` as an int if it is an integer >= 1 (:func:`is_int`); else BadOptionError naming
    ``name``."""
    if not is_int(value) or value < 1:
        # a bool or a count below 1 is an integer of the wrong kind; 2.5 or "3" none at all
        what = "a positive integer" if isinstance(value, numbers.Integral) else "an integer"
        raise BadOptionError(f"{name} must be {what}, got {value!r}")
    return int(value)
