"""The Sentinel-2 fetch job: extent and dates in, an analysis-ready GeoTIFF out.

Order of work, cheapest check first: the query and the grid are validated and the download
size estimated (an area over the limit is refused before any request), then the client is
connected, one value request lists the scenes (an empty collection is explained with the
counts found), and the pixels are downloaded tile by tile into a GeoTIFF that appears only
when complete.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..core.diskspace import check_free_space, explain_no_space
from ..core.errors import SatVisionError
from ..core.outputs import check_outputs
from ..core.outputs import raster as raster_output
from ..core.raster import Grid, write_geotiff
from ..core.scratch import remove_stale_scratch
from ..core.terminate import cleanup_on_terminate
from .connection import Connection, ConnectionSettings, connect
from .download import DownloadStats, RetryPolicy, download
from .errors import EmptyCollectionError, explain
from .grid import DEFAULT_TILE_SIZE, crs_code, output_grid, request_tile_size, tile_count
from .sentinel2 import (
    LABEL_BAND,
    NODATA,
    REFLECTANCE_SCALE,
    Sentinel2Query,
    output_image,
    region,
    scene_summary,
)

DEFAULT_MAX_MEGABYTES = 2048.0
BYTES_PER_SAMPLE = 2  # uint16


@dataclass(frozen=True)
class FetchSettings:
    """Where, at what resolution and how hard to fetch."""

    bounds: tuple[float, float, float, float]
    bounds_crs: str = "EPSG:4326"
    resolution: float = 10.0
    crs: str | None = None
    tile_size: int = DEFAULT_TILE_SIZE
    max_parallel: int = 16
    #: refuse a download whose uncompressed size would exceed this
    max_megabytes: float = DEFAULT_MAX_MEGABYTES
    retry: RetryPolicy = RetryPolicy()


@dataclass(frozen=True)
class Scene:
    id: str
    date: str
    cloud: float

    def describe(self) -> str:
        return f"{self.id} ({self.date}, {self.cloud:.1f} % cloud)"


@dataclass
class FetchResult:
    path: Path
    grid: Grid
    bands: tuple[str, ...]
    scenes: list[Scene]
    stats: DownloadStats
    connection: Connection
    estimated_bytes: int
    tile_size: int


def plan(query: Sentinel2Query, settings: FetchSettings, band_count: int | None = None) -> tuple[Grid, int, int]:
    """The output grid, the request tile size and the estimated size in bytes; refuses oversize areas."""
    grid = output_grid(settings.bounds, settings.bounds_crs, settings.resolution, settings.crs)
    bands = band_count or len(query.output_bands)
    estimated = grid.width * grid.height * bands * BYTES_PER_SAMPLE
    if estimated > settings.max_megabytes * 10**6:
        raise SatVisionError(
            f"This download would be {format_bytes(estimated)} ({grid.width} x {grid.height} px x {bands} bands "
            f"at {settings.resolution:g} m), over the limit of {format_bytes(settings.max_megabytes * 10**6)}. "
            "Choose a smaller extent, a coarser resolution or fewer bands, or raise 'Maximum download size'."
        )
    return grid, request_tile_size(settings.tile_size, bands, BYTES_PER_SAMPLE), estimated


def connect_for(settings: FetchSettings, connection_settings: ConnectionSettings) -> Connection:
    """Connect with an HTTP pool sized for the download's parallel requests."""
    return connect(dataclasses.replace(connection_settings, max_parallel_requests=settings.max_parallel))


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def format_bytes(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def first_request(query: Sentinel2Query, settings: FetchSettings) -> dict[str, Any]:
    """The body of the first pixel request the fetch would send (expression serialised as on the wire)."""
    import ee

    from .grid import request_tiles

    grid, tile_size, _ = plan(query, settings)
    area = region(grid_bounds(grid), crs_code(grid.crs))
    tile = next(iter(request_tiles(grid, tile_size)))
    return {
        "expression": ee.serializer.encode(output_image(query, area), for_cloud_api=True),
        "fileFormat": "NPY",
        "bandIds": list(query.output_bands),
        "grid": tile.grid(grid),
    }


def list_scenes(query: Sentinel2Query, area: Any, connection: Connection) -> list[Scene]:
    """The scenes the composite uses; an explained error when there are none."""
    import ee

    try:
        summary = ee.data.computeValue(scene_summary(query, area))
    except Exception as error:  # noqa: BLE001 - explained
        raise explain(error, connection.project, connection.credentials.kind) from None
    scenes = [
        Scene(str(scene_id), dt.datetime.fromtimestamp(time_ms / 1000, dt.timezone.utc).date().isoformat(), float(cloud))
        for scene_id, time_ms, cloud in summary.get("scenes") or []
    ]
    if not scenes:
        found = int(summary.get("found") or 0)
        dates = f"between {query.start} and {query.end}"
        if found == 0:
            raise EmptyCollectionError(
                f"No Sentinel-2 {query.level} scene covers the extent {dates}. Widen the dates (Sentinel-2 "
                "revisits every 5 days; L2A starts in 2017 outside Europe) or check the extent's location."
            )
        low, high = summary.get("cloud_min"), summary.get("cloud_max")
        spread = f" their scene cloud cover is {low:.0f}-{high:.0f} %" if low is not None and high is not None else ""
        raise EmptyCollectionError(
            f"No Sentinel-2 {query.level} scene {dates} has at most {query.max_cloud:g} % cloud: {found} "
            f"scene{'s' if found != 1 else ''} cover the extent, but{spread or ' all are cloudier'}. Raise "
            "'Maximum scene cloud percentage' (cloud masking removes the clouds of the scenes kept) or widen the dates."
        )
    return sorted(scenes, key=lambda scene: scene.date)


def fetch_sentinel2(
    query: Sentinel2Query,
    settings: FetchSettings,
    output: str | Path,
    connection_settings: ConnectionSettings = ConnectionSettings(),
    *,
    progress: Callable[[float], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
    connection: Connection | None = None,
) -> FetchResult:
    """Fetch a Sentinel-2 composite (and optional water label) on a snapped grid into ``output``.

    Before any request the output is checked (see :mod:`core.outputs`) and the free space compared
    with the download's size; SIGTERM and a full disk leave no output and no scratch.
    """
    say = log or (lambda message: None)
    output = Path(output)
    removed = remove_stale_scratch(check_outputs(outputs={"OUTPUT": raster_output(output)}))
    if removed:
        say(f"Removed {len(removed)} temporary file(s) left by earlier runs that did not finish")
    grid, tile_size, estimated = plan(query, settings)
    check_free_space({output.parent: estimated})
    with cleanup_on_terminate(), explain_no_space(output.parent, estimated):
        return _fetch(query, settings, output, connection_settings, grid, tile_size, estimated, progress, is_cancelled,
                      say, connection)


def _fetch(query: Sentinel2Query, settings: FetchSettings, output: Path, connection_settings: ConnectionSettings,
           grid: Grid, tile_size: int, estimated: int, progress, is_cancelled, say, connection) -> FetchResult:
    bands = query.output_bands
    say(
        f"Grid: {grid.width} x {grid.height} px at {settings.resolution:g} m in {grid.crs.to_string()}, "
        f"{len(bands)} bands ({', '.join(bands)}): {format_bytes(estimated)} in {plural(tile_count(grid, tile_size), 'request')} "
        f"of up to {tile_size} x {tile_size} px, {settings.max_parallel} in parallel"
    )
    if connection is None:
        connection = connect_for(settings, connection_settings)
        say(f"Connected: {connection.describe()}")
    area = region(grid_bounds(grid), crs_code(grid.crs))
    scenes = list_scenes(query, area, connection)
    say(f"{plural(len(scenes), 'scene')} after the {query.max_cloud:g} % cloud limit:")
    for scene in scenes:
        say(f"  {scene.describe()}")
    image = output_image(query, area)
    tags = output_tags(query, scenes, settings)
    with write_geotiff(output, grid, len(bands), "uint16", nodata=NODATA, band_names=list(bands), tags=tags) as writer:
        stats = download(
            image, grid, bands,
            lambda pixels, tile: writer.write(pixels, window=tile.window),
            tile_size=tile_size, max_parallel=settings.max_parallel, retry=settings.retry,
            project=connection.project, credentials_kind=connection.credentials.kind,
            progress=progress, is_cancelled=is_cancelled, log=say,
        )
        if LABEL_BAND in bands:
            writer.update_tags(len(bands), values="0 no data, 1 land, 2 water")
    say(
        f"Fetched {format_bytes(stats.bytes)} in {plural(stats.requests, 'request')} ({stats.retries} retried, "
        f"up to {stats.max_in_flight} in flight) in {stats.seconds:.1f} s"
    )
    return FetchResult(output, grid, bands, scenes, stats, connection, estimated, tile_size)


def grid_bounds(grid: Grid) -> list[float]:
    west, north = grid.transform.c, grid.transform.f
    return [west, north + grid.transform.e * grid.height, west + grid.transform.a * grid.width, north]


def output_tags(query: Sentinel2Query, scenes: list[Scene], settings: FetchSettings) -> dict[str, str]:
    """Dataset metadata: where the pixels come from and how to read them as reflectance."""
    return {
        "source": f"Google Earth Engine {query.collection_id}",
        "processing_level": query.level,
        "reflectance_scale": str(REFLECTANCE_SCALE),
        "reflectance_note": f"reflectance = value / {REFLECTANCE_SCALE}; 0 = no clear pixel (nodata)",
        "dates": f"{query.start}/{query.end}",
        "max_scene_cloud_percent": f"{query.max_cloud:g}",
        "cloud_mask": query.cloud_mask + (f" (cs_cdf >= {query.clear_threshold:g})" if query.cloud_mask == "cloud_score_plus" else ""),
        "composite": query.composite,
        "water_label": query.water_label,
        "scenes": json.dumps([scene.id for scene in scenes]),
        "resolution_m": f"{settings.resolution:g}",
        "software": "SatVision",
    }
