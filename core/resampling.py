"""Bringing rasters to a model's ground sample distance and back.

A raster in a geographic CRS, at another pixel size than the model's GSD, or not north-up (a
geotransform with rotation or shear terms) is read through a GDAL warped VRT on an estimated
north-up UTM grid at the model's GSD that covers its whole footprint (windowed reads, so memory
stays bounded); results computed there are warped back onto the input grid the same way.
"""

from __future__ import annotations

from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import Affine, array_bounds
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform
from rasterio.warp import transform as transform_points

from .raster import Grid
from .utm import is_utm, utm_crs

#: Relative pixel-size difference under which a raster counts as being at the model's GSD.
GSD_TOLERANCE = 0.02


def grid_centre_lonlat(grid: Grid) -> tuple[float, float]:
    x, y = grid.transform * (grid.width / 2, grid.height / 2)  # also the centre of a rotated grid
    lons, lats = transform_points(grid.crs, CRS.from_epsg(4326), [x], [y])
    return lons[0], lats[0]


def is_north_up(transform: Affine) -> bool:
    """True for a geotransform without rotation or shear whose rows run north to south."""
    return transform.b == 0 and transform.d == 0 and transform.a > 0 and transform.e < 0


def needs_resampling(grid: Grid, gsd_m: float) -> bool:
    """True when ``grid`` is not a north-up UTM grid at ``gsd_m`` metres (within :data:`GSD_TOLERANCE`)."""
    if not is_utm(grid.crs) or not is_north_up(grid.transform):
        return True
    return any(abs(size - gsd_m) / gsd_m > GSD_TOLERANCE for size in grid.pixel_size)


def model_grid(grid: Grid, gsd_m: float) -> Grid:
    """The north-up UTM grid at ``gsd_m`` covering ``grid`` (its own UTM zone when it already is UTM)."""
    target_crs = grid.crs if is_utm(grid.crs) else utm_crs(*grid_centre_lonlat(grid))
    if is_north_up(grid.transform):
        west, south, east, north = array_bounds(grid.height, grid.width, grid.transform)
        footprint = {"left": west, "bottom": south, "right": east, "top": north}
    else:
        # The bounds of a rotated or sheared transform's array are not its footprint (part of
        # the raster would fall outside). Its four corners as GCPs make GDAL follow every edge.
        corners = [(0, 0), (grid.width, 0), (grid.width, grid.height), (0, grid.height)]
        footprint = {"gcps": [GroundControlPoint(row, column, *(grid.transform * (column, row))) for column, row in corners]}
    transform, width, height = calculate_default_transform(
        grid.crs, target_crs, grid.width, grid.height, resolution=gsd_m, **footprint
    )
    if "gcps" in footprint:  # GDAL rounds the size to whole pixels: a pixel more each side keeps every edge
        transform, width, height = transform * Affine.translation(-1, -1), width + 2, height + 2
    return Grid(target_crs, transform, width, height)


def warped(dataset, grid: Grid, resampling: Resampling = Resampling.bilinear, **options) -> WarpedVRT:
    """A windowed-readable view of ``dataset`` on ``grid``."""
    return WarpedVRT(
        dataset, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height, resampling=resampling, **options
    )
