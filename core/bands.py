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
    path: str | None = None,
) -> list[int]:
    """Return the 1-based band indexes of ``descriptions`` that provide each ``wanted`` band.

    Raises :class:`BandMismatchError` naming the missing bands, what the raster has, and how
    to fix it: choose the bands in the algorithm's Bands parameter, or set band descriptions
    with a command that really does (``gdal_edit.py -mo`` sets metadata items, not descriptions).
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
            f"{len(descriptions)} band(s): {described}. Fix: choose the raster bands in the model's order "
            f"in the algorithm's Bands parameter (qgis_process: --BANDS=N once per band, in that order), or give "
            f"the raster band descriptions (a name for every band, in the raster's order) with the Python that "
            f"QGIS uses (satvision:diagnose shows it; python3 on Linux): "
            f"{description_command(path or 'FILE', _example_names(wanted, len(descriptions)))}"
        )
    return [available[normalise_band_name(band)] for band in wanted]


def description_command(path: str, names: Sequence[str]) -> str:
    """A shell one-liner that sets the band descriptions of ``path`` (GDAL's Python bindings;
    GDAL's command-line tools cannot set descriptions)."""
    return (
        f"python3 -c \"from osgeo import gdal; d = gdal.Open({str(path)!r}, gdal.GA_Update); "
        f"[d.GetRasterBand(i + 1).SetDescription(n) for i, n in enumerate({list(names)!r})]; d = None\""
    )


def _example_names(wanted: Sequence[str], band_count: int) -> list[str]:
    """The model's bands for a raster with exactly that many bands, else a placeholder per band."""
    if band_count == len(wanted):
        return list(wanted)
    return [f"NAME{index}" for index in range(1, band_count + 1)]


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
