"""A :class:`~bidirectional_conv_lstm.data.radar.archive.RadarSequence` as an ``xarray.DataArray`` ``(time, y, x)``
in mm/h: the layout pysteps 2 and most radar libraries use, and what ``model.forecast_rain_rate`` takes.

The grid comes from pysteps' metadata: the corners ``x1, y1, x2, y2`` and the pixel sizes ``xpixelsize`` /
``ypixelsize`` (in ``cartesian_unit``, metres unless it says ``km``) give the pixel centres; ``yorigin="upper"``
means row 0 is the top of the map, so ``y`` decreases down the rows.
"""

from __future__ import annotations

import re

import numpy as np
import xarray

from ...models.convlstm.georeferencing_convlstm import METRES_PER
from .archive import RadarSequence

__all__ = ["projection_in_metres", "radar_sequence_to_data_array"]

# Metadata carried as attributes: the projection, who made the data, and what it was before conversion.
_CARRIED = (
    "projection",
    "crs_wkt",
    "institution",
    "xpixelsize",
    "ypixelsize",
    "accutime",
    "native_unit",
    "zr_a",
    "zr_b",
    "importer",
)


def radar_sequence_to_data_array(sequence: RadarSequence) -> xarray.DataArray:
    """The rain rate of `sequence` as a DataArray named ``precip_intensity``.

    Args:
        sequence: a :class:`RadarSequence` (e.g. from :func:`read_radar_archive`).

    Returns:
        float32 ``(time, y, x)`` mm/h, NaN = no data, with coords ``time`` (datetime64[ns], when the sequence has
        timestamps) and, when the metadata holds the grid (``x1, y1, x2, y2``, pixel sizes, ``yorigin``), ``x`` /
        ``y`` pixel centres in metres; attrs ``units="mm h-1"``, ``projection`` (proj4, as pysteps writes it) or
        ``crs_wkt`` and the other scalar metadata pysteps reports (``institution``, ``xpixelsize`` in metres, ...).
        The array shares memory with ``sequence.rain_rate``.

    Raises:
        TypeError: `sequence` is not a RadarSequence.
        ValueError: grid metadata that does not match the frames' shape.
    """
    if not isinstance(sequence, RadarSequence):
        raise TypeError(f"sequence must be a RadarSequence, got {type(sequence).__name__}")
    _, height, width = sequence.rain_rate.shape
    coords = {}
    if sequence.timestamps is not None:
        coords["time"] = ("time", np.array(sequence.timestamps, dtype="datetime64[ns]"))
    grid = _grid(sequence.metadata, height, width, sequence.name)
    if grid is not None:
        x, y = grid
        coords["x"] = ("x", x, {"units": "m", "standard_name": "projection_x_coordinate"})
        coords["y"] = ("y", y, {"units": "m", "standard_name": "projection_y_coordinate"})
    scale = METRES_PER.get(sequence.metadata.get("cartesian_unit", "m"), 1.0)
    attrs = {"units": "mm h-1", "long_name": "precipitation intensity", "event": sequence.name}
    for key in _CARRIED:
        value = sequence.metadata.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
            attrs[key] = value * scale if key in ("xpixelsize", "ypixelsize") else value
    if "projection" in attrs and scale != 1.0:
        attrs["projection"] = projection_in_metres(attrs["projection"], scale)
    if sequence.timestep is not None:
        attrs["timestep"] = float(sequence.timestep)
    return xarray.DataArray(
        sequence.rain_rate, dims=("time", "y", "x"), coords=coords, attrs=attrs, name="precip_intensity"
    )


def projection_in_metres(projection: str, scale: float) -> str:
    """A proj4 `projection` whose lengths are in units of `scale` metres (pysteps' KNMI importer writes the ellipsoid
    in km, ``+a=6378.137``, to match its km grid) with its lengths in metres, to match ``x`` / ``y`` in metres."""

    def to_metres(match: re.Match) -> str:
        return f"+{match.group(1)}={float(match.group(2)) * scale:.12g}"

    in_metres = re.sub(r"\+(a|b|R|x_0|y_0)=([-+0-9.eE]+)", to_metres, projection)
    return re.sub(r"\+units=\S+", "+units=m", in_metres)


def _grid(metadata: dict, height: int, width: int, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Pixel centres ``(x (W,), y (H,))`` in metres from pysteps' grid metadata, or None when it is not there."""
    corners = [metadata.get(key) for key in ("x1", "y1", "x2", "y2")]
    if any(not isinstance(value, (int, float)) for value in corners):
        return None
    x1, y1, x2, y2 = (float(value) for value in corners)
    xsize = float(metadata.get("xpixelsize") or (x2 - x1) / width)
    ysize = float(metadata.get("ypixelsize") or (y2 - y1) / height)
    for axis, extent, size, count in (("x", x2 - x1, xsize, width), ("y", y2 - y1, ysize, height)):
        if abs(extent - size * count) > 0.5 * size:
            raise ValueError(
                f"RadarSequence {name!r}: its metadata's {axis} extent ({extent:g}) is not {count} pixels of "
                f"{axis}pixelsize={size:g}, the frames' {'width' if axis == 'x' else 'height'}"
            )
    scale = METRES_PER.get(metadata.get("cartesian_unit", "m"))
    if scale is None:
        raise ValueError(
            f"RadarSequence {name!r}: cartesian_unit {metadata.get('cartesian_unit')!r}; expected 'm' or 'km'"
        )
    x = x1 + (np.arange(width) + 0.5) * xsize
    if metadata.get("yorigin", "upper") == "upper":
        y = y2 - (np.arange(height) + 0.5) * ysize
    else:
        y = y1 + (np.arange(height) + 0.5) * ysize
    return x * scale, y * scale
