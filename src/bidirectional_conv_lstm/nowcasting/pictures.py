"""Pictures of rain-rate nowcasts: radar frames in the usual rain-rate colour scale, strips, GIFs, scores vs lead time.

The colour scale follows the style of pysteps' "pysteps" colour map: discrete classes bounded by
:data:`RAIN_RATE_LEVELS` (0.1, 0.25, 0.4, 0.63, 1, 1.6, 2.5, 4, 6.3, 10, 16, 25, 40, 63, 100 mm/h, about 2 dB
apart), from lilac through blues and greens to yellow, orange and red, dark red above 100 mm/h; below
0.1 mm/h is no rain (white in strips and GIFs, transparent in matplotlib figures) and no-data pixels are grey.
Strips and GIFs are drawn with PIL (pixel-exact, no figure overhead) with a mm/h legend on the right; the
single-frame figure and the lead-time curves use matplotlib.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..utils.visualize import save_gif
from .tables import score_keys, score_value

__all__ = [
    "NO_DATA_COLOR",
    "RAIN_RATE_COLORS",
    "RAIN_RATE_LEVELS",
    "legend_image",
    "plot_scores_by_lead_time",
    "radar_strip",
    "rain_rate_colormap",
    "rain_rate_to_rgb",
    "save_radar_gif",
    "save_radar_strip",
    "save_rain_rate_figure",
]

RAIN_RATE_LEVELS = (0.1, 0.25, 0.4, 0.63, 1.0, 1.6, 2.5, 4.0, 6.3, 10.0, 16.0, 25.0, 40.0, 63.0, 100.0)
# One colour per class [level i, level i+1), then the colour above the last level.
RAIN_RATE_COLORS = (
    "#cbb8dc", "#a070c0", "#7a3aa6", "#3c3cc8", "#1f6fff", "#00a0b4", "#14b446",
    "#6ee614", "#c8f01e", "#fff000", "#ffc300", "#ff8c00", "#f04b00", "#c80a0a",
)  # fmt: skip
ABOVE_COLOR = "#6e0000"
NO_RAIN_COLOR = (255, 255, 255)
NO_DATA_COLOR = (170, 170, 170)
_GAP = 2
_LABEL_WIDTH = 84
_HEADER = 14


def _hex_to_rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))


# Lookup table indexed by np.digitize(R, levels): 0 below the first level, 1..14 the classes, 15 above 100 mm/h.
_LUT = np.array(
    [NO_RAIN_COLOR, *map(_hex_to_rgb, RAIN_RATE_COLORS), _hex_to_rgb(ABOVE_COLOR)], dtype=np.uint8
)


def rain_rate_colormap():
    """``(cmap, norm)`` for matplotlib: a ``ListedColormap`` of the classes and its ``BoundaryNorm``.

    Under the first level is transparent, over the last dark red, bad (NaN / masked: no data) grey. Use as
    ``ax.imshow(np.ma.masked_invalid(R), cmap=cmap, norm=norm)``.
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap

    cmap = ListedColormap(list(RAIN_RATE_COLORS), name="rain_rate").with_extremes(
        under=(1.0, 1.0, 1.0, 0.0), over=ABOVE_COLOR, bad=tuple(c / 255 for c in NO_DATA_COLOR)
    )
    return cmap, BoundaryNorm(list(RAIN_RATE_LEVELS), cmap.N)


def _numpy(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().float().cpu().numpy()
    return np.asarray(array)


def rain_rate_to_rgb(rain_rate, valid=None) -> np.ndarray:
    """Rain rate in mm/h (..., H, W), numpy or torch -> uint8 RGB (..., H, W, 3) in the rain-rate colours.

    Below 0.1 mm/h is white; NaN or ``valid`` False is grey (no data).
    """
    rain_rate = _numpy(rain_rate).astype(np.float32)
    rgb = _LUT[np.digitize(np.nan_to_num(rain_rate, nan=0.0), RAIN_RATE_LEVELS)]
    missing = np.isnan(rain_rate)
    if valid is not None:
        valid = _numpy(valid).astype(bool)
        if valid.shape != rain_rate.shape:
            raise ValueError(f"valid has shape {valid.shape}, expected the rain rate's {rain_rate.shape}")
        missing |= ~valid
    rgb[missing] = NO_DATA_COLOR
    return rgb


def legend_image(height: int, *, width: int = 76) -> Image.Image:
    """The mm/h legend: one box per class with its lower bound, "no data" and "mm/h" (an RGB image)."""
    labels = [("no data", NO_DATA_COLOR)]
    labels += [(f"{level:g}", _hex_to_rgb(color)) for level, color in zip(RAIN_RATE_LEVELS, RAIN_RATE_COLORS)]
    labels.append((f">{RAIN_RATE_LEVELS[-1]:g}", _hex_to_rgb(ABOVE_COLOR)))
    box = max(6, min(14, (height - _HEADER) // len(labels)))
    image = Image.new("RGB", (width, max(height, _HEADER + box * len(labels))), "white")
    draw = ImageDraw.Draw(image)
    draw.text((4, 1), "mm/h", fill="black")
    for index, (label, color) in enumerate(reversed(labels)):
        top = _HEADER + index * box
        draw.rectangle([4, top, 4 + box - 1, top + box - 2], fill=color, outline=(90, 90, 90))
        draw.text((8 + box, top + box // 2 - 6), label, fill="black")
    return image


def _frames(array, name: str) -> np.ndarray:
    array = _numpy(array)
    if array.ndim == 4 and array.shape[1] == 1:  # (T, 1, H, W), the stored layout
        array = array[:, 0]
    if array.ndim != 3:
        raise ValueError(f"{name} must be frames (T, H, W) of one sample, got shape {array.shape}")
    return array


def _tile(frames: np.ndarray, valid, scale: int) -> Image.Image:
    """Frames (T, H, W) side by side, each pixel ``scale`` x ``scale``, ``_GAP`` white columns between them."""
    rgb = rain_rate_to_rgb(frames, valid)
    if scale != 1:
        rgb = rgb.repeat(scale, axis=1).repeat(scale, axis=2)
    count, height, width, _ = rgb.shape
    canvas = np.full((height, count * (width + _GAP) - _GAP, 3), 255, dtype=np.uint8)
    for index, frame in enumerate(rgb):
        canvas[:, index * (width + _GAP) : index * (width + _GAP) + width] = frame
    return Image.fromarray(canvas)


def _lead_label(step: int, timestep_minutes: float | None) -> str:
    return f"{step * timestep_minutes:+g} min" if timestep_minutes else f"{step:+d}"


def radar_strip(
    observed,
    truth,
    forecasts: Mapping[str, object],
    *,
    observed_valid=None,
    truth_valid=None,
    timestep_minutes: float | None = None,
    lead_times: Iterable[int] | None = None,
    scale: int = 1,
) -> Image.Image:
    """One sample as an RGB sheet: a row of observed frames, a row of the true future (when known) and one row
    per method's forecast, in the rain-rate colours, with lead times above and the mm/h legend on the right.

    Args:
        observed: mm/h (T_in, H, W) (or (T_in, 1, H, W)), numpy or torch.
        truth: mm/h (T_out, H, W), or None.
        forecasts: ``{method name: mm/h (T_out, H, W)}``.
        observed_valid, truth_valid: optional bool masks; the truth's no-data pixels are grey in every
            forecast row too (they are not scored).
        timestep_minutes: frame step, to label lead times in minutes.
        lead_times: the future frames shown (1-based, e.g. ``(3, 6, 9, 12)``); default all.
        scale: enlarge every pixel ``scale`` times.
    """
    observed = _frames(observed, "observed")
    mask = None if truth_valid is None else _frames(truth_valid, "truth_valid")
    future = {"truth": _frames(truth, "truth")} if truth is not None else {}
    future.update({name: _frames(forecast, f"forecasts[{name!r}]") for name, forecast in forecasts.items()})
    num_future = min((len(frames) for frames in future.values()), default=0)
    steps = list(range(1, num_future + 1)) if lead_times is None else [int(step) for step in lead_times]
    if any(not 1 <= step <= num_future for step in steps):
        raise ValueError(f"lead_times must be in 1..{num_future} (the future frames), got {steps}")
    index = np.array(steps, dtype=np.int64) - 1
    rows = [("observed", list(range(1 - len(observed), 1)), _tile(observed, observed_valid, scale))]
    for name, frames in future.items():
        rows.append((name, steps, _tile(frames[index], None if mask is None else mask[index], scale)))
    frame_width = observed.shape[-1] * scale + _GAP
    width = _LABEL_WIDTH + max(image.width for *_, image in rows)
    height = sum(_HEADER + image.height + _GAP for *_, image in rows)
    legend = legend_image(height)
    sheet = Image.new("RGB", (width + _GAP * 4 + legend.width, max(height, legend.height)), "white")
    draw = ImageDraw.Draw(sheet)
    top = 0
    for label, labels, image in rows:
        for column, step in enumerate(labels):
            text = _lead_label(step, timestep_minutes)
            draw.text((_LABEL_WIDTH + column * frame_width, top + 1), text, fill="black")
        sheet.paste(image, (_LABEL_WIDTH, top + _HEADER))
        draw.text((2, top + _HEADER + image.height // 2 - 6), label[:13], fill="black")
        top += _HEADER + image.height + _GAP
    sheet.paste(legend, (width + _GAP * 4, 0))
    return sheet


def save_radar_strip(observed, truth, forecasts, path: str | os.PathLike, **kwargs) -> Path:
    """Save :func:`radar_strip` as a PNG (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    radar_strip(observed, truth, forecasts, **kwargs).save(path)
    return path


def save_radar_gif(
    observed,
    truth,
    forecasts: Mapping[str, object],
    path: str | os.PathLike,
    *,
    observed_valid=None,
    truth_valid=None,
    timestep_minutes: float | None = None,
    scale: int = 2,
    duration_ms: int = 300,
) -> Path:
    """A looping GIF: panels side by side (truth, then each method), the observed frames first (every panel
    shows them), then the forecasts against the truth, with the lead time on top and the mm/h legend.

    Arguments as in :func:`radar_strip`; ``truth`` may be None (then only the forecasts are shown).
    """
    observed = _frames(observed, "observed")
    panels = {"truth": _frames(truth, "truth")} if truth is not None else {}
    panels.update({name: _frames(forecast, f"forecasts[{name!r}]") for name, forecast in forecasts.items()})
    if not panels:
        raise ValueError("nothing to animate: truth is None and forecasts is empty")
    mask = None if truth_valid is None else _frames(truth_valid, "truth_valid")
    in_mask = None if observed_valid is None else _frames(observed_valid, "observed_valid")
    num_future = min(len(frames) for frames in panels.values())
    height, width = observed.shape[-2] * scale, observed.shape[-1] * scale
    legend = legend_image(height + _HEADER * 2)
    images = []
    for step in range(-len(observed) + 1, num_future + 1):
        sheet = Image.new("RGB", ((width + _GAP) * len(panels) + legend.width, legend.height), "white")
        draw = ImageDraw.Draw(sheet)
        for index, (name, frames) in enumerate(panels.items()):
            if step <= 0:
                frame, valid = observed[step - 1], None if in_mask is None else in_mask[step - 1]
            else:
                frame, valid = frames[step - 1], None if mask is None else mask[step - 1]
            tile = _tile(frame[None], None if valid is None else valid[None], scale)
            sheet.paste(tile, (index * (width + _GAP), _HEADER * 2))
            draw.text((index * (width + _GAP) + 2, 0), name[:12], fill="black")
        label = _lead_label(step, timestep_minutes) + (" observed" if step <= 0 else "")
        draw.text((2, _HEADER), label, fill="black")
        sheet.paste(legend, (sheet.width - legend.width, 0))
        images.append(np.asarray(sheet))
    # save_gif takes (T, C, H, W) in [0, 1]; uint8 / 255 rounds back to the same colours.
    frames = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return save_gif(frames, path, duration_ms=duration_ms, scale=1)


def save_rain_rate_figure(
    rain_rate, path: str | os.PathLike, *, valid=None, title: str | None = None, pixel_km: float | None = None
) -> Path:
    """One radar frame (H, W) mm/h as a matplotlib PNG with a mm/h colour bar (no data grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rain_rate = _numpy(rain_rate).astype(np.float32)
    if rain_rate.ndim != 2:
        raise ValueError(f"rain_rate must be one frame (H, W), got shape {rain_rate.shape}")
    missing = np.isnan(rain_rate) if valid is None else np.isnan(rain_rate) | ~_numpy(valid).astype(bool)
    cmap, norm = rain_rate_colormap()
    figure, axis = plt.subplots(figsize=(6, 5))
    extent = None
    if pixel_km:
        extent = (0, rain_rate.shape[1] * pixel_km, rain_rate.shape[0] * pixel_km, 0)
        axis.set_xlabel("km")
    image = axis.imshow(
        np.ma.masked_array(rain_rate, mask=missing),
        cmap=cmap,
        norm=norm,
        interpolation="nearest",
        extent=extent,
    )
    colorbar = figure.colorbar(image, ax=axis, extend="max", ticks=list(RAIN_RATE_LEVELS), shrink=0.85)
    colorbar.set_label("rain rate (mm/h)")
    colorbar.ax.set_yticklabels([f"{level:g}" for level in RAIN_RATE_LEVELS])
    if title:
        axis.set_title(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def _score_title(key: str) -> str:
    """``csi@0.5`` -> ``CSI, 0.5 mm/h``; ``fss@1/16`` -> ``FSS, 1 mm/h, 16 px``; ``csi_m`` -> ``CSI_M``."""
    name, _, rest = key.partition("@")
    if not rest:
        return name.upper()
    threshold, _, window = rest.partition("/")
    return f"{name.upper()}, {threshold} mm/h" + (f", {window} px" if window else "")


def plot_scores_by_lead_time(
    results: Mapping,
    path: str | os.PathLike,
    *,
    scores: Iterable[str] | None = None,
    highlight: Iterable[str] = ("model",),
) -> Path:
    """Each score against lead time, one line per method (methods named in ``highlight`` drawn thicker).

    Args:
        results: the dict of :func:`bidirectional_conv_lstm.nowcasting.evaluation.evaluate_nowcasts`.
        path: the PNG to write.
        scores: score keys, one panel each (default: CSI at every threshold up to 2 mm/h, and FSS at 1 mm/h
            on the largest window).
        highlight: methods to emphasise (the model beside its baselines).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = results["methods"]
    if scores is None:
        csi_keys, fss_keys = score_keys(next(iter(methods.values()))["overall"])
        scores = [key for threshold, key in csi_keys if threshold <= 2] or [key for _, key in csi_keys[:1]]
        scores += [key for threshold, _, key in fss_keys if np.isclose(threshold, 1.0)][-1:]
    scores = list(scores)
    if not scores:
        raise ValueError("no scores to plot: results has no csi@/fss@ keys and scores was not given")
    step = results.get("timestep_minutes")
    num_lead = int(results["num_output_frames"])
    lead = np.arange(1, num_lead + 1) * (step or 1)
    highlight = set(highlight)
    figure, axes = plt.subplots(1, len(scores), figsize=(3.6 * len(scores), 3.2), squeeze=False)
    for axis, key in zip(axes[0], scores):
        for name, values in methods.items():
            series = [score_value(values, key, index) for index in range(1, num_lead + 1)]
            strong = name in highlight
            axis.plot(lead, series, marker="o", markersize=3, label=name, linewidth=2.6 if strong else 1.3)
        axis.set_xlabel("lead time (min)" if step else "lead time (frames)")
        axis.set_title(_score_title(key))
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
