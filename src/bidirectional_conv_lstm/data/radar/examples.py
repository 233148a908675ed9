"""The five sample events of pysteps' example data (``pySTEPS/pysteps-data``) as :class:`RadarSource` entries:
real KNMI, FMI and BoM composites for development, tests and published figures. They are not part of the library;
point :func:`example_radar_sources` at a copy of the data's ``radar`` folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from .sources import RadarSource

__all__ = ["EXAMPLE_EVENTS", "example_radar_sources"]

#: The events' names, as :func:`example_radar_sources` keys them.
EXAMPLE_EVENTS = ("knmi_20100826", "fmi_20160928", "fmi_20170509", "bom66_20201031", "bom2_20180616")


def example_radar_sources(root: str | os.PathLike) -> dict[str, RadarSource]:
    """The five sample events of pysteps' example data (``pySTEPS/pysteps-data``), as laid out under ``root``.

    Names: ``knmi_20100826`` (KNMI HDF5, 5-min accumulations), ``fmi_20160928`` and ``fmi_20170509`` (FMI gzipped
    PGM, dBZ), ``bom66_20201031`` (BoM radar 66, 10-min accumulations) and ``bom2_20180616`` (BoM radar 2,
    6-min accumulations). File patterns are pysteps' default ``pystepsrc`` ones.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"root {str(root)!r} is not a folder (expected the pysteps-data radar folder)"
        )
    fmi = {
        "root": root / "fmi" / "pgm",
        "path_fmt": "%Y%m%d",
        "fn_pattern": "%Y%m%d%H%M_fmi.radar.composite.lowest_FIN_SUOMI1",
        "fn_ext": "pgm.gz",
        "importer": "fmi_pgm",
        "importer_kwargs": {"gzipped": True},
        "timestep": 5,
    }
    bom = {"root": root / "bom", "fn_ext": "nc", "importer": "bom_rf3"}
    sources = [
        RadarSource(
            name="knmi_20100826",
            root=root / "KNMI",
            path_fmt="%Y/%m",
            fn_pattern="RAD_NL25_RAP_5min_%Y%m%d%H%M",
            fn_ext="h5",
            importer="knmi_hdf5",
            importer_kwargs={"accutime": 5, "qty": "ACRR", "pixelsize": 1000.0},
            timestep=5,
            start="2010-08-26T00:00",
            end="2010-08-26T07:35",
        ),
        RadarSource(name="fmi_20160928", start="2016-09-28T14:45", end="2016-09-28T18:00", **fmi),
        RadarSource(name="fmi_20170509", start="2017-05-09T10:45", end="2017-05-09T14:00", **fmi),
        RadarSource(
            name="bom66_20201031",
            path_fmt="prcp-c10/66/%Y/%m/%d",
            fn_pattern="66_%Y%m%d_%H%M%S.prcp-c10",
            timestep=10,
            start="2020-10-31T00:00",
            end="2020-10-31T23:50",
            **bom,
        ),
        RadarSource(
            name="bom2_20180616",
            path_fmt="prcp-cscn/2/%Y/%m/%d",
            fn_pattern="2_%Y%m%d_%H%M%S.prcp-cscn",
            timestep=6,
            start="2018-06-16T10:00",
            end="2018-06-16T16:00",
            **bom,
        ),
    ]
    return {source.name: source for source in sources}
