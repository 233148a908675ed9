"""The package's one check of integer arguments (counts, sizes, seeds), with one message for each bad value.

This file travels with every saved model as remote code (the layer, the configuration, the processor and the
pipeline use it), so it imports the standard library alone; the rest of the package imports it from here.
"""

import numbers

__all__ = ["NotAnIntError", "check_int"]


class NotAnIntError(TypeError, ValueError):
    """An argument that must be an int is not one. A ``TypeError``, and a ``ValueError`` too, for callers that
    catch every bad argument value as ``ValueError``."""


def check_int(name: str, value, *, minimum: int = 1) -> int:
    """`value` as a Python int, once it is an integer (Python or numpy; a bool is not one) >= `minimum`.

    Both errors' messages name `name`, the value and what was expected: "a positive int" (`minimum` 1) or
    "an int >= minimum".

    Raises:
        NotAnIntError: `value` is not an integer.
        ValueError: it is below `minimum`.
    """
    expected = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise NotAnIntError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)
