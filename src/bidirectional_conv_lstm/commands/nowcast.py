"""Forecast rain from a radar archive with a trained rain model and write a CF-1.8 netCDF (or Zarr) file.

    convlstm-nowcast --model outputs/nowcasting --data-source fmi --root ../shared/radar/fmi/pgm \\
        --time 2017-05-09T14:00 --output forecast.nc --png forecast.png
    convlstm-nowcast --model you/convlstm-nowcasting --pystepsrc my_pystepsrc --data-source knmi --output now.nc
    convlstm-nowcast --model outputs/nowcasting --importer fmi_pgm --importer-kwargs '{"gzipped": true}' \\
        --files '../shared/radar/fmi/pgm/20170509/*.pgm.gz' \\
        --fn-pattern '%Y%m%d%H%M_fmi.radar.composite.lowest_FIN_SUOMI1' --fn-ext pgm.gz --output forecast.nc
    convlstm-nowcast --model outputs/nowcasting --stack frames.nc --output forecast.zarr

The archive is ONE of: a pysteps data source (--data-source NAME from --pystepsrc FILE, default pysteps' own
pystepsrc; --root replaces its root_path), files (--files GLOB or several paths, read by the pysteps --importer,
their times parsed from the names with --fn-pattern), or a stack (--stack: a (time, y, x) netCDF / Zarr variable
in mm/h, or a .npy / .npz array). Only the model's num_input_frames frames ending at --time are read (default
--time: the newest frame of the archive). The whole domain is forecast: a finer grid is block-averaged to the
model's pixel size, and the file holds the forecast on the model's grid (--output-grid input: on the archive's).
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

from ..data.radar.pystepsrc import pystepsrc_data_source
from ..data.radar.sources import RadarSource, as_datetime
from ..models.convlstm.georeferencing_convlstm import OUTPUT_GRIDS
from ..serving.nowcast import check_archive, check_nowcast_paths, nowcast
from ..utils.loading import check_model_name_or_path
from . import program_name


def build_parser() -> argparse.ArgumentParser:
    """The command's options."""
    parser = argparse.ArgumentParser(
        prog=program_name("nowcast.py"),
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="a save_pretrained folder or a Hub repo id")
    archive = parser.add_argument_group("the archive (one of --data-source, --files, --stack)")
    archive.add_argument("--data-source", help="a data_sources entry of the pystepsrc (e.g. fmi, knmi, mch)")
    archive.add_argument("--pystepsrc", help="the pysteps config file (default: the one pysteps finds)")
    archive.add_argument("--root", help="the archive's root folder (replaces the entry's root_path)")
    archive.add_argument("--files", nargs="+", help="radar files: paths or a quoted glob pattern")
    archive.add_argument(
        "--importer", help="the pysteps importer of --files (e.g. fmi_pgm, knmi_hdf5, odim_hdf5)"
    )
    archive.add_argument("--importer-kwargs", default="{}", help="the importer's keyword arguments, as JSON")
    archive.add_argument("--fn-pattern", help="strftime pattern of the --files names without extension")
    archive.add_argument("--fn-ext", default="", help="the extension of the --files names (e.g. pgm.gz)")
    archive.add_argument("--stack", help="a (time, y, x) netCDF / Zarr stack in mm/h, or a .npy / .npz array")
    archive.add_argument("--variable", help="the stack's variable (default: its only 3-D one)")
    parser.add_argument(
        "--time", help="the last observed frame, UTC (ISO 8601 or %%Y%%m%%d%%H%%M; default: newest)"
    )
    parser.add_argument("--num-output-frames", "--num_output_frames", type=int, help="default: the model's")
    parser.add_argument("--output", default="forecast.nc", help="the forecast file: .nc (netCDF-4) or .zarr")
    parser.add_argument("--png", help="also draw the observed and forecast frames as a PNG strip")
    parser.add_argument("--gif", help="also draw them as a GIF")
    parser.add_argument("--allow-missing", action="store_true", help="interpolate a missing frame in time")
    parser.add_argument("--output-grid", choices=OUTPUT_GRIDS, default="model", help="the forecast's grid")
    return parser


def archive_arguments(args: argparse.Namespace) -> dict:
    """The RadarSource fields (no time range) of the archive the options name.

    Raises:
        ValueError / FileNotFoundError / TypeError: naming the option.
    """
    given = [name for name in ("data_source", "files", "stack") if getattr(args, name)]
    if len(given) != 1:
        shown = [f"--{name.replace('_', '-')}" for name in given] or "none"
        raise ValueError(f"give the archive as one of --data-source, --files or --stack; got {shown}")
    if args.stack:
        return {"name": Path(args.stack).stem, "path": args.stack, "variable": args.variable}
    if args.files:
        return _file_list(args)
    entry = pystepsrc_data_source(args.data_source, args.pystepsrc)
    if args.root is not None:
        entry["root_path"] = args.root
    if not entry.get("root_path") or not Path(entry["root_path"]).expanduser().is_dir():
        raise FileNotFoundError(
            f"--data-source {args.data_source}: its root_path {entry.get('root_path')!r} is not a folder (--root "
            "sets it)"
        )
    source = RadarSource.from_pystepsrc(args.data_source, entry, start="2000-01-01", end="2000-01-01")
    return {key: value for key, value in source.to_dict().items() if key not in ("start", "end")}


def _file_list(args: argparse.Namespace) -> dict:
    if not args.importer:
        raise ValueError("--files needs --importer (a pysteps importer name, e.g. fmi_pgm)")
    if not args.fn_pattern:
        raise ValueError(
            "--files needs --fn-pattern (the strftime pattern of the file names) for their times"
        )
    paths = []
    for item in args.files:
        matches = sorted(glob.glob(str(Path(item).expanduser()))) if glob.has_magic(item) else [item]
        if not matches:
            raise FileNotFoundError(f"--files: no file matches {item!r}")
        paths += matches
    try:
        importer_kwargs = json.loads(args.importer_kwargs)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"--importer-kwargs must be a JSON object, got {args.importer_kwargs!r}: {error}"
        ) from None
    if not isinstance(importer_kwargs, dict):
        raise ValueError(f"--importer-kwargs must be a JSON object, got {args.importer_kwargs!r}")
    return {
        "name": Path(paths[0]).parent.name or "files",
        "files": paths,
        "importer": args.importer,
        "importer_kwargs": importer_kwargs,
        "fn_pattern": args.fn_pattern,
        "fn_ext": args.fn_ext,
    }


def main(argv: list[str] | None = None) -> None:
    """Run the command with `argv` (default: ``sys.argv[1:]``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:  # every argument is checked here, before the model loads or a frame is read
        check_model_name_or_path(args.model, argument="--model")
        check_nowcast_paths(args.output, args.png, args.gif)
        archive = archive_arguments(args)
        check_archive(archive)
        time = None if args.time is None else as_datetime(args.time, "--time")
        if args.num_output_frames is not None and args.num_output_frames < 1:
            raise ValueError(f"--num-output-frames must be at least 1, got {args.num_output_frames}")
    except (ValueError, TypeError, FileNotFoundError, ImportError) as error:
        parser.error(str(error).replace("\n", " "))
    try:
        report = nowcast(
            args.model,
            archive,
            args.output,
            time=time,
            num_output_frames=args.num_output_frames,
            allow_missing=args.allow_missing,
            output_grid=args.output_grid,
            png=args.png,
            gif=args.gif,
        )
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise SystemExit(f"{parser.prog}: error: {error}") from None
    print("\n".join(report.summary()))
