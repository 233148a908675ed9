"""A Gradio demo of a ConvLSTM rain-rate nowcast: radar frames in, the forecast in the rain-rate colours and as CF
netCDF out.

    python space_nowcasting/app.py --model outputs/nowcasting       # a folder written by the nowcasting recipe
    python space_nowcasting/app.py --model you/convlstm-nowcasting  # a Hub repo
    MODEL_ID=you/convlstm-nowcasting python space_nowcasting/app.py # on a Hugging Face Space: set MODEL_ID

Pick a bundled sample radar event (``examples/*.nc``) and an origin time (the last observed frame), or upload a
netCDF stack (a ``(time, y, x)`` rain-rate variable in mm/h) or a ``.npy`` array (T, H, W) in mm/h; choose how many
frames to forecast. The page shows the observed frames, the radar's later frames where the stack has them, the
model's forecast and, when pysteps is installed, Lucas-Kanade + semi-Lagrangian extrapolation beside it, in the
rain-rate colour scale with its mm/h legend (a strip of frames and an animation), and offers the forecast as a
CF-1.8 netCDF file. Nothing here reaches the network besides the model download: Gradio's analytics are off, no
share link is made, the theme uses the system fonts.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: it reads it then

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import xarray  # noqa: E402

from bidirectional_conv_lstm.nowcasting.pictures import radar_strip, save_radar_gif  # noqa: E402
from bidirectional_conv_lstm.utils.loading import load_pretrained_model  # noqa: E402

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
STACK_SUFFIXES = (".nc", ".nc4", ".npy")
MAX_HORIZON = 24
# A .npy stack has no clock and no grid: its frames are taken as the model's, or these when the model does not say.
DEFAULT_TIME_STEP = 5.0  # minutes
DEFAULT_PIXEL_SIZE = 1000.0  # metres
SHOWN_LEAD_TIMES = 4  # forecast frames in the strip (the animation has them all)
TOP_MARGIN = 30  # white pixels above the strip, where the page puts the image's buttons
DISPLAY_SIZE = 192  # small grids are enlarged pixel for pixel to about this many pixels
VARIABLES = ("precip_intensity", "rain_rate", "precipitation", "rainfall_rate")
MM_PER_HOUR = ("mm/h", "mm h-1", "mm/hr", "mm hr-1", "kg m-2 h-1", "mm.h-1")
TIME_FORMAT = "%Y-%m-%d %H:%M"


# --------------------------------------------------------------------------- the model
def load_model(model: str):
    """The rain-rate model at `model` (a folder or a Hub repo id), in eval mode.

    Raises:
        FileNotFoundError / ValueError: no such folder or repo, broken weights, or a model without a rain-rate
            transform (trained on images, not on rain rate).
    """
    loaded = load_pretrained_model(model, argument="MODEL_ID")
    if loaded.config.rain_rate_transform is None:
        raise ValueError(
            f"MODEL_ID {model!r} has no rain-rate transform (config.rain_rate_transform is None): it forecasts "
            "images, not rain rate; give a model trained by the nowcasting recipe"
        )
    return loaded


def model_time_step(model) -> float:
    """Minutes between the frames the model was trained on (its config's, else `DEFAULT_TIME_STEP`)."""
    return float(getattr(model.config, "time_step", None) or DEFAULT_TIME_STEP)


def model_pixel_size(model) -> float:
    """Metres per pixel of the model's training grid (its config's, else `DEFAULT_PIXEL_SIZE`)."""
    return float(getattr(model.config, "pixel_size", None) or DEFAULT_PIXEL_SIZE)


# --------------------------------------------------------------------------- inputs
def sample_events() -> dict[str, Path]:
    """``{title: path}`` of the bundled sample events (``examples/*.nc``), titles from the files' ``title``."""
    events = {}
    for path in sorted(EXAMPLES_DIR.glob("*.nc")):
        with xarray.open_dataset(path) as dataset:
            events[str(dataset["precip_intensity"].attrs.get("title", path.stem))] = path
    return events


def _netcdf_variable(dataset: xarray.Dataset, path: Path) -> xarray.DataArray:
    cubes = [name for name, array in dataset.data_vars.items() if array.ndim == 3]
    name = next((name for name in VARIABLES if name in cubes), cubes[0] if len(cubes) == 1 else None)
    if name is None:
        raise ValueError(
            f"{path.name} has 3-D variables {cubes}; expected one (time, y, x) rain-rate variable, or one named "
            f"{' / '.join(VARIABLES)}"
        )
    array = dataset[name]
    units = str(array.attrs.get("units", "mm/h")).strip()
    if units.lower() not in MM_PER_HOUR:
        raise ValueError(f"{path.name}: variable {name!r} is in {units!r}; expected rain rate in mm/h")
    if "time" in array.dims:
        array = array.transpose("time", ...)
    return array.rename(dict(zip(array.dims, ("time", "y", "x"))))


def read_stack(path) -> xarray.DataArray:
    """A netCDF or ``.npy`` stack -> float32 mm/h DataArray (time, y, x), NaN = no data.

    A netCDF stack keeps its coordinates (times, x / y, projection attributes); a ``.npy`` array (T, H, W) has
    none (see `georeference`).

    Raises:
        ValueError: an unknown suffix, not (T, H, W), not numbers, negative rain rate, or not in mm/h.
    """
    path = Path(path)
    if path.suffix.lower() not in STACK_SUFFIXES:
        raise ValueError(f"{path.name} is not a stack; upload {' / '.join(STACK_SUFFIXES)}")
    if path.suffix.lower() == ".npy":
        values = np.load(path, allow_pickle=False)
        if values.ndim != 3 or not np.issubdtype(values.dtype, np.number):
            raise ValueError(f"{path.name} holds {values.dtype} {values.shape}; expected mm/h (T, H, W)")
        array = xarray.DataArray(values, dims=("time", "y", "x"), name="precip_intensity")
    else:
        with xarray.open_dataset(path) as dataset:
            array = _netcdf_variable(dataset, path).load()
    array = array.astype(np.float32)
    if float(array.min(skipna=True).fillna(0.0)) < 0:
        raise ValueError(f"{path.name} has negative values; expected rain rate in mm/h >= 0 (NaN = no data)")
    return array


def georeference(array: xarray.DataArray, time_step: float, pixel_size: float) -> xarray.DataArray:
    """`array` with times and a grid: its own, or for a ``.npy`` stack frames `time_step` minutes apart, the last
    one now (UTC, rounded down to the step), and ``x`` / ``y`` pixel centres `pixel_size` metres apart."""
    if "time" not in array.coords:
        step = np.timedelta64(round(time_step * 60), "s")
        now = np.datetime64("now", "s")
        last = now - (now - np.datetime64("1970-01-01T00:00:00", "s")) % step
        array = array.assign_coords(time=last - step * np.arange(array.sizes["time"])[::-1])
    for axis in ("y", "x"):
        if axis not in array.coords:
            centres = (np.arange(array.sizes[axis]) + 0.5) * pixel_size
            array = array.assign_coords(
                {axis: (axis, centres[::-1] if axis == "y" else centres, {"units": "m"})}
            )
    return array


def origin_choices(array: xarray.DataArray, num_input_frames: int) -> list[str]:
    """The frames a forecast can start from (at least `num_input_frames` frames up to them): times as
    ``YYYY-MM-DD HH:MM`` (UTC), or ``frame N`` (1-based) for a stack without times."""
    indices = range(num_input_frames - 1, array.sizes["time"])
    if "time" not in array.coords:
        return [f"frame {index + 1}" for index in indices]
    times = array["time"].values
    return [str(np.datetime_as_string(times[index], unit="m")).replace("T", " ") for index in indices]


def origin_index(array: xarray.DataArray, origin: str | None, num_input_frames: int, *, latest: bool) -> int:
    """The index of the frame `origin` names (a `origin_choices` entry); the earliest or `latest` one if empty.

    Raises:
        ValueError: too few frames, or `origin` is not one of the choices.
    """
    choices = origin_choices(array, num_input_frames)
    if not choices:
        raise ValueError(
            f"the stack has {array.sizes['time']} frames; the model reads {num_input_frames} observed frames"
        )
    if not origin:
        return num_input_frames - 1 + (len(choices) - 1 if latest else 0)
    if str(origin).strip() not in choices:
        raise ValueError(f"origin {origin!r} is not a frame to start from; expected one of {choices}")
    return num_input_frames - 1 + choices.index(str(origin).strip())


def sample_path(sample: str) -> Path:
    """The file of a bundled sample event, named by its file stem (``fmi_20170509``) or its title.

    Raises:
        ValueError: no such sample.
    """
    events = sample_events()
    by_stem = {path.stem: path for path in events.values()}
    if sample in by_stem or sample in events:
        return by_stem.get(sample) or events[sample]
    raise ValueError(f"sample {sample!r} is not a bundled event; expected one of {sorted(by_stem)}")


# --------------------------------------------------------------------------- forecasts
def model_forecast(model, observed: xarray.DataArray, horizon: int) -> xarray.DataArray:
    """The model's forecast of `horizon` frames after `observed` (time, y, x), a DataArray on the model's grid
    with valid times, ``forecast_reference_time`` and the input's coordinates and attributes."""
    return model.forecast_rain_rate(observed, num_output_frames=horizon)


def extrapolation(observed: np.ndarray, horizon: int) -> np.ndarray | None:
    """pysteps' Lucas-Kanade + semi-Lagrangian extrapolation of `observed` mm/h (T, H, W), (horizon, H, W);
    None when pysteps is not installed."""
    from bidirectional_conv_lstm.nowcasting.baselines import extrapolation_forecast

    try:
        return extrapolation_forecast(observed[None], num_output_frames=horizon)[0]
    except ImportError:
        return None


def on_grid(frames: xarray.DataArray, forecast: xarray.DataArray) -> np.ndarray:
    """`frames` (T, H, W) brought to the forecast's grid (block-averaged when the forecast's is coarser)."""
    from bidirectional_conv_lstm.models.convlstm.georeferencing_convlstm import block_average

    factor = frames.sizes["x"] // forecast.sizes["x"]
    values = block_average(frames.values.astype(np.float32), factor) if factor > 1 else frames.values
    return values[:, : forecast.sizes["y"], : forecast.sizes["x"]]


def check_horizon(horizon) -> int:
    """`horizon` as an int in 1..`MAX_HORIZON` (a whole float from a slider too), else ValueError."""
    if isinstance(horizon, float) and horizon.is_integer():
        horizon = int(horizon)
    if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= MAX_HORIZON:
        raise ValueError(f"horizon must be a whole number of frames from 1 to {MAX_HORIZON}, got {horizon!r}")
    return horizon


def lead_times(horizon: int) -> list[int]:
    """Up to `SHOWN_LEAD_TIMES` forecast frames spread over 1..horizon, the last one included."""
    return sorted({max(1, round(horizon * k / SHOWN_LEAD_TIMES)) for k in range(1, SHOWN_LEAD_TIMES + 1)})


# --------------------------------------------------------------------------- outputs
def draw(observed, truth, forecasts: dict, step: float, folder: Path) -> tuple[Path, Path]:
    """The strip (observed, later radar frames, forecasts at `lead_times`) as a PNG and every frame as a GIF."""
    from PIL import Image

    horizon = len(next(iter(forecasts.values())))
    if truth is not None and len(truth) < horizon:  # the stack ends before the forecast does: no data
        truth = np.concatenate([truth, np.full((horizon - len(truth), *truth.shape[1:]), np.nan, np.float32)])
    scale = max(1, round(DISPLAY_SIZE / max(observed.shape[1:])))
    options = {"timestep_minutes": step, "scale": scale}
    sheet = radar_strip(observed, truth, forecasts, lead_times=lead_times(horizon), **options)
    strip = folder / "forecast.png"
    padded = Image.new("RGB", (sheet.width, sheet.height + TOP_MARGIN), "white")
    padded.paste(sheet, (0, TOP_MARGIN))
    padded.save(strip)
    animation = save_radar_gif(observed, truth, forecasts, folder / "forecast.gif", **options)
    return strip, animation


def _clock(value) -> str:
    return str(np.datetime_as_string(np.datetime64(value, "m"))).replace("T", " ")


def summary(title: str, observed, forecast, seconds: dict, num_truth: int) -> str:
    """What was done, as Markdown: the frames read, the grid, the times, how long each method took."""
    times = forecast["time"].values
    step = (times[0] - observed["time"].values[-1]) / np.timedelta64(1, "m")
    grid = f"{forecast.sizes['y']} x {forecast.sizes['x']} pixels"
    if "x" in forecast.coords and forecast.sizes["x"] > 1:
        grid += f" of {abs(float(forecast['x'][1] - forecast['x'][0])) / 1000:.1f} km"
    lines = [
        f"**{title}**: {observed.sizes['time']} frames observed, {_clock(observed['time'].values[0])} to "
        f"{_clock(observed['time'].values[-1])} UTC, {step:g} min apart; grid {grid}.",
        f"- ConvLSTM: {len(times)} frames to {_clock(times[-1])} UTC in {seconds['model']:.2f} s",
    ]
    if "extrapolation" in seconds:
        lines.append(
            f"- extrapolation (pysteps Lucas-Kanade + semi-Lagrangian) in {seconds['extrapolation']:.2f} s"
        )
    else:
        lines.append("- extrapolation: pysteps is not installed (the `nowcasting` extra)")
    lines.append(f"- radar frames after the origin (row *truth*): {num_truth} of {len(times)}")
    return "\n".join(lines)


def write_netcdf(forecast: xarray.DataArray, path: Path) -> Path:
    """The forecast as CF-1.8 netCDF, with the package's writer."""
    from bidirectional_conv_lstm.serving.forecast_files import write_forecast

    return write_forecast(forecast, path)


def nowcast(model, sample, upload, origin, horizon, *, output_dir=None) -> tuple[str, str, str, str]:
    """One demo run: the stack, the origin, the forecasts, the pictures, the file.

    Args:
        model: a rain-rate `ConvLSTMForFramePrediction` (`load_model`).
        sample: a bundled event (file stem or title), used when nothing is uploaded.
        upload: the path of an uploaded ``.nc`` / ``.npy`` stack, or None.
        origin: the last observed frame, a `origin_choices` entry; empty: the sample's first possible one, an
            upload's newest.
        horizon: frames to forecast, 1 to `MAX_HORIZON`.
        output_dir: where the pictures and the netCDF go (a new temporary folder when None).

    Returns:
        ``(strip PNG, animation GIF, forecast netCDF, Markdown summary)``.

    Raises:
        ValueError: a bad sample, upload, origin or horizon (shown in the page as an error).
    """
    horizon = check_horizon(horizon)
    if not upload and not sample:
        raise ValueError("no radar frames: pick a sample event or upload a .nc / .npy stack")
    path = Path(upload) if upload else sample_path(sample)
    array = read_stack(path)
    num_input = model.config.num_input_frames
    index = origin_index(array, origin, num_input, latest=bool(upload))  # before dating: "frame N" stays put
    array = georeference(array, model_time_step(model), model_pixel_size(model))
    observed = array.isel(time=slice(index - num_input + 1, index + 1))
    started = time.perf_counter()
    forecast = model_forecast(model, observed, horizon)
    seconds = {"model": time.perf_counter() - started}
    observed_values = on_grid(observed, forecast)
    later = array.isel(time=slice(index + 1, index + 1 + horizon))
    truth = on_grid(later, forecast) if later.sizes["time"] else None
    forecasts = {"ConvLSTM": forecast.values}
    started = time.perf_counter()
    extrapolated = extrapolation(observed_values, horizon)
    if extrapolated is not None:
        seconds["extrapolation"] = time.perf_counter() - started
        no_data = np.isnan(observed_values[-1])  # grey where the model has nothing to say either
        forecasts["optical flow"] = np.where(no_data, np.nan, extrapolated)
    folder = (
        Path(output_dir) if output_dir is not None else Path(tempfile.mkdtemp(prefix="convlstm-nowcast-"))
    )
    folder.mkdir(parents=True, exist_ok=True)
    step = float((forecast["time"].values[0] - observed["time"].values[-1]) / np.timedelta64(1, "m"))
    strip, animation = draw(observed_values, truth, forecasts, step, folder)
    netcdf = write_netcdf(forecast, folder / "forecast.nc")
    title = array.attrs.get("title") or path.name
    text = summary(title, observed, forecast, seconds, 0 if truth is None else len(truth))
    return str(strip), str(animation), str(netcdf), text


# --------------------------------------------------------------------------- the page
def origins_for(sample, upload, num_input_frames: int) -> tuple[list[str], str | None]:
    """The origin times of an upload (when given) or a sample, and the one selected at first: an upload's newest,
    a sample's earliest (its later frames show as truth)."""
    path = Path(upload) if upload else sample_path(sample) if sample else None
    found = origin_choices(read_stack(path), num_input_frames) if path is not None else []
    return found, (found[-1] if upload else found[0]) if found else None


def introduction(model, title: str) -> str:
    """The page's heading and what to do, as Markdown."""
    return (
        f"# {title}\n"
        f"Pick a sample radar event and the origin time (the last observed frame), or upload a netCDF stack "
        f"(a `(time, y, x)` rain-rate variable in mm/h) or a `.npy` array `(T, H, W)` in mm/h, then press "
        f"**Forecast**. The model reads the {model.config.num_input_frames} frames up to the origin and forecasts "
        f"the next ones, {model_time_step(model):g} min apart; pysteps' Lucas-Kanade extrapolation (*optical "
        f"flow*) runs beside it when pysteps is installed. Rows: observed, the radar's later frames (*truth*, "
        f"where the stack has them), the forecasts; grey is no data."
    )


# Long: the page, laid out top to bottom as it shows
def build_demo(model, *, title: str = "ConvLSTM precipitation nowcasting"):
    """The Gradio app (``gr.Blocks``) around `model`; its forecast endpoint is ``/forecast`` (sample, upload,
    origin, frames), and ``/origins`` (sample, upload) lists the origin times."""
    import gradio as gr

    num_input = model.config.num_input_frames
    choices = [(name, path.stem) for name, path in sample_events().items()]
    first = choices[0][1] if choices else None
    initial, selected = origins_for(first, None, num_input)

    def origins(sample, upload):
        try:
            found, value = origins_for(sample, upload, num_input)
        except (ValueError, TypeError, OSError) as error:
            raise gr.Error(str(error)) from error
        return gr.Dropdown(choices=found, value=value)

    def run(sample, upload, origin, horizon):
        try:
            return nowcast(model, sample, upload, origin, horizon)
        except (ValueError, TypeError, FileNotFoundError) as error:
            raise gr.Error(str(error)) from error

    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(introduction(model, title))
        with gr.Row():
            with gr.Column(scale=1):
                sample = gr.Dropdown(choices, value=first, label="Sample radar event", elem_id="sample")
                upload = gr.File(
                    label="... or upload a stack (used instead of the sample)",
                    file_types=list(STACK_SUFFIXES),
                    elem_id="upload",
                )
                origin = gr.Dropdown(
                    initial,
                    value=selected,
                    label="Origin time (UTC): the last observed frame",
                    allow_custom_value=True,
                    elem_id="origin",
                )
                horizon = gr.Slider(
                    1,
                    MAX_HORIZON,
                    value=min(int(model.config.num_output_frames), MAX_HORIZON),
                    step=1,
                    label="Frames to forecast",
                    elem_id="horizon",
                )
                button = gr.Button("Forecast", variant="primary", elem_id="forecast")
                about = gr.Markdown(elem_id="summary")
                download = gr.File(label="Forecast (CF netCDF)", elem_id="download")
            with gr.Column(scale=3):
                pictures = [
                    gr.Image(
                        label=label,
                        type="filepath",
                        interactive=False,
                        buttons=["download", "fullscreen"],
                        elem_id=elem_id,
                    )
                    for label, elem_id in (("Frames (mm/h)", "strip"), ("Animation", "animation"))
                ]
        sample.change(origins, inputs=[sample, upload], outputs=origin, api_name="origins")
        upload.change(origins, inputs=[sample, upload], outputs=origin, api_name=False)
        button.click(
            run,
            inputs=[sample, upload, origin, horizon],
            outputs=[*pictures, download, about],
            api_name="forecast",
        )
    return demo


def launch_options() -> dict:
    """Keyword arguments of ``demo.launch`` that keep the demo off the network: no share link, no server-side
    rendering process, system fonts."""
    import gradio as gr

    font = ["ui-sans-serif", "system-ui", "sans-serif"]
    mono = ["ui-monospace", "monospace"]
    return {"share": False, "ssr_mode": False, "theme": gr.themes.Default(font=font, font_mono=mono)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        default=os.environ.get("MODEL_ID"),
        help="a save_pretrained folder or a Hub repo id of a rain-rate model (env MODEL_ID)",
    )
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    args = parser.parse_args(argv)
    if not args.model:
        raise SystemExit("app.py: error: give --model DIR_OR_REPO or set MODEL_ID")
    try:
        model = load_model(args.model)
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise SystemExit(f"app.py: error: {error}") from None
    build_demo(model).launch(server_name=args.host, server_port=args.port, **launch_options())


if __name__ == "__main__":
    main(sys.argv[1:])
