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

#: The bands of the Sentinel-2 MSI, as :func:`normalise_band_name` spells them.
SENTINEL2_BAND_IDS = frozenset([f"B{number}" for number in range(1, 13)] + ["B8A"])

#: What separates a band's name from a prefix or suffix in a description (``A_B4``, ``B04-2021-06-01``).
_NAME_SEPARATORS = re.compile(r"([\s_\-.:/|,;()\[\]]+)")


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
    available = plain_band_indexes(descriptions)
    missing = [band for band in wanted if normalise_band_name(band) not in available]
    if missing:
        described = ", ".join(
            f"{index}: {description or '(no description)'}"
            for index, description in enumerate(descriptions, start=1)
        )
        raise BandMismatchError(
            f"{source} lacks band(s) {', '.join(missing)} that the model needs "
            f"(it needs {', '.join(wanted)} in that order). {source[0].upper() + source[1:]} has "
            f"{len(descriptions)} band(s): {described}. {_bands_parameter_fix(wanted, descriptions)}, or give "
            f"the raster band descriptions (a name for every band, in the raster's order) with the Python that "
            f"QGIS uses (satvision:diagnose shows it; python3 on Linux): "
            f"{description_command(path or 'FILE', _example_names(wanted, len(descriptions)))}"
        )
    return [available[normalise_band_name(band)] for band in wanted]


def plain_band_indexes(descriptions: Sequence[str | None]) -> dict[str, int]:
    """Canonical band name -> 1-based band number, for descriptions that are a band's name as a whole
    (``B02``, ``red``); the first band of a name wins."""
    indexes: dict[str, int] = {}
    for index, description in enumerate(descriptions, start=1):
        if description:
            indexes.setdefault(normalise_band_name(description), index)
    return indexes


def affixed_band_sets(descriptions: Sequence[str | None]) -> dict[str, dict[str, int]]:
    """Sentinel-2 bands named with a prefix or suffix, grouped by that naming: ``A_B4`` … ``B_B8``
    (a two-date stack) give ``{'A_*': {'B4': 1, …}, 'B_*': {'B4': 5, …}}``.

    A description counts when exactly one of its words (split at ``_``, ``-``, spaces…) is a band name and
    the whole is not one (``B02`` and ``red`` are matched directly by :func:`match_bands`); ``*`` marks where
    the band's name stands. Band numbers are 1-based; the first band of a name in a set wins.
    """
    sets: dict[str, dict[str, int]] = {}
    for index, description in enumerate(descriptions, start=1):
        if not description or normalise_band_name(description) in SENTINEL2_BAND_IDS:
            continue
        parts = _NAME_SEPARATORS.split(description.strip())
        words = [position for position in range(0, len(parts), 2) if normalise_band_name(parts[position]) in SENTINEL2_BAND_IDS]
        if len(words) != 1:
            continue
        band = normalise_band_name(parts[words[0]])
        pattern = "".join("*" if position == words[0] else part for position, part in enumerate(parts))
        sets.setdefault(pattern, {}).setdefault(band, index)
    return sets


def complete_band_sets(wanted: Sequence[str], descriptions: Sequence[str | None]) -> dict[str, list[int]]:
    """For each naming of :func:`affixed_band_sets` that, with the bands named plainly, provides every
    ``wanted`` band: the 1-based raster bands in ``wanted``'s order (what the Bands parameter takes)."""
    plain = plain_band_indexes(descriptions)
    bands = [normalise_band_name(band) for band in wanted]
    complete: dict[str, list[int]] = {}
    for pattern, named in affixed_band_sets(descriptions).items():
        available = {**plain, **named}
        if any(band in named for band in bands) and all(band in available for band in bands):
            complete[pattern] = [available[band] for band in bands]
    return complete


def _bands_parameter_fix(wanted: Sequence[str], descriptions: Sequence[str | None]) -> str:
    """The Bands-parameter half of the band-mismatch fix: with the band numbers of each set when the raster
    names its bands with a prefix or suffix (several dates in one stack, say). Which set is meant is the
    user's call, never a guess."""
    complete = complete_band_sets(wanted, descriptions)
    if not complete:
        return ("Fix: choose the raster bands in the model's order in the algorithm's Bands parameter "
                "(qgis_process: --BANDS=N once per band, in that order; satvision segment or classify: --bands N,N,…)")
    listed = "; ".join(f"{', '.join(map(str, numbers))} for {pattern}" for pattern, numbers in complete.items())
    pattern, first = next(iter(complete.items()))
    return (
        f"Its band names carry a prefix or suffix ({len(complete)} set(s): several dates in one raster?), so "
        f"{', '.join(wanted)} are raster bands {listed}. Fix: give the set you mean in the algorithm's Bands "
        f"parameter, in that order (qgis_process: {' '.join(f'--BANDS={number}' for number in first)} for {pattern}; "
        f"satvision segment or classify: --bands {','.join(map(str, first))})"
    )


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
