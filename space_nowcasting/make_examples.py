"""Write the nowcasting Space's bundled sample radar events into space_nowcasting/examples/.

    python space_nowcasting/make_examples.py --radar_root ../shared/radar

Each sample is a short stretch of a real radar event of pysteps' example data (``pySTEPS/pysteps-data``), read
through the package's pysteps importers as rain rate in mm/h, block-averaged from 1 km to 4 km (the grid the
nowcasting recipe trains on) and saved as a small CF-style netCDF file: ``precip_intensity`` (time, y, x) in
``mm h-1``, packed to 0.01 mm/h in uint16 with zlib compression, no data as ``_FillValue``, ``x`` / ``y``
projection coordinates in metres (pixel centres; cropped to the pixels with data), the proj4 ``projection`` and
the ``institution`` as attributes.
"""

from __future__ import annotations

import argparse
import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import xarray

from bidirectional_conv_lstm.data.radar.archive import read_radar_archive
from bidirectional_conv_lstm.data.radar.examples import example_radar_sources
from bidirectional_conv_lstm.data.radar.xarray_frames import radar_sequence_to_data_array

# (event, last frame, title): stretches with rain moving across the domain. FMI 2017-05-09 is one of the
# nowcasting recipe's test events (never trained on); KNMI 2010-08-26 is a training event.
SAMPLES = (
    ("fmi_20170509", datetime(2017, 5, 9, 13, 0), "FMI (Finland), 2017-05-09"),
    ("knmi_20100826", datetime(2010, 8, 26, 5, 0), "KNMI (Netherlands), 2010-08-26"),
)
DOWNSAMPLE = 4  # 1 km -> 4 km
PACKING = 0.01  # mm/h per unit of the stored uint16
FILL = np.iinfo(np.uint16).max


def sample_array(sequence, title: str) -> xarray.DataArray:
    """A RadarSequence at 1 km -> the (time, y, x) DataArray at 4 km: the package's DataArray of the sequence
    block-averaged (a block with any no-data pixel is no data), x / y the blocks' centres in metres."""
    array = radar_sequence_to_data_array(sequence)
    blocks = array.coarsen(y=DOWNSAMPLE, x=DOWNSAMPLE, boundary="trim")  # coordinates: the blocks' mean
    coarse = blocks.reduce(np.mean, dtype=np.float64)  # np.mean: NaN in a block makes it NaN
    attrs = {
        "units": "mm h-1",
        "long_name": "precipitation intensity",
        "title": title,
        "projection": array.attrs["projection"],
        "institution": array.attrs.get("institution", ""),
        "source": "pySTEPS/pysteps-data radar example data, block-averaged from 1 km to 4 km",
    }
    coarse = coarse.astype(np.float32)
    coarse.attrs = attrs
    return coarse


def crop_to_data(array: xarray.DataArray) -> xarray.DataArray:
    """The smallest rectangle holding every pixel with data in some frame (KNMI's composite is mostly outside
    its radars' range)."""
    seen = array.notnull().any("time")
    rows, cols = np.flatnonzero(seen.any("x").values), np.flatnonzero(seen.any("y").values)
    return array.isel(y=slice(rows[0], rows[-1] + 1), x=slice(cols[0], cols[-1] + 1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--radar_root", default="../shared/radar", help="the pysteps-data radar folder")
    parser.add_argument("--output_dir", default=str(Path(__file__).parent / "examples"))
    parser.add_argument(
        "--num_frames", type=int, default=16, help="frames per sample (4 observed + 12 later)"
    )
    names = [name for name, *_ in SAMPLES]
    parser.add_argument("--events", nargs="+", choices=names, default=names, help="the samples to write")
    args = parser.parse_args(argv)
    sources = example_radar_sources(args.radar_root)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, last, title in (sample for sample in SAMPLES if sample[0] in args.events):
        first = last - timedelta(minutes=sources[name].timestep * (args.num_frames - 1))
        sequence = read_radar_archive(dataclasses.replace(sources[name], start=first, end=last))
        array = crop_to_data(sample_array(sequence, title))
        encoding = {
            "dtype": "uint16",
            "scale_factor": np.float32(PACKING),
            "_FillValue": FILL,
            "zlib": True,
            "complevel": 9,
        }
        path = output_dir / f"{name}.nc"
        array.to_netcdf(path, encoding={array.name: encoding})
        print(f"{path}: {array.shape} at {array.x[1] - array.x[0]:.0f} m, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
