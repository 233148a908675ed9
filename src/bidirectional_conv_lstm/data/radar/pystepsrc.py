"""Data sources from a pysteps ``pystepsrc`` file (its ``data_sources`` entries: ``root_path``, ``path_fmt``,
``fn_pattern``, ``fn_ext``, ``importer``, ``timestep``, ``importer_kwargs``), read by pysteps' own loader.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from .archive import import_pysteps

__all__ = ["pystepsrc_data_source", "pystepsrc_path"]


def pystepsrc_path(pystepsrc: str | os.PathLike | None = None) -> Path:
    """The pystepsrc file to read: `pystepsrc` itself, or (None) the one pysteps finds (``$PYSTEPSRC``, the
    working folder, the user's config folder, else the copy installed with pysteps).

    Raises:
        FileNotFoundError: `pystepsrc` is not a file.
        ImportError: None given and pysteps is not installed.
    """
    if pystepsrc is not None:
        path = Path(pystepsrc).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"pystepsrc {str(path)!r} is not a file")
        return path
    pysteps = import_pysteps("finding pysteps' pystepsrc")
    with contextlib.redirect_stdout(io.StringIO()):
        return Path(pysteps.config_fname())


def pystepsrc_data_source(name: str, pystepsrc: str | os.PathLike | None = None) -> dict:
    """The ``data_sources[name]`` entry of a pystepsrc file (see :func:`pystepsrc_path`) as a plain dict, ready
    for :meth:`RadarSource.from_pystepsrc <bidirectional_conv_lstm.data.radar.sources.RadarSource.from_pystepsrc>`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file cannot be parsed, or has no data source `name` (the message lists those it has).
    """
    path = pystepsrc_path(pystepsrc)
    pysteps = import_pysteps(f"reading the pystepsrc {str(path)!r}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            config = pysteps.load_config_file(str(path), verbose=False, dryrun=True)
    except (
        ValueError,
        OSError,
        RuntimeError,
    ) as error:  # RuntimeError: pysteps' schema check, one line per fault
        reason = "; ".join(line for line in str(error).splitlines() if line.strip())
        raise ValueError(f"pystepsrc {str(path)!r} is not a valid pysteps config file: {reason}") from None
    sources = dict(config.get("data_sources") or {})
    if name not in sources:
        raise ValueError(f"pystepsrc {str(path)!r} has no data source {name!r}; it has {sorted(sources)}")
    return _plain(sources[name])


def _plain(value):
    """pysteps' attribute dicts as plain dicts (recursively)."""
    return {key: _plain(item) for key, item in value.items()} if isinstance(value, dict) else value
