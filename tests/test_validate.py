"""The package's one definition of an integer and of a finite number: Python's and NumPy's
numbers alike, never a bool; the checks built on them name the argument."""
import numpy as np
import pytest

from minieffnet.validate import (check_count, check_positive, check_rate, check_real, is_int,
                                 is_real)


@pytest.mark.parametrize("value, integer, real", [
    (3, True, True), (np.int64(3), True, True), (np.uint8(3), True, True),
    (2.5, False, True), (np.float32(2.5), False, True), (np.float64(2.5), False, True),
    (True, False, False), (np.bool_(True), False, False),
    (float("nan"), False, False), (float("inf"), False, False), (np.float32("inf"), False, False),
    ("3", False, False), (None, False, False),
])
def test_integers_and_reals_are_pythons_and_numpys_but_never_bools(value, integer, real):
    assert is_int(value) is integer and is_real(value) is real


def test_checks_return_the_value_or_name_the_argument():
    assert check_count("n", np.int64(4)) == 4 and type(check_count("n", np.int64(4))) is int
    assert check_real("x", -1.5) == -1.5 and check_positive("x", np.float32(2)) == 2
    assert check_rate("p", 0) == 0.0 and type(check_rate("p", 0)) is float
    for check, value, message in [
            (check_count, True, "n must be a positive integer, got True"),
            (check_count, 0, "n must be a positive integer, got 0"),
            (check_count, 2.5, "n must be an integer, got 2.5"),
            (check_real, False, "n must be a finite number, got False"),
            (check_positive, 0.0, "n must be positive, got 0.0"),
            (check_rate, 1.0, r"n must be in \[0, 1\), got 1.0")]:
        with pytest.raises(ValueError, match=message):
            check("n", value)
