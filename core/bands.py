"""Band names: normalising Sentinel-2 band labels and matching a model's bands to a raster's."""

from __future__ import annotations

import re
from typing import Sequence

from .errors import BandMismatchError

#: Sentinel-2 common names (STAC ``eo:common_name``) mapped to band ids.
SENTINEL2_COMMON_NAMES = {
    "coastal": "B1",
    "blue": "B2",
    "green": "B3",
    "red": "B4",
    "rededge1": "B5",
    "rededge2": "B6",
    "rededge3": "B7",
    "nir": "B8",
    "nir08": "B8A",
    "nirnarrow": "B8A",
    "watervapour": "B9",
    "watervapor": "B9",
    "cirrus": "B10",
    "swir16": "B11",
    "swir22": "B12",
}

_BAND_ID = re.compile(r"^B0*(\d{1,2})(A?)$")


def normalise_band_name(name: str) -> str:
    """Return a canonical band label: ``'B02'`` → ``'B2'``, ``'b8a'`` → ``'B8A'``, ``'red'`` → ``'B4'``.

    Other labels (``'SCL'``, ``'water'``) are returned upper-cased and stripped, so matching is
    case-insensitive everywhere.
    """
    cleaned = name.strip().upper().replace(" ", "").replace("_", "").replace("-", "")
    match = _BAND_ID.match(cleaned)
    if match:
        return f"B{int(match.group(1))}{match.group(2)}"
    return SENTINEL2_COMMON_NAMES.get(cleaned.lower(), cleaned)


def match_bands(
    wanted: Sequence[str],
    descriptions: Sequence[str | None],
    *,
    source: str = "the raster",
) -> list[int]:
    """Return the 1-based band indexes of ``descriptions`` that provide each ``wanted`` band.

    Raises :class:`BandMismatchError` naming the missing bands, what the raster has, and how
    to fix it (set band descriptions, or map bands by position explicitly).
    """
    available: dict[str, int] = {}
    for index, description in enumerate(descriptions, start=1):
        if description:
            available.setdefault(normalise_band_name(description), index)
    missing = [band for band in wanted if normalise_band_name(band) not in available]
    if missing:
        described = ", ".join(
            f"{index}: {description or '(no description)'}"
            for index, description in enumerate(descriptions, start=1)
        )
        raise BandMismatchError(
            f"{source} lacks band(s) {', '.join(missing)} that the model needs "
            f"(it needs {', '.join(wanted)} in that order). {source[0].upper() + source[1:]} has "
            f"{len(descriptions)} band(s): {described}. Fix: give the raster band descriptions "
            f"(e.g. gdal_edit.py -mo or a GeoTIFF written with band names), or map the bands "
            f"by position explicitly."
        )
    return [available[normalise_band_name(band)] for band in wanted]


def check_band_positions(positions: Sequence[int], band_count: int, wanted: Sequence[str]) -> list[int]:
    """Validate an explicit, 1-based band mapping by position against the raster's band count."""
    if len(positions) != len(wanted):
        raise BandMismatchError(
            f"The band mapping lists {len(positions)} band(s) but the model needs {len(wanted)} "
            f"({', '.join(wanted)}). Give one raster band number per model band, in that order."
        )
    outside = [position for position in positions if not 1 <= position <= band_count]
    if outside:
        raise BandMismatchError(
            f"Band number(s) {', '.join(map(str, outside))} do not exist: the raster has "
            f"{band_count} band(s), numbered 1 to {band_count}."
        )
    return list(positions)
