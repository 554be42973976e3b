"""The output grid of a download and its split into request tiles.

The grid is snapped to the resolution (its corners are multiples of the pixel size in the
output CRS), so downloads of neighbouring extents line up pixel for pixel, and every request
tile is a window of that one grid: tiles meet without gaps or overlaps by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from ..core.errors import SatVisionError
from ..core.raster import Grid
from ..core.utm import utm_crs

#: computePixels refuses requests over 48 MB uncompressed or 32768 px per side.
MAX_REQUEST_BYTES = 48 * 10**6
MAX_REQUEST_SIDE = 32768
DEFAULT_TILE_SIZE = 512


def check_bounds(bounds: tuple[float, float, float, float]) -> None:
    west, south, east, north = bounds
    if not all(math.isfinite(value) for value in bounds):
        raise SatVisionError(
            f"The extent ({west}, {south}, {east}, {north}) has a coordinate that is not a finite number. "
            "Give four numbers: west, south, east, north."
        )
    if east <= west or north <= south:
        raise SatVisionError(
            f"The extent ({west:g}, {south:g}, {east:g}, {north:g}) has zero area. Draw or choose an "
            "extent with a width and a height (or a polygon layer with an area)."
        )


def check_on_earth(bounds: tuple[float, float, float, float], source: CRS) -> None:
    """Refuse an extent that, in longitude and latitude, reaches beyond -180..180 or -90..90 (a
    latitude of 95 would otherwise give a 3 × 1 px download at the pole)."""
    tolerance = 1e-9
    try:
        lonlat = transform_bounds(source, "EPSG:4326", *bounds, densify_pts=21)
    except Exception:  # noqa: BLE001 - PROJ refuses points far outside the CRS's area
        lonlat = (math.nan,) * 4
    if all(math.isfinite(value) for value in lonlat) and not source.is_geographic and not _round_trips(bounds, source):
        lonlat = (math.nan,) * 4  # e.g. Web Mercator x beyond ±20,037 km: PROJ wraps the longitude silently
    west, south, east, north = lonlat
    inside = (all(math.isfinite(value) for value in lonlat) and -90 - tolerance <= south and north <= 90 + tolerance
              and -180 - tolerance <= min(west, east) and max(west, east) <= 180 + tolerance)
    if not inside:
        given = ", ".join(f"{value:g}" for value in bounds)
        where = (f"in longitude/latitude it is ({', '.join(f'{value:.6g}' for value in lonlat)}), but"
                 if all(math.isfinite(value) for value in lonlat) else "it has no longitude/latitude there:")
        raise SatVisionError(
            f"The extent ({given} in {source.to_string()}) lies partly off the Earth: {where} longitudes run "
            "from -180 to 180 and latitudes from -90 to 90. Check the coordinates and their order (west, south, "
            "east, north; in qgis_process \"xmin,xmax,ymin,ymax [CRS]\") and that the extent's CRS is the one "
            "they are in."
        )


def _round_trips(bounds: tuple[float, float, float, float], source: CRS) -> bool:
    """Whether the extent's corners come back (within a metre) from longitude/latitude."""
    from rasterio.warp import transform as transform_points

    west, south, east, north = bounds
    xs, ys = [west, east, east, west], [south, south, north, north]
    try:
        lons, lats = transform_points(source, "EPSG:4326", xs, ys)
        back_x, back_y = transform_points("EPSG:4326", source, lons, lats)
    except Exception:  # noqa: BLE001 - PROJ refuses points far outside the CRS's area
        return False
    return all(math.isfinite(a) and abs(a - b) <= 1.0 for a, b in zip([*back_x, *back_y], [*xs, *ys]))


def output_grid(
    bounds: tuple[float, float, float, float],
    bounds_crs: CRS | str,
    resolution: float,
    crs: CRS | str | None = None,
) -> Grid:
    """The grid covering ``bounds`` at ``resolution`` in ``crs`` (default: UTM of the centre)."""
    check_bounds(bounds)
    if not math.isfinite(resolution) or resolution <= 0:
        raise SatVisionError(
            f"The resolution must be a positive number of metres (got {resolution}); Sentinel-2's native one is 10 m."
        )
    source = CRS.from_user_input(bounds_crs)
    check_on_earth(bounds, source)
    if crs is None:
        west, south, east, north = transform_bounds(source, "EPSG:4326", *bounds, densify_pts=21)
        target = utm_crs((west + east) / 2.0, (south + north) / 2.0)
    else:
        target = CRS.from_user_input(crs)
    if target.is_geographic:
        raise SatVisionError(
            f"The output CRS {target.to_string()} is geographic (degrees); give a projected CRS in metres, "
            "or leave it empty for the UTM zone of the extent."
        )
    west, south, east, north = transform_bounds(source, target, *bounds, densify_pts=21)
    check_bounds((west, south, east, north))
    x0 = math.floor(west / resolution) * resolution
    y0 = math.ceil(north / resolution) * resolution
    width = max(1, int(round((math.ceil(east / resolution) * resolution - x0) / resolution)))
    height = max(1, int(round((y0 - math.floor(south / resolution) * resolution) / resolution)))
    return Grid(crs=target, transform=Affine(resolution, 0.0, x0, 0.0, -resolution, y0), width=width, height=height)


def request_tile_size(requested: int, bands: int, bytes_per_sample: int) -> int:
    """``requested`` px per side, lowered until one request stays under the service's limits."""
    side = max(16, min(int(requested), MAX_REQUEST_SIDE))
    while side * side * bands * bytes_per_sample > MAX_REQUEST_BYTES:
        side //= 2
    return side


@dataclass(frozen=True)
class RequestTile:
    index: int
    window: Window

    def grid(self, grid: Grid) -> dict:
        """The ``grid`` argument of ``computePixels`` for this tile (upper-left corner + size)."""
        transform = grid.transform * Affine.translation(self.window.col_off, self.window.row_off)
        return {
            "dimensions": {"width": int(self.window.width), "height": int(self.window.height)},
            "affineTransform": {
                "scaleX": transform.a, "shearX": transform.b, "translateX": transform.c,
                "shearY": transform.d, "scaleY": transform.e, "translateY": transform.f,
            },
            **crs_reference(grid.crs),
        }


def crs_code(crs: CRS) -> str:
    """"EPSG:n" where the CRS has an EPSG code, else its WKT."""
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def crs_reference(crs: CRS) -> dict:
    """``crsCode`` for CRSs with an EPSG code, else ``crsWkt`` (for ``computePixels`` grids)."""
    code = crs_code(crs)
    return {"crsCode": code} if code.startswith("EPSG:") else {"crsWkt": code}


def request_tiles(grid: Grid, tile_size: int) -> Iterator[RequestTile]:
    """Row-major tiles of at most ``tile_size`` px per side covering ``grid`` exactly once."""
    index = 0
    for row in range(0, grid.height, tile_size):
        for column in range(0, grid.width, tile_size):
            width = min(tile_size, grid.width - column)
            height = min(tile_size, grid.height - row)
            yield RequestTile(index, Window(column, row, width, height))
            index += 1


def tile_count(grid: Grid, tile_size: int) -> int:
    return math.ceil(grid.width / tile_size) * math.ceil(grid.height / tile_size)
