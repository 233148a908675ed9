"""Rain-rate transforms: rain rate in mm/h to the network's value range (about [0, 1]) and back.

Radar rain rates are heavily skewed (most wet pixels below 2 mm/h, cores above 50 mm/h), so networks are fed a
compressed value. Three kinds, each followed by an affine map ``model = (y - offset) / scale`` to about [0, 1]:

=========  =====================================================  ======================================
kind       ``y`` (rain rate ``R`` in mm/h)                        defaults (``R = 100 mm/h`` -> about 1)
=========  =====================================================  ======================================
``dbr``    ``10 log10 R`` (dBR) for ``R >= threshold``, else      ``threshold=0.1``,
           ``zero_value`` (a dBR value below the threshold's)     ``zero_value=10 log10(threshold) - 5``,
                                                                  ``offset=zero_value``,
                                                                  ``scale=20 - offset`` (so 0 rain -> 0)
``log1p``  ``log(1 + R)`` for ``R >= threshold``, else 0          ``threshold=0``, ``offset=0``,
                                                                  ``scale=log(101)``
``linear`` ``R`` for ``R >= threshold``, else 0                   ``threshold=0``, ``offset=0``,
                                                                  ``scale=100``
=========  =====================================================  ======================================

Conventions:

- A pixel rains when ``R >= threshold``; lighter rain (and negative values) is "no rain" and maps to the
  model-space value :attr:`RainRateTransform.no_rain_value` (``forward(0)``).
- :meth:`RainRateTransform.inverse` always returns mm/h >= 0: a value that decodes to less than ``threshold``
  mm/h (for ``dbr``: below the threshold's dBR, which includes ``zero_value``) gives exactly 0. Above the
  threshold ``inverse(forward(R)) == R`` up to float rounding.
- NaN (no data) passes through both ways as NaN; masking no-data pixels is the caller's job.
- numpy arrays (and anything ``np.asarray`` takes) come back as numpy arrays, torch tensors as tensors on the
  same device; floating dtypes are kept (float16 / bfloat16 are computed in float32), integer input gives
  float32. The torch path is differentiable (no in-place ops; the log is clamped, so no NaN/inf gradients).

This file travels with ``push_to_hub`` (the model's config stores the transform): it imports only numpy and torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

__all__ = ["RAIN_RATE_TRANSFORM_KINDS", "RainRateTransform"]

RAIN_RATE_TRANSFORM_KINDS = ("dbr", "log1p", "linear")
# The rain rate that maps to about 1 in model space with the default offset and scale.
_REFERENCE_RAIN_RATE = 100.0
_PARAMETERS = {
    "dbr": ("threshold", "zero_value", "offset", "scale"),
    "log1p": ("threshold", "offset", "scale"),
    "linear": ("threshold", "offset", "scale"),
}


def _number(name: str, value, *, kind: str) -> float:
    is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value):
        raise ValueError(f"RainRateTransform({kind!r}): {name} must be a finite number, got {value!r}")
    return float(value)


class RainRateTransform:
    """An invertible map between rain rate (mm/h) and model space (about [0, 1]); see the module docstring.

    Args:
        kind (`str`, *optional*, defaults to ``"dbr"``): ``"dbr"`` (10 log10 R), ``"log1p"`` (log(1 + R)) or
            ``"linear"`` (R).
        threshold (`float`, *optional*): mm/h; rain below it is "no rain". Defaults to 0.1 for ``dbr`` (must be
            > 0, the log needs it) and 0 for the others (must be >= 0).
        zero_value (`float`, *optional*): ``dbr`` only: the dBR given to "no rain"; must be below
            ``10 log10(threshold)``. Defaults to 5 dB below it (-15 dBR at the default threshold).
        offset (`float`, *optional*): subtracted from ``y`` before scaling. Defaults to ``zero_value`` for
            ``dbr`` (no rain -> 0) and 0 for the others.
        scale (`float`, *optional*): ``y - offset`` is divided by it; must be > 0. Defaults so that 100 mm/h maps
            to 1 (``20 - offset`` for ``dbr``, ``log(101)`` for ``log1p``, 100 for ``linear``).

    Example:
        ```python
        >>> transform = RainRateTransform("dbr")  # threshold 0.1 mm/h, zero value -15 dBR, 100 mm/h -> 1
        >>> values = transform.forward(rain_mm_h)  # numpy array or tensor, same shape
        >>> rain_again = transform.inverse(values)  # mm/h >= 0; below 0.1 mm/h -> 0
        >>> RainRateTransform.from_dict(transform.to_dict()) == transform
        True
        ```
    """

    def __init__(self, kind: str = "dbr", **params):
        if not isinstance(kind, str) or kind not in RAIN_RATE_TRANSFORM_KINDS:
            raise ValueError(
                f"RainRateTransform: kind must be one of {RAIN_RATE_TRANSFORM_KINDS}, got {kind!r}"
            )
        unknown = sorted(set(params) - set(_PARAMETERS[kind]))
        if unknown:
            raise TypeError(
                f"RainRateTransform({kind!r}) got unknown parameters {unknown}; it takes {list(_PARAMETERS[kind])}"
            )
        given = {name: _number(name, value, kind=kind) for name, value in params.items() if value is not None}
        self.kind = kind
        if kind == "dbr":
            threshold = given.get("threshold", 0.1)
            if threshold <= 0:
                raise ValueError(f"RainRateTransform('dbr'): threshold must be > 0 mm/h, got {threshold}")
            threshold_dbr = 10.0 * math.log10(threshold)
            zero_value = given.get("zero_value", threshold_dbr - 5.0)
            if zero_value >= threshold_dbr:
                raise ValueError(
                    f"RainRateTransform('dbr'): zero_value ({zero_value} dBR) must be below the threshold's dBR "
                    f"(10 log10({threshold}) = {threshold_dbr:.4g})"
                )
            self.zero_value = zero_value
            offset = given.get("offset", zero_value)
            scale = given.get("scale", 10.0 * math.log10(_REFERENCE_RAIN_RATE) - offset)
        else:
            threshold = given.get("threshold", 0.0)
            if threshold < 0:
                raise ValueError(f"RainRateTransform({kind!r}): threshold must be >= 0 mm/h, got {threshold}")
            offset = given.get("offset", 0.0)
            default_scale = math.log1p(_REFERENCE_RAIN_RATE) if kind == "log1p" else _REFERENCE_RAIN_RATE
            scale = given.get("scale", default_scale)
        if scale <= 0:
            raise ValueError(f"RainRateTransform({kind!r}): scale must be > 0, got {scale}")
        self.threshold = threshold
        self.offset = offset
        self.scale = scale

    # -- description ---------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """``{"kind": ..., <every parameter, resolved>: float}``: JSON-able, for configs."""
        return {"kind": self.kind, **{name: getattr(self, name) for name in _PARAMETERS[self.kind]}}

    @classmethod
    def from_dict(cls, values: Mapping) -> RainRateTransform:
        """The transform :meth:`to_dict` described (unknown kinds or keys raise, naming them)."""
        if isinstance(values, RainRateTransform):
            return values
        if not isinstance(values, Mapping) or "kind" not in values:
            raise ValueError(
                f"RainRateTransform.from_dict expects a mapping with a 'kind' key (and parameters), got {values!r}"
            )
        params = dict(values)
        return cls(params.pop("kind"), **params)

    def __eq__(self, other) -> bool:
        return isinstance(other, RainRateTransform) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.to_dict().items()))

    def __repr__(self) -> str:
        params = ", ".join(f"{name}={getattr(self, name):.6g}" for name in _PARAMETERS[self.kind])
        return f"{type(self).__name__}({self.kind!r}, {params})"

    @property
    def no_rain_value(self) -> float:
        """The model-space value of no rain (``forward(0)``): 0 for every kind at the default parameters."""
        y = self.zero_value if self.kind == "dbr" else 0.0
        return (y - self.offset) / self.scale

    # -- the maps ------------------------------------------------------------------------------------------

    def forward(self, rain_rate):
        """Rain rate (mm/h) to model space.

        Args:
            rain_rate: numpy array / torch tensor (or array-like) of any shape, mm/h; NaN stays NaN.

        Returns:
            the same type, shape (and device) as the input, float (see the module docstring for dtypes).
        """
        values, restore, xp = _as_float(rain_rate, "rain_rate")
        below = values < self.threshold
        if self.kind == "dbr":
            # Clamp before the log so dry pixels give neither -inf nor NaN gradients through the where.
            y = 10.0 * xp.log10(_clamp_min(values, self.threshold))
            y = xp.where(below, _full_like(y, self.zero_value), y)
        else:
            y = xp.where(below, _full_like(values, 0.0), values)
            if self.kind == "log1p":
                y = xp.log1p(y)
        return restore((y - self.offset) / self.scale)

    def inverse(self, values):
        """Model space back to rain rate in mm/h (>= 0; below the threshold exactly 0).

        Args:
            values: numpy array / torch tensor (or array-like) of any shape, e.g. the model's ``predictions``.

        Returns:
            mm/h, the same type, shape (and device) as the input, float.
        """
        values, restore, xp = _as_float(values, "values")
        y = values * self.scale + self.offset
        if self.kind == "dbr":
            rain = 10.0 ** (y / 10.0)
            below = y < 10.0 * math.log10(self.threshold)
        else:
            rain = xp.expm1(y) if self.kind == "log1p" else y
            below = rain < self.threshold
            # With threshold 0, only negative values are below it; anything decoding below 0 is no rain too.
            below = below | (rain <= 0)
        return restore(xp.where(below, _full_like(rain, 0.0), rain))

    __call__ = forward


def _as_float(values, name: str):
    """``(float values to compute with, a function restoring the caller's dtype, numpy or torch)``."""
    if isinstance(values, torch.Tensor):
        if values.dtype == torch.bool or values.is_complex():
            raise TypeError(f"{name} must hold real numbers (mm/h or model values), got dtype {values.dtype}")
        output_dtype = values.dtype if values.is_floating_point() else torch.float32
        work_dtype = torch.float64 if output_dtype == torch.float64 else torch.float32
        return values.to(work_dtype), (lambda result: result.to(output_dtype)), torch
    array = np.asarray(values)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"{name} must hold real numbers (mm/h or model values), got dtype {array.dtype}")
    output_dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.dtype(np.float32)
    work_dtype = np.float64 if output_dtype == np.float64 else np.float32
    return array.astype(work_dtype, copy=False), (lambda result: np.asarray(result, dtype=output_dtype)), np


def _clamp_min(values, minimum: float):
    if isinstance(values, torch.Tensor):
        return torch.clamp(values, min=minimum)
    return np.maximum(values, values.dtype.type(minimum))


def _full_like(values, fill: float):
    if isinstance(values, torch.Tensor):
        return torch.full_like(values, fill)
    return np.full_like(values, fill)
