"""The nowcast command (commands/nowcast.py, serving/nowcast.py): the frames a model needs read from an archive,
forecast over the whole domain and written as a CF file equal to what ``forecast_rain_rate`` returns; missing
frames; one-line argument errors before the model loads; and every console script's ``--help``.

The FMI tests read ``../shared/radar`` (pysteps-data; ``$BCL_RADAR_DATA`` overrides the folder) and skip when it is
absent; the stack tests run on small generated stacks.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray

from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction
from bidirectional_conv_lstm.commands import nowcast as nowcast_command
from bidirectional_conv_lstm.data import example_radar_sources, read_radar_archive
from bidirectional_conv_lstm.data.radar.xarray_frames import radar_sequence_to_data_array
from bidirectional_conv_lstm.serving import nowcast as nowcast_module
from bidirectional_conv_lstm.serving.nowcast import nowcast

HAS_PYSTEPS = importlib.util.find_spec("pysteps") is not None
FMI_PROJECTION = (
    "+proj=stere +lon_0=25E +lat_0=90N +lat_ts=60 +a=6371288 +x_0=380886.310 +y_0=3395677.920 +no_defs"
)
FMI_PATTERN = "%Y%m%d%H%M_fmi.radar.composite.lowest_FIN_SUOMI1"
CONSOLE_SCRIPTS = (
    "convlstm-train",
    "convlstm-train-nowcasting",
    "convlstm-evaluate",
    "convlstm-predict",
    "convlstm-push-dataset",
    "convlstm-export-onnx",
    "convlstm-nowcast",
)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    """A tiny random rain model (4 km, 5 min; 3 frames in, 2 out) saved as a user would have it."""
    torch.manual_seed(0)
    config = ConvLSTMConfig(
        hidden_sizes=[4],
        patch_size=4,
        num_input_frames=3,
        num_output_frames=2,
        rain_rate_transform={"kind": "log1p"},
        pixel_size=4000.0,
        time_step=5.0,
    )
    folder = tmp_path_factory.mktemp("model") / "rain_model"
    ConvLSTMForFramePrediction(config).eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def fmi_folder() -> Path:
    root = Path(os.environ.get("BCL_RADAR_DATA") or Path(__file__).resolve().parents[2] / "shared" / "radar")
    if not (root / "fmi" / "pgm" / "20170509").is_dir():
        pytest.skip(f"no sample radar data at {root} (set $BCL_RADAR_DATA)")
    if not HAS_PYSTEPS:
        pytest.skip("reading the FMI archive needs the nowcasting extra (pysteps)")
    return root / "fmi" / "pgm"


def run(argv: list[str], capsys) -> tuple[int, str]:
    """Run the command in this process: ``(exit status, what it printed)`` (stderr's last line on failure)."""
    try:
        nowcast_command.main(argv)
    except SystemExit as exit:
        captured = capsys.readouterr()
        if isinstance(exit.code, str):
            return 1, exit.code
        return exit.code, captured.err.strip().splitlines()[-1]
    return 0, capsys.readouterr().out


def fmi_forecast(model_folder: Path, fmi_folder: Path, start: str, end: str) -> xarray.DataArray:
    """What ``forecast_rain_rate`` returns for the FMI frames from `start` to `end`, read without the command."""
    source = example_radar_sources(fmi_folder.parents[1])["fmi_20170509"]
    sequence = read_radar_archive(dataclasses.replace(source, start=start, end=end))
    model = ConvLSTMForFramePrediction.from_pretrained(model_folder)
    return model.forecast_rain_rate(radar_sequence_to_data_array(sequence))


def test_the_documented_command_on_the_fmi_archive(model_folder, fmi_folder, tmp_path, capsys):
    """docs/nowcasting/forecast-files.md: ``--data-source fmi`` of pysteps' own pystepsrc, ``--root`` replacing
    its root_path, ``--time 2017-05-09T14:00``: the whole 1226 x 760 domain at 1 km, forecast at 4 km."""
    output, png = tmp_path / "forecast.nc", tmp_path / "forecast.png"
    argv = ["--model", str(model_folder), "--data-source", "fmi", "--root", str(fmi_folder)]
    status, printed = run(
        [*argv, "--time", "2017-05-09T14:00", "--output", str(output), "--png", str(png)], capsys
    )
    assert status == 0, printed
    assert "read 3 frames" in printed and "13:50, 13:55, 14:00" in printed
    assert (
        "input grid: 1226 x 760 pixels of 999.674 m" in printed
        and "forecast grid: 306 x 190 pixels" in printed
    )
    expected = fmi_forecast(model_folder, fmi_folder, "2017-05-09T13:50", "2017-05-09T14:00")
    with xarray.open_dataset(output) as written:
        np.testing.assert_array_equal(written["precip_intensity"].values, expected.values)  # NaN where NaN
        assert np.isnan(expected.values).any() and (expected.values > 0).any()
        np.testing.assert_array_equal(
            written["time"].values, np.array(["2017-05-09T14:05", "2017-05-09T14:10"], dtype="datetime64[ns]")
        )
        assert written["forecast_reference_time"].values == np.datetime64("2017-05-09T14:00")
        import pyproj

        assert pyproj.CRS.from_cf(written["crs"].attrs).equals(pyproj.CRS(FMI_PROJECTION))
        assert written.sizes == {"time": 2, "y": 306, "x": 190}
        assert 59 < float(written["lat"].mean()) < 66  # Finland
    assert png.stat().st_size > 1000


def test_files_glob_with_a_missing_frame(model_folder, fmi_folder, tmp_path, capsys):
    """``--files`` with a glob, the newest frame by default; a gap is an error naming its time, and
    ``--allow-missing`` fills it with the mean of its neighbours."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for minute in ("40", "45", "55"):  # 13:50 is missing
        name = f"20170509{13}{minute}_fmi.radar.composite.lowest_FIN_SUOMI1.pgm.gz"
        shutil.copy(fmi_folder / "20170509" / name, folder / name)
    argv = ["--model", str(model_folder), "--files", str(folder / "*.pgm.gz"), "--importer", "fmi_pgm"]
    argv += ["--importer-kwargs", '{"gzipped": true}', "--fn-pattern", FMI_PATTERN, "--fn-ext", "pgm.gz"]
    status, message = run([*argv, "--output", str(tmp_path / "gap.nc")], capsys)
    assert status == 1 and "\n" not in message
    assert message.startswith("nowcast.py: error: archive 'frames' has no frame at 2017-05-09 13:50 UTC;")
    assert not (tmp_path / "gap.nc").exists()
    report = nowcast(model_folder, nowcast_command.archive_arguments(_namespace(argv)), tmp_path / "filled.nc",
                     allow_missing=True)  # fmt: skip
    assert [f"{t:%H:%M}" for t in report.frame_times] == ["13:45", "13:50", "13:55"]
    assert [f"{t:%H:%M}" for t in report.interpolated] == ["13:50"]
    with xarray.open_dataset(report.output) as written:
        assert written["forecast_reference_time"].values == np.datetime64("2017-05-09T13:55")


def pysteps_rc() -> str:
    """pysteps' own pystepsrc (the default of --pystepsrc)."""
    from bidirectional_conv_lstm.data.radar.pystepsrc import pystepsrc_path

    return str(pystepsrc_path())


def _namespace(argv: list[str]):
    return nowcast_command.build_parser().parse_args(argv)


def _stack(path: Path, *, times: int = 5, missing: int | None = None) -> np.ndarray:
    """A (time, 24, 32) mm/h stack on a 2 km grid, 5-min steps from 10:00 (without frame `missing`)."""
    rain = np.random.default_rng(1).gamma(0.5, 2.0, (times, 24, 32)).astype(np.float32)
    rain[:, :2, :3] = np.nan
    stamps = np.datetime64("2024-06-01T10:00", "ns") + np.arange(times) * np.timedelta64(5, "m")
    keep = [index for index in range(times) if index != missing]
    if path.suffix == ".npy":
        np.save(path, rain[keep])
        return rain
    array = xarray.DataArray(
        rain[keep],
        dims=("time", "y", "x"),
        coords={
            "time": stamps[keep],
            "x": 1000.0 + 2000.0 * np.arange(32),
            "y": 47000.0 - 2000.0 * np.arange(24),
        },
        attrs={"units": "mm h-1", "projection": "EPSG:3067"},
        name="rain",
    )
    if path.suffix == ".zarr":
        pytest.importorskip("zarr", reason="Zarr stacks need zarr (the nowcasting extra)")
        array.to_dataset().to_zarr(path, zarr_format=2)
    else:
        array.to_netcdf(path)
    return rain


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_a_stack_is_forecast_as_forecast_rain_rate_does(model_folder, tmp_path, capsys, suffix):
    rain = _stack(tmp_path / f"stack{suffix}")
    output = tmp_path / f"forecast{suffix}"
    argv = [
        "--model",
        str(model_folder),
        "--stack",
        str(tmp_path / f"stack{suffix}"),
        "--output",
        str(output),
    ]
    status, printed = run([*argv, "--time", "2024-06-01T10:15", "--num-output-frames", "3", "--gif",
                           str(tmp_path / "f.gif")], capsys)  # fmt: skip
    assert status == 0, printed
    assert "read 3 frames from 1 file(s): 2024-06-01 10:05, 10:10, 10:15 UTC" in printed
    assert (
        "input grid: 24 x 32 pixels of 2000 m" in printed
        and "forecast grid: 12 x 16 pixels of 4000 m" in printed
    )
    model = ConvLSTMForFramePrediction.from_pretrained(model_folder)
    observed = xarray.DataArray(
        rain[1:4],
        dims=("time", "y", "x"),
        coords={
            "time": np.datetime64("2024-06-01T10:05", "ns") + np.arange(3) * np.timedelta64(5, "m"),
            "x": 1000.0 + 2000.0 * np.arange(32),
            "y": 47000.0 - 2000.0 * np.arange(24),
        },
    )
    expected = model.forecast_rain_rate(observed, num_output_frames=3)
    opened = xarray.open_zarr(output) if suffix == ".zarr" else xarray.open_dataset(output)
    with opened as written:
        np.testing.assert_array_equal(written["precip_intensity"].values, expected.values)
        np.testing.assert_array_equal(written["time"].values, expected["time"].values)
        np.testing.assert_array_equal(written["x"].values, expected["x"].values)
        assert written["crs"].attrs["crs_wkt"].startswith('PROJCRS["ETRS89 / TM35FIN(E,N)"')
    assert (tmp_path / "f.gif").stat().st_size > 1000


def test_allow_missing_interpolates_between_neighbours_but_not_the_last_frame(model_folder, tmp_path):
    rain = _stack(tmp_path / "gappy.nc", missing=3)  # 10:15 missing
    archive = {"name": "gappy", "path": tmp_path / "gappy.nc"}
    with pytest.raises(FileNotFoundError, match=r"no frame at 2024-06-01 10:15 UTC; allow_missing"):
        nowcast(model_folder, archive, tmp_path / "a.nc", time="2024-06-01T10:20")
    captured = {}
    model = ConvLSTMForFramePrediction.from_pretrained(model_folder)
    original = model.forecast_rain_rate

    def spy(data_array, **kwargs):
        captured["observed"] = data_array.values.copy()
        return original(data_array, **kwargs)

    model.forecast_rain_rate = spy
    report = nowcast(model, archive, tmp_path / "b.nc", time="2024-06-01T10:20", allow_missing=True)
    assert [f"{t:%H:%M}" for t in report.interpolated] == ["10:15"]
    np.testing.assert_array_equal(captured["observed"][1], 0.5 * (rain[2] + rain[4]))  # NaN where either is
    np.testing.assert_array_equal(captured["observed"][[0, 2]], rain[[2, 4]])
    with pytest.raises(FileNotFoundError, match=r"no frame at 2024-06-01 10:15 UTC, the last observed frame"):
        nowcast(model, archive, tmp_path / "c.nc", time="2024-06-01T10:15", allow_missing=True)
    report = nowcast(model, archive, tmp_path / "d.nc", time="2024-06-01T10:10", output_grid="input")
    assert report.model_shape == report.input_shape == (24, 32)  # each 4 km value over its 2 km block
    with xarray.open_dataset(report.output) as written:
        np.testing.assert_array_equal(written["x"].values, 1000.0 + 2000.0 * np.arange(32))


def test_a_npy_stack_takes_its_times_from_time_and_its_grid_from_the_model(model_folder, tmp_path, capsys):
    rain = _stack(tmp_path / "frames.npy")
    argv = [
        "--model",
        str(model_folder),
        "--stack",
        str(tmp_path / "frames.npy"),
        "--output",
        str(tmp_path / "f.nc"),
    ]
    status, message = run(argv, capsys)
    assert status == 1 and "its frames have no times" in message and "give time" in message
    status, printed = run([*argv, "--time", "202406011200"], capsys)
    assert status == 0, printed
    with xarray.open_dataset(tmp_path / "f.nc") as written:
        assert written["forecast_reference_time"].values == np.datetime64("2024-06-01T12:00")
        assert written.sizes == {"time": 2, "y": 24, "x": 32}  # taken to be on the model's 4 km grid
        np.testing.assert_array_equal(written["x"].values, 2000.0 + 4000.0 * np.arange(32))
        assert "crs" not in written  # no projection known
    assert rain.shape == (5, 24, 32)


def test_argument_errors_are_one_line_before_the_model_loads(model_folder, tmp_path, capsys, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(nowcast_module, "load_pretrained_model", no_loading)
    _stack(tmp_path / "stack.nc")
    model, stack = ["--model", str(model_folder)], ["--stack", str(tmp_path / "stack.nc")]
    broken = tmp_path / "broken_pystepsrc"
    broken.write_text(json.dumps({"data_sources": {"mine": {"root_path": str(tmp_path)}}}))
    cases = {
        "give the archive as one of --data-source, --files or --stack; got none": model,
        "got ['--files', '--stack']": [*model, *stack, "--files", "a.h5", "--importer", "knmi_hdf5"],
        "output must end in one of ('.nc', '.zarr')": [*model, *stack, "--output", "forecast.grib"],
        "png must end in .png, got 'strip.jpg'": [*model, *stack, "--png", "strip.jpg"],
        "--model='./outputs/nowhere': no such folder": ["--model", "./outputs/nowhere", *stack],
        "--time: cannot read 'yesterday' as a time": [*model, *stack, "--time", "yesterday"],
        "--files: no file matches": [
            *model,
            "--files",
            str(tmp_path / "*.h5"),
            "--importer",
            "knmi_hdf5",
            "--fn-pattern",
            "%Y%m%d%H%M",
        ],  # fmt: skip
        "--files needs --importer": [*model, "--files", str(tmp_path / "stack.nc")],
        "--num-output-frames must be at least 1, got 0": [*model, *stack, "--num-output-frames", "0"],
        f"path {str(tmp_path / 'absent.nc')!r} does not exist": [
            *model,
            "--stack",
            str(tmp_path / "absent.nc"),
        ],
    }
    if HAS_PYSTEPS:
        pystepsrc = tmp_path / "pystepsrc"
        pystepsrc.write_text(Path(pysteps_rc()).read_text().replace('"fmi":', '"mine":'))
        with_fmi = [*model, "--data-source", "fmi", "--pystepsrc"]
        cases[f"pystepsrc {str(tmp_path / 'absent')!r} is not a file"] = [*with_fmi, str(tmp_path / "absent")]
        cases["has no data source 'fmi'; it has ['bom', 'bom_nwp', 'dwd',"] = [*with_fmi, str(pystepsrc)]
        cases["is not a valid pysteps config file: Error reading pystepsrc file.; Error in "] = [
            *with_fmi, str(broken)]  # fmt: skip
        cases["--data-source fmi: its root_path './radar/fmi/pgm' is not a folder (--root sets it)"] = [
            *model, "--data-source", "fmi"]  # fmt: skip
    for expected, argv in cases.items():
        status, message = run(
            [*argv, "--output", str(tmp_path / "f.nc")] if "--output" not in argv else argv, capsys
        )
        assert status == 2 and message.startswith("nowcast.py: error: ") and expected in message, (
            argv,
            message,
        )
    assert not (tmp_path / "f.nc").exists()


def test_every_console_script_is_declared_and_answers_help(capsys, monkeypatch):
    """Each ``[project.scripts]`` entry loads and its ``--help`` exits 0 (in this process: fast), and one runs
    from the virtual environment's bin folder as a user types it."""
    declared = {entry.name: entry for entry in metadata.entry_points(group="console_scripts")}
    for name in CONSOLE_SCRIPTS:
        assert name in declared, f"{name} is not installed (pip install -e .)"
        main = declared[name].load()
        monkeypatch.setattr(sys, "argv", [name, "--help"])
        with pytest.raises(SystemExit) as exit:
            main()
        assert exit.value.code in (None, 0), name
        assert "--" in capsys.readouterr().out, name
    command = Path(sys.executable).parent / "convlstm-nowcast"
    result = subprocess.run([str(command), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("usage: convlstm-nowcast [-h] --model MODEL")
