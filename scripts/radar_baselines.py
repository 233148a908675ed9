"""The published baseline figures: persistence vs Lucas-Kanade extrapolation vs S-PROG on real radar events.

    python scripts/radar_baselines.py                      # the five sample events under ../shared/radar
    python scripts/radar_baselines.py /data/pysteps-data/radar --events knmi_20100826 --output_dir outputs/lk

4 observed frames -> 12 forecast frames, origins every 20 minutes, grids block-averaged to 2 km, each event at its
native time step (5, 6 or 10 minutes); events of one time step are pooled. Writes baselines.md (CSI at 0.5 and
2 mm/h, FSS at 1 mm/h on 16-pixel windows, at +60 min and over all lead times), metrics.json (every score, per
event and pooled, per lead time) and pictures (per event: forecast strip, GIF, a radar frame; per time step:
scores against lead time). Needs the nowcasting extra (pip install -e ".[nowcasting]").
"""

import argparse

from bidirectional_conv_lstm.data import example_radar_sources
from bidirectional_conv_lstm.nowcasting.radar_baselines import (
    DEFAULT_METHODS,
    baselines_report,
    run_radar_baselines,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", nargs="?", default="../shared/radar", help="the pysteps-data radar folder")
    parser.add_argument("--events", nargs="+", help="event names (default: all five sample events)")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(DEFAULT_METHODS),
        help=f"baseline names (default: {' '.join(DEFAULT_METHODS)}; the ensemble 'steps' and 'anvil' are slower)",
    )
    parser.add_argument("--output_dir", default="outputs/radar_baselines")
    parser.add_argument("--num_input_frames", type=int, default=4)
    parser.add_argument("--num_output_frames", type=int, default=12)
    parser.add_argument("--origin_every_minutes", type=float, default=20.0)
    parser.add_argument(
        "--pixel_km", type=float, default=2.0, help="block-average the grids to this; 0 = native"
    )
    parser.add_argument("--lead_time_minutes", type=float, default=60.0)
    parser.add_argument("--num_workers", type=int, default=2, help="processes reading each archive")
    parser.add_argument("--cache_dir", help="keep the events as read and reuse them (BoM's importer is slow)")
    parser.add_argument("--max_windows_per_event", type=int, help="a quick check on the first windows only")
    parser.add_argument("--no_pictures", action="store_true")
    args = parser.parse_args()
    try:
        sources = example_radar_sources(args.root)
        if args.events:
            unknown = sorted(set(args.events) - set(sources))
            if unknown:
                raise ValueError(f"unknown events {unknown}; the sample events are {sorted(sources)}")
            sources = {name: sources[name] for name in args.events}
        report = run_radar_baselines(
            sources,
            args.output_dir,
            methods=args.methods,
            num_input_frames=args.num_input_frames,
            num_output_frames=args.num_output_frames,
            origin_every_minutes=args.origin_every_minutes,
            pixel_km=args.pixel_km or None,
            lead_time_minutes=args.lead_time_minutes,
            num_workers=args.num_workers,
            cache_dir=args.cache_dir,
            max_windows_per_event=args.max_windows_per_event,
            pictures=not args.no_pictures,
        )
    except (ValueError, TypeError, FileNotFoundError, ImportError) as error:
        parser.error(str(error))
    print(baselines_report(report))


if __name__ == "__main__":
    main()
