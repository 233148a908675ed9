"""Argument checks shared by the data builders, so one kind of bad value gets one message everywhere."""

from __future__ import annotations

import numpy as np

__all__ = ["check_int"]


def check_int(name: str, value, *, minimum: int = 1) -> int:
    """``value`` as a Python int.

    Raises:
        TypeError: ``value`` is not an int (a bool is not one; numpy integers are).
        ValueError: it is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)
