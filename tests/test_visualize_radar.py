"""Rain-rate colour scale, strips, GIFs, the single-frame figure and the lead-time curves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bidirectional_conv_lstm.nowcasting.pictures import (
    ABOVE_COLOR,
    NO_DATA_COLOR,
    RAIN_RATE_COLORS,
    RAIN_RATE_LEVELS,
    plot_scores_by_lead_time,
    radar_strip,
    rain_rate_colormap,
    rain_rate_to_rgb,
    save_radar_gif,
    save_rain_rate_figure,
)


def rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))


def colours_in(image: Image.Image) -> set[tuple[int, int, int]]:
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    return {tuple(int(v) for v in pixel) for pixel in np.unique(pixels, axis=0)}


def test_rain_rate_classes_match_the_matplotlib_colormap():
    # One value inside each class, one below the first level, one above the last.
    values = np.array([0.05, *[(a + b) / 2 for a, b in zip(RAIN_RATE_LEVELS, RAIN_RATE_LEVELS[1:])], 150.0])
    image = rain_rate_to_rgb(torch.tensor(values, dtype=torch.float32)[None])[0]
    assert tuple(image[0]) == (255, 255, 255)
    assert [tuple(pixel) for pixel in image[1:-1]] == [rgb(color) for color in RAIN_RATE_COLORS]
    assert tuple(image[-1]) == rgb(ABOVE_COLOR)
    cmap, norm = rain_rate_colormap()
    expected = np.rint(cmap(norm(values))[:, :3] * 255).astype(np.uint8)
    np.testing.assert_array_equal(image[1:], expected[1:])
    assert cmap(norm(values))[0, 3] == 0  # transparent below the rain threshold
    # Class edges are inclusive below, as BoundaryNorm's: 1.0 belongs to [1, 1.6).
    assert tuple(rain_rate_to_rgb(np.array([[1.0]]))[0, 0]) == rgb(RAIN_RATE_COLORS[4])
    with_gaps = rain_rate_to_rgb(np.array([[np.nan, 5.0, 5.0]]), np.array([[True, True, False]]))
    assert tuple(with_gaps[0, 0]) == tuple(with_gaps[0, 2]) == NO_DATA_COLOR


def frames(count: int, value: float, size: int = 16) -> np.ndarray:
    return np.full((count, size, size), value, dtype=np.float32)


def test_strip_rows_pixels_and_legend():
    observed, truth = frames(3, 5.0), frames(4, 0.0)
    truth_valid = np.ones(truth.shape, dtype=bool)
    truth_valid[:, :, :8] = False  # left half without data
    forecasts = {"persistence": frames(4, 5.0), "model": frames(4, 20.0)}
    sheet = radar_strip(observed, truth, forecasts, truth_valid=truth_valid, timestep_minutes=5, scale=2)
    pixels = np.asarray(sheet)
    colour_5, colour_20 = rgb(RAIN_RATE_COLORS[7]), rgb(RAIN_RATE_COLORS[10])  # [4, 6.3), [16, 25)
    # Four rows (observed, truth, two methods), 32-pixel frames below 14-pixel headers, 84-pixel label column.
    row_top = [14 + index * (14 + 32 + 2) for index in range(4)]
    left, right = 84 + 20, 84 + 3  # a pixel in the right and one in the left half of the first frame
    assert tuple(pixels[row_top[0] + 5, left]) == colour_5
    assert tuple(pixels[row_top[1] + 5, left]) == (255, 255, 255)  # no rain
    assert tuple(pixels[row_top[1] + 5, right]) == NO_DATA_COLOR
    assert tuple(pixels[row_top[2] + 5, left]) == colour_5
    assert tuple(pixels[row_top[3] + 5, left]) == colour_20
    assert tuple(pixels[row_top[3] + 5, right]) == NO_DATA_COLOR  # the truth's no data masks forecasts too
    # The legend, right of the frames, shows every class colour (plus no data and above 100 mm/h).
    legend = Image.fromarray(pixels[:, 84 + 4 * (32 + 2) + 6 :])
    found = colours_in(legend)
    assert {rgb(color) for color in RAIN_RATE_COLORS} | {NO_DATA_COLOR, rgb(ABOVE_COLOR)} <= found
    # Only the chosen lead times: two future frames per row, labelled +10 and +20 min.
    narrow = radar_strip(observed, truth, forecasts, timestep_minutes=5, lead_times=(2, 4), scale=2)
    assert narrow.width == sheet.width - (32 + 2) and narrow.height == sheet.height
    with pytest.raises(ValueError, match="lead_times"):
        radar_strip(observed, truth, forecasts, lead_times=(5,))
    with pytest.raises(ValueError, match="observed"):
        radar_strip(np.zeros((2, 3, 4, 5)), None, {})


def test_gif_has_one_frame_per_step(tmp_path):
    path = save_radar_gif(
        frames(2, 0.5),
        frames(3, 2.0),
        {"extrapolation": frames(3, 60.0)},
        tmp_path / "a.gif",
        timestep_minutes=10,
    )
    with Image.open(path) as gif:
        assert gif.n_frames == 5
        gif.seek(4)  # the last forecast step: truth (2 mm/h) beside the method (60 mm/h)
        found = colours_in(gif)
    assert rgb(RAIN_RATE_COLORS[5]) in found and rgb(RAIN_RATE_COLORS[12]) in found  # [1.6, 2.5), [40, 63)


def test_single_frame_figure_has_a_colour_bar(tmp_path):
    rain = np.zeros((40, 40), dtype=np.float32)
    rain[10:20, 10:30] = 8.0
    rain[:5] = np.nan
    path = save_rain_rate_figure(rain, tmp_path / "frame.png", title="test", pixel_km=2.0)
    found = colours_in(Image.open(path))
    # every class appears (in the colour bar), and the no-data band in grey
    assert {rgb(color) for color in RAIN_RATE_COLORS} <= found and NO_DATA_COLOR in found


def test_scores_against_lead_time(tmp_path):
    lead = np.arange(1, 7)
    methods = {
        name: {
            "overall": {"csi@0.5": 0.5, "csi@2": 0.3, "fss@1/16": 0.6},
            "per_lead_time": {
                "csi@0.5": list(0.9 - rate * lead),
                "csi@2": list(0.7 - rate * lead),
                "fss@1/16": list(0.95 - rate * lead),
            },
        }
        for name, rate in (("model", 0.05), ("persistence", 0.1))
    }
    results = {"num_output_frames": 6, "timestep_minutes": 5, "methods": methods}
    path = plot_scores_by_lead_time(results, tmp_path / "lead.png")
    found = colours_in(Image.open(path))
    assert (31, 119, 180) in found and (255, 127, 14) in found  # matplotlib's first two line colours
    with pytest.raises(KeyError):
        plot_scores_by_lead_time(results, tmp_path / "x.png", scores=["csi@5"])
