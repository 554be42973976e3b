"""Options shared by ``satvision segment`` and ``satvision classify``: which raster bands, which part of it."""

from __future__ import annotations

import argparse
from typing import Sequence


def band_numbers(text: str) -> list[int]:
    """``3,2,1,4`` -> ``[3, 2, 1, 4]``: 1-based raster bands in the model's order."""
    try:
        numbers = [int(item) for item in text.split(",") if item.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated band numbers such as 3,2,1,4, got {text!r}") from error
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError(f"expected band numbers from 1 up, got {text!r}")
    return numbers


def extent(text: str) -> tuple[float, float, float, float]:
    """``WEST,SOUTH,EAST,NORTH`` in the raster's CRS."""
    try:
        values = tuple(float(item) for item in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected WEST,SOUTH,EAST,NORTH in the raster's CRS, got {text!r}") from error
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"expected four numbers WEST,SOUTH,EAST,NORTH, got {text!r}")
    return values  # type: ignore[return-value]  # four floats, checked above


def add_raster_arguments(parser: argparse.ArgumentParser) -> None:
    """``--bands`` and ``--extent``, as the algorithms' Bands and Limit to extent parameters."""
    parser.add_argument("--bands", type=band_numbers, default=None, metavar="N[,N...]",
                        help="raster bands in the model's order, e.g. 3,2,1,4 (default: match the model's bands, "
                             "such as B2, B3, B4, B8, with the raster's band descriptions)")
    parser.add_argument("--extent", type=extent, default=None, metavar="W,S,E,N",
                        help="process only this part of the raster (west, south, east, north in the raster's CRS)")


def preview_bands(model_bands: Sequence[str], positions: Sequence[int] | None) -> list[int] | None:
    """The raster bands to show as red, green and blue: with ``--bands``, the ones that fed the model's
    B4, B3 and B2 (else its first three, false colour); without, None (B4, B3, B2 by description)."""
    from ..core.bands import normalise_band_name

    if not positions:
        return None
    names = [normalise_band_name(band) for band in model_bands]
    if all(band in names for band in ("B4", "B3", "B2")):
        return [positions[names.index(band)] for band in ("B4", "B3", "B2")]
    return (list(positions) * 3)[:3]  # one or two bands: repeated, so the picture still has three
