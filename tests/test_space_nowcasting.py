"""Tests of the nowcasting Space (space_nowcasting/app.py): a local launch with a tiny rain-rate model, driven
through `gradio_client` (a bundled sample event, an uploaded .npy stack and an uploaded netCDF stack) and through
headless Chromium (Debian's `chromium`, driven with playwright), which keeps a screenshot in
test-artifacts/space_nowcasting.png. As in tests/test_space.py, every name lookup is limited to loopback addresses
and the browser may only load the demo's own URL.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction  # noqa: E402
from bidirectional_conv_lstm.models.convlstm.rain_rate import RainRateTransform  # noqa: E402
from test_space import CHROMIUM, CHROMIUM_FLAGS, lookups  # noqa: E402, F401  (lookups: a fixture)

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "space_nowcasting"
ARTIFACTS = ROOT / "test-artifacts"
RADAR_ROOT = ROOT.parent / "shared" / "radar"
TINY = {
    "hidden_sizes": [4],
    "patch_size": 4,
    "kernel_size": 3,
    "num_input_frames": 3,
    "num_output_frames": 2,
    "rain_rate_transform": RainRateTransform("log1p").to_dict(),
    "pixel_size": 4000.0,  # the samples' grid: a 1 km upload is block-averaged to it
    "time_step": 5.0,
}
HAS_PYSTEPS = importlib.util.find_spec("pysteps") is not None


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"space_nowcasting_{name}", SPACE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tiny_rain_model() -> ConvLSTMForFramePrediction:
    torch.manual_seed(0)
    model = ConvLSTMForFramePrediction(ConvLSTMConfig(**TINY)).eval()
    with torch.no_grad():  # trained-looking weights, so the forecast has rain where the input has
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return model


def moving_rain(num_frames: int, height: int, width: int) -> np.ndarray:
    """float32 (T, H, W) mm/h: a rain cell moving one pixel right per frame, no data in the top-left corner."""
    rows, cols = np.mgrid[:height, :width]
    frames = [
        8.0 * np.exp(-((rows - height / 2) ** 2 + (cols - width / 3 - t) ** 2) / (width / 6) ** 2)
        for t in range(num_frames)
    ]
    rain = np.where(np.stack(frames) < 0.1, 0.0, np.stack(frames)).astype(np.float32)
    rain[:, :2, :2] = np.nan
    return rain


@pytest.fixture(scope="module")
def demo(tmp_path_factory, lookups):  # noqa: F811
    """The app launched on a free loopback port: ``{"app": module, "url": ..., "model": folder}``."""
    app = _load("app")
    folder = tmp_path_factory.mktemp("space_nowcasting") / "tiny"
    tiny_rain_model().save_pretrained(folder)
    blocks = app.build_demo(app.load_model(str(folder)))
    _, url, _ = blocks.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        **app.launch_options(),
    )
    yield {"app": app, "url": url, "model": folder}
    blocks.close()
    assert [host for host in lookups if host not in ("127.0.0.1", "localhost", "::1")] == []


def test_space_files_name_the_package_and_the_frame_prediction_spaces_gradio():
    import re

    import yaml

    front = yaml.safe_load((SPACE / "README.md").read_text().split("---")[1])
    other = yaml.safe_load((ROOT / "space" / "README.md").read_text().split("---")[1])
    assert front["sdk"] == "gradio" and (SPACE / front["app_file"]).is_file()
    assert front["sdk_version"] == other["sdk_version"] and len(front["short_description"]) <= 60
    homepage = re.search(r'^Homepage = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)
    requirements = (SPACE / "requirements.txt").read_text().splitlines()
    assert f"bidirectional-conv-lstm[nowcasting] @ git+{homepage}" in requirements


def test_samples_origins_and_bad_input(demo, tmp_path):
    app = demo["app"]
    samples = app.sample_events()
    assert set(samples) == {"FMI (Finland), 2017-05-09", "KNMI (Netherlands), 2010-08-26"}
    assert sum(path.stat().st_size for path in samples.values()) < 1_000_000  # small enough to commit
    knmi = app.read_stack(app.sample_path("knmi_20100826"))
    assert knmi.dims == ("time", "y", "x") and knmi.dtype == np.float32 and knmi.sizes["time"] == 16
    assert float(knmi["x"][1] - knmi["x"][0]) == 4000.0 and knmi.isnull().any() and knmi.max() > 5
    choices = app.origin_choices(knmi, 3)
    assert choices[0] == "2010-08-26 03:55" and choices[-1] == "2010-08-26 05:00" and len(choices) == 14
    assert (
        app.origin_index(knmi, "", 3, latest=False) == 2
        and app.origin_index(knmi, None, 3, latest=True) == 15
    )
    np.save(tmp_path / "stack.npy", moving_rain(4, 12, 16))
    stack = app.read_stack(tmp_path / "stack.npy")
    assert "time" not in stack.coords and app.origin_choices(stack, 3) == ["frame 3", "frame 4"]
    assert app.origins_for("knmi_20100826", str(tmp_path / "stack.npy"), 3) == (
        ["frame 3", "frame 4"],
        "frame 4",
    )
    placed = app.georeference(stack, 10.0, 2000.0)
    times = placed["time"].values
    assert np.all(np.diff(times) == np.timedelta64(10, "m")) and times[-1] <= np.datetime64("now")
    assert placed["x"].values[:2].tolist() == [1000.0, 3000.0] and placed["y"].values[-1] == 1000.0
    model = app.load_model(str(demo["model"]))
    for arguments, message in [
        (("knmi_20100826", None, "", 0), "horizon must be a whole number of frames from 1 to 24"),
        ((None, None, "", 2), "no radar frames"),
        (("bom", None, "", 2), "not a bundled event; expected one of"),
        (("knmi_20100826", None, "2010-08-26 03:50", 2), "is not a frame to start from"),
        ((None, str(tmp_path / "stack.npy"), "frame 2", 2), r"expected one of \['frame 3', 'frame 4'\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            app.nowcast(model, *arguments, output_dir=tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"notes.txt is not a stack; upload \.nc / \.nc4 / \.npy"):
        app.read_stack(tmp_path / "notes.txt")
    np.save(tmp_path / "short.npy", moving_rain(2, 8, 8))
    with pytest.raises(ValueError, match="the stack has 2 frames; the model reads 3"):
        app.nowcast(model, None, str(tmp_path / "short.npy"), None, 2, output_dir=tmp_path)
    knmi.isel(time=slice(None, None, 2)).to_netcdf(tmp_path / "ten_minutes.nc")  # the model's step is 5 min
    with pytest.raises(
        ValueError, match=r"time step \(10 min\) differs from the model's time_step \(5 min\)"
    ):
        app.nowcast(model, None, str(tmp_path / "ten_minutes.nc"), "", 2, output_dir=tmp_path)
    knmi.attrs["units"] = "dBZ"
    knmi.to_netcdf(tmp_path / "dbz.nc")
    with pytest.raises(ValueError, match="is in 'dBZ'; expected rain rate in mm/h"):
        app.read_stack(tmp_path / "dbz.nc")
    ConvLSTMForFramePrediction(ConvLSTMConfig(hidden_sizes=[4], patch_size=2)).save_pretrained(
        tmp_path / "mnist"
    )
    with pytest.raises(ValueError, match="has no rain-rate transform"):
        app.load_model(str(tmp_path / "mnist"))
    with pytest.raises(FileNotFoundError, match="MODEL_ID"):
        app.load_model(str(tmp_path / "missing"))


def _opened(path):
    import xarray

    with xarray.open_dataset(path) as dataset:
        return dataset.load()


def test_gradio_client_forecasts_a_sample_and_uploaded_stacks(demo, tmp_path):
    from gradio_client import Client, handle_file
    from PIL import Image

    client = Client(demo["url"], verbose=False, download_files=str(tmp_path / "downloads"))
    origins = client.predict("fmi_20170509", None, api_name="/origins")
    assert origins["choices"][0][0] == "2017-05-09 11:55" and origins["value"] == "2017-05-09 11:55"
    strip, animation, netcdf, text = client.predict(
        "knmi_20100826", None, "2010-08-26 04:50", 4, api_name="/forecast"
    )
    forecast = _opened(netcdf)
    sample = _opened(SPACE / "examples" / "knmi_20100826.nc")
    assert forecast["precip_intensity"].dims == ("time", "y", "x") and forecast.sizes["time"] == 4
    assert str(forecast["time"].values[0])[:16] == "2010-08-26T04:55"
    assert str(forecast["forecast_reference_time"].values)[:16] == "2010-08-26T04:50"
    np.testing.assert_array_equal(forecast["x"].values, sample["x"].values)
    assert forecast["precip_intensity"].isnull().any() and forecast["precip_intensity"].max() > 0
    with Image.open(animation) as gif:
        assert gif.n_frames == 3 + 4  # the observed frames, then each lead time
    rows = (
        4 if HAS_PYSTEPS else 3
    )  # observed, truth (2 of 4 lead times left in the sample), ConvLSTM, extrapolation
    with Image.open(strip) as picture:
        assert picture.height >= rows * 104
    assert "3 frames observed, 2010-08-26 04:40 to 2010-08-26 04:50 UTC, 5 min apart" in text
    assert ("extrapolation (pysteps" in text) == HAS_PYSTEPS and "origin (row *truth*): 2 of 4" in text

    np.save(tmp_path / "stack.npy", moving_rain(5, 20, 26))  # no times, no grid: taken as the model's
    *_, netcdf, text = client.predict(
        None, handle_file(str(tmp_path / "stack.npy")), "", 3, api_name="/forecast"
    )
    forecast = _opened(netcdf)["precip_intensity"]
    assert forecast.shape == (3, 20, 26) and np.isnan(forecast.values[:, :2, :2]).all()
    assert (np.diff(forecast["time"].values) == np.timedelta64(5, "m")).all()

    import xarray  # a 1 km stack of 24 x 32 pixels: block-averaged to the model's 4 km, 6 x 8 pixels

    rain = moving_rain(6, 24, 32)
    times = np.datetime64("2024-06-01T12:00") + np.arange(6) * np.timedelta64(5, "m")
    xarray.DataArray(
        rain,
        dims=("time", "y", "x"),
        coords={"time": times, "y": 1000.0 * np.arange(24)[::-1], "x": 1000.0 * np.arange(32)},
        name="rain_rate",
        attrs={"units": "mm h-1", "projection": "+proj=stere +lat_0=90 +lon_0=0 +lat_ts=60 +x_0=0 +y_0=0"},
    ).to_dataset().to_netcdf(tmp_path / "stack.nc")
    *_, netcdf, text = client.predict(
        "fmi_20170509", handle_file(str(tmp_path / "stack.nc")), "2024-06-01 12:15", 2, api_name="/forecast"
    )
    forecast = _opened(netcdf)
    assert forecast["precip_intensity"].shape == (2, 6, 8) and "grid 6 x 8 pixels of 4.0 km" in text
    assert str(forecast["time"].values[-1])[:16] == "2024-06-01T12:25" and "lat" in forecast.coords


def test_browser_picks_a_sample_and_shows_the_forecast(demo):
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    url, external = demo["url"].rstrip("/"), []

    def local_only(route):
        target = route.request.url
        if target.startswith((url, "data:", "blob:")):
            route.continue_()
        else:
            external.append(target)
            route.abort()

    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", local_only)
            page.goto(url)
            page.locator("#sample input").click()
            page.get_by_role("option", name="KNMI (Netherlands), 2010-08-26").click()
            origin = page.locator("#origin input")
            page.wait_for_function(
                "() => document.querySelector('#origin input').value === '2010-08-26 03:55'", timeout=30_000
            )
            page.locator("#forecast").click()
            page.locator("#strip img").wait_for(timeout=60_000)
            assert page.locator("#strip img").evaluate("img => img.complete && img.naturalWidth") > 400
            page.locator("#download td.filename[aria-label='forecast.nc']").wait_for(timeout=30_000)
            assert "3 frames observed" in page.locator("#summary").inner_text()
            assert origin.input_value() == "2010-08-26 03:55"
            page.screenshot(path=str(ARTIFACTS / "space_nowcasting.png"), full_page=True)
        finally:
            browser.close()
    assert external == []
    assert (ARTIFACTS / "space_nowcasting.png").stat().st_size > 10_000


@pytest.mark.skipif(not (RADAR_ROOT / "KNMI").is_dir(), reason=f"{RADAR_ROOT} (pysteps-data) is absent")
def test_make_examples_writes_the_committed_sample(tmp_path):
    pytest.importorskip("h5py")
    _load("make_examples").main(
        ["--radar_root", str(RADAR_ROOT), "--output_dir", str(tmp_path), "--events", "knmi_20100826"]
    )
    written, committed = (
        _opened(tmp_path / "knmi_20100826.nc"),
        _opened(SPACE / "examples" / "knmi_20100826.nc"),
    )
    assert written.identical(committed)
    assert written["precip_intensity"].encoding["dtype"] == np.uint16
