"""The WGS 84 / UTM zone of a point: the one formula every job uses (model grids, fetch, synthetic imagery)."""

from __future__ import annotations

import math

from rasterio.crs import CRS


def utm_zone(longitude: float) -> int:
    """UTM zone 1–60 of a longitude in degrees, any longitude (wrapped into [-180, 180) first:
    190° E is 170° W, zone 2)."""
    wrapped = (longitude + 180.0) % 360.0 - 180.0
    return min(60, int(math.floor((wrapped + 180.0) / 6.0)) + 1)


def utm_crs(longitude: float, latitude: float) -> CRS:
    """The WGS 84 / UTM zone CRS of a point (EPSG:326xx north of the equator, 327xx south)."""
    return CRS.from_epsg((32600 if latitude >= 0 else 32700) + utm_zone(longitude))


def is_utm(crs: CRS) -> bool:
    """Whether ``crs`` is a WGS 84 / UTM zone (EPSG:32601–32660, 32701–32760)."""
    epsg = crs.to_epsg() or 0
    return 32601 <= epsg <= 32660 or 32701 <= epsg <= 32760
