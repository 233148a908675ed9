"""The package's one integer check: what it accepts, what it refuses and how it says so."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import bidirectional_conv_lstm
from bidirectional_conv_lstm.models.convlstm.argument_checks import NotAnIntError, check_int


def test_accepts_python_and_numpy_integers_as_python_ints():
    assert check_int("n", 3) == 3 and type(check_int("n", np.int64(3))) is int
    assert check_int("seed", 0, minimum=0) == 0


@pytest.mark.parametrize(
    ("value", "minimum", "error", "message"),
    [
        (0, 1, ValueError, "n must be a positive int, got 0"),
        (-1, 0, ValueError, "n must be an int >= 0, got -1"),
        (7, 8, ValueError, "n must be an int >= 8, got 7"),
        (2.0, 1, NotAnIntError, r"n must be a positive int, got 2.0 \(float\)"),
        (True, 1, NotAnIntError, r"n must be a positive int, got True \(bool\)"),
        ("3", 0, NotAnIntError, r"n must be an int >= 0, got '3' \(str\)"),
    ],
)
def test_refuses_with_a_message_naming_the_argument_value_and_expectation(value, minimum, error, message):
    with pytest.raises(error, match=message):
        check_int("n", value, minimum=minimum)


def test_a_value_of_the_wrong_type_is_a_type_error_and_a_value_error():
    assert issubclass(NotAnIntError, TypeError) and issubclass(NotAnIntError, ValueError)


def test_no_module_writes_its_own_int_check():
    """One check for the package: no other module spells out its messages."""
    package = Path(bidirectional_conv_lstm.__file__).parent
    simple_check = re.compile(r"must be (a positive int|an int >= \S+|an int|>= 1),? got")
    copies = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "argument_checks.py" and simple_check.search(path.read_text())
    ]
    assert copies == []
